"""tnet-tf: TNet, multi-scale hard-attention image classification (TF2).

``TNet`` is the architecture (``tnet_tf.model``); ``TNetClassifier`` trains
it by the paper's rule (``tnet_tf.tasks``); an ``Experiment``
(``tnet_tf.config``) describes one run of ``tnet_tf.trainer``.
"""
from tnet_tf.config import Experiment, ModelConfig, preset
from tnet_tf.model import TNet
from tnet_tf.tasks import ImageClassifier, TNetClassifier

__version__ = "0.1.0"
