"""tnet-tf: TNet, multi-scale hard-attention image classification (TF2).

``TNet`` is the architecture (``tnet_tf.model.tnet``); ``TNetClassifier`` trains
it by the paper's rule (``tnet_tf.training.tasks``); an ``Experiment``
(``tnet_tf.config``) describes one run of ``tnet_tf.training.trainer``.
"""
from tnet_tf.version import __version__  # noqa: F401
from tnet_tf.config import Experiment, ModelConfig, preset
from tnet_tf.model.tnet import TNet
from tnet_tf.training.tasks import ImageClassifier, TNetClassifier
