import math

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.model.layers import positional


def test_child_positions_follow_the_paper():
  parent = tf.constant([[1.0, 2.0, 1.0]])
  # cell 5 of a 3x3 grid is row 1, col 2
  child = positional.child_positions(parent, tf.constant([5]), 3).numpy()
  np.testing.assert_allclose(child, [[1 * 3 + 1, 2 * 3 + 2, 2]])
  root = tf.zeros([1, 3])
  child = positional.child_positions(root, tf.constant([[0, 8]]), 3).numpy()
  np.testing.assert_allclose(child[0], [[0, 0, 1], [2, 2, 1]])


def test_frequencies_log_spaced_from_1_to_one_hundredth():
  freqs = positional.sinusoidal_frequencies(512)
  assert len(freqs) == 512 // 6
  assert freqs[0] == pytest.approx(1.0)
  assert freqs[-1] == pytest.approx(0.01)
  ratios = freqs[1:] / freqs[:-1]
  np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)


def test_sinusoidal_encoding_by_hand():
  dim = 14  # q = 2 frequencies: 1 and 1/100, 12 values + 2 zeros
  enc = positional.sinusoidal_encoding(tf.constant([[3.0, 5.0, 1.0]]),
                                       dim).numpy()[0]
  expected = []
  for p in (3.0, 5.0, 1.0):
    expected += [math.sin(p), math.sin(p / 100), math.cos(p),
                 math.cos(p / 100)]
  np.testing.assert_allclose(enc, expected + [0.0, 0.0], atol=1e-6)


def test_sinusoidal_encoding_separates_positions():
  triplets = tf.constant([[y, x, s] for s in range(3) for y in range(9)
                          for x in range(9)], tf.float32)
  enc = positional.sinusoidal_encoding(triplets, 96).numpy()
  dists = np.linalg.norm(enc[:, None] - enc[None], axis=-1)
  np.fill_diagonal(dists, np.inf)
  assert dists.min() > 1e-2


@pytest.mark.parametrize("variant", ["concat", "additive"])
def test_module_shapes_and_config(variant):
  module = positional.PositionalEncodingModule(variant)
  feats = tf.random.normal([4, 64])
  out = module([feats, tf.zeros([4, 3])])
  assert out.shape == (4, 64)
  clone = positional.PositionalEncodingModule.from_config(module.get_config())
  assert clone.variant == variant
  # the position changes the output
  moved = module([feats, tf.ones([4, 3])])
  assert not np.allclose(out.numpy(), moved.numpy())


def test_unknown_variant():
  with pytest.raises(ValueError, match="positional variant"):
    positional.PositionalEncodingModule("rotary")
