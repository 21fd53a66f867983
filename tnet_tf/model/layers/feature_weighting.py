"""Feature weighting module (paper §5.3, spec §2.6)."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model.layers import precision
from tnet_tf.model.layers.base import Module


class FeatureWeightingModule(Module):
  """Weights of the ``N`` feature vectors of an image, summing to one.

  Squeeze-and-excitation over the mean feature (ratio 0.25, swish, sigmoid)
  rescales every feature; ``Dense(1)`` scores each one; a softmax over the
  ``N`` features gives the weights.
  """

  def __init__(self, se_ratio: float = 0.25, **kwargs):
    super().__init__(**kwargs)
    self.se_ratio = se_ratio

  def build(self, input_shape):
    dim = int(input_shape[-1])
    hidden = max(1, int(dim * self.se_ratio))
    dense = lambda units, act, name: keras.layers.Dense(
        units, act, kernel_initializer=self.init("dense", "glorot_uniform"),
        name=name)
    self.squeeze = self.sublayer(dense(hidden, "swish", "se_reduce"),
                                 [None, dim])
    self.excite = self.sublayer(dense(dim, "sigmoid", "se_expand"),
                                [None, hidden])
    self.score = self.sublayer(dense(1, None, "score"), [None, dim])
    super().build(input_shape)

  def call(self, features, valid=None):
    """features ``[B, N, D]`` → weights ``[B, N]``. ``valid`` ``[N]`` (1 or
    0) leaves features out: they get weight 0 and do not enter the mean."""
    if valid is None:
      mean = tf.reduce_mean(features, axis=1)
    else:
      with precision.keep_float():
        keep = tf.cast(valid, features.dtype)
        mean = (tf.reduce_sum(features * tf.reshape(keep, [1, -1, 1]), axis=1) /
                tf.reduce_sum(keep))
    gate = self.excite(self.squeeze(mean))
    scores = tf.squeeze(self.score(features * gate[:, None, :]), -1)
    with precision.keep_float():
      scores = tf.cast(scores, tf.float32)
      if valid is not None:  # exp(-1e9) is exactly 0 in float32
        scores += (tf.cast(valid, tf.float32) - 1.0) * 1e9
      return tf.nn.softmax(scores, axis=-1)

  def get_config(self):
    return {**super().get_config(), "se_ratio": self.se_ratio}
