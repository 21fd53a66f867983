"""Which models attend adaptively: one check, used everywhere."""
import tf_keras as keras

from conftest import tiny_config
from tnet_tf.model.adaptive import supports_adaptive
from tnet_tf.model.tnet import TNet


def test_only_two_level_tnets_without_feature_weighting_attend_adaptively():
  assert supports_adaptive(TNet(tiny_config(levels=2, locations=(2,))))
  assert not supports_adaptive(TNet(tiny_config()))  # three levels
  assert not supports_adaptive(TNet(tiny_config(
      levels=2, locations=(2,), feature_weighting=True)))
  assert not supports_adaptive(keras.Sequential([keras.layers.Dense(2)]))
  assert not supports_adaptive(None)
