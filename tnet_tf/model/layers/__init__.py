"""One Keras layer (or pure function) per TNet module of the paper."""
from tnet_tf.model.layers.classification import ClassificationModule
from tnet_tf.model.layers.feature_weighting import FeatureWeightingModule
from tnet_tf.model.layers.halting import HaltingModule
from tnet_tf.model.layers.location import LocationModule, MeshGridCoordinates
from tnet_tf.model.layers.positional import PositionalEncodingModule
