import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.model.layers.classification import ClassificationModule
from tnet_tf.model.layers.feature_weighting import FeatureWeightingModule
from tnet_tf.model.layers.location import LocationModule, MeshGridCoordinates


@pytest.mark.parametrize("variant", ["bagnet", "efficientnet"])
def test_location_logits_are_l2_normalised(variant):
  module = LocationModule(variant)
  logits = module([tf.random.normal([3, 5, 5, 16]), tf.random.normal([3, 8])])
  assert logits.shape == (3, 25)
  np.testing.assert_allclose(np.linalg.norm(logits, axis=-1), 1.0, rtol=1e-5)
  clone = LocationModule.from_config(module.get_config())
  assert clone.variant == variant


def test_bagnet_variant_uses_context_vector_efficientnet_does_not():
  f_map = tf.random.normal([1, 3, 3, 4])
  v1, v2 = tf.random.normal([1, 6]), tf.random.normal([1, 6])
  bag = LocationModule("bagnet")
  assert not np.allclose(bag([f_map, v1]), bag([f_map, v2]))
  eff = LocationModule("efficientnet")
  np.testing.assert_allclose(eff([f_map, v1]), eff([f_map, v2]))


def test_inputs_are_stop_gradient():
  module = LocationModule("bagnet")
  f_map, v = tf.random.normal([2, 3, 3, 4]), tf.random.normal([2, 6])
  with tf.GradientTape() as tape:
    tape.watch([f_map, v])
    out = tf.reduce_sum(module([f_map, v]) * tf.range(9.0))
  assert tape.gradient(out, [f_map, v]) == [None, None]


def test_meshgrid_coordinates_start_as_linspace():
  out = MeshGridCoordinates()(tf.zeros([2, 3, 5, 1])).numpy()
  assert out.shape == (2, 3, 5, 3)
  np.testing.assert_allclose(out[0, :, 0, 1], [-1, 0, 1])
  np.testing.assert_allclose(out[0, 0, :, 2], [-1, -0.5, 0, 0.5, 1])


def test_unknown_location_variant():
  with pytest.raises(ValueError, match="location variant"):
    LocationModule("transformer")


def test_classification_module_shared_over_leading_axes():
  module = ClassificationModule(7, dropout=0.5)
  feats = tf.random.normal([2, 4, 16])
  per_feature = module(feats, training=False)
  assert per_feature.shape == (2, 4, 7)
  np.testing.assert_allclose(per_feature[:, 1], module(feats[:, 1]),
                             atol=1e-5)
  with pytest.raises(ValueError, match="dropout"):
    ClassificationModule(3, dropout=1.0)


def test_feature_weighting_softmax_over_features():
  module = FeatureWeightingModule()
  feats = tf.random.normal([3, 6, 16])
  w = module(feats).numpy()
  assert w.shape == (3, 6)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  # permuting the features permutes the weights
  perm = [5, 4, 3, 2, 1, 0]
  np.testing.assert_allclose(module(tf.gather(feats, perm, axis=1)),
                             w[:, perm], rtol=1e-5)
