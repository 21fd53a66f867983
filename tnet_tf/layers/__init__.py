"""One Keras layer (or pure function) per TNet module of the paper."""
from tnet_tf.layers.classification import ClassificationModule
from tnet_tf.layers.feature_weighting import FeatureWeightingModule
from tnet_tf.layers.halting import HaltingModule
from tnet_tf.layers.location import LocationModule, MeshGridCoordinates
from tnet_tf.layers.positional import PositionalEncodingModule
