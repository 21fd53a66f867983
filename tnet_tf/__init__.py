"""tnet-tf: TNet, multi-scale hard-attention image classification (TF2)."""
from tnet_tf.config import ModelConfig, preset
from tnet_tf.model import TNet

__version__ = "0.1.0"
