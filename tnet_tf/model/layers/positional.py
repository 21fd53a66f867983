"""Positional information of each feature vector (paper §3.2, spec §2.4)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf.model.layers import precision
from tnet_tf.model.layers.base import Module


def child_positions(parent: tf.Tensor, cell_index: tf.Tensor,
                    grid_size: int) -> tf.Tensor:
  """Triplet ``(y·n + i, x·n + j, s + 1)`` of the cell ``(i, j)`` of a parent.

  Args:
    parent: ``[..., 3]`` float triplets ``(y, x, s)`` of the parent regions.
    cell_index: integer row-major cell indices, broadcastable to ``parent``
      without its last axis.
    grid_size: ``n``.
  """
  cell_index = tf.cast(cell_index, parent.dtype)
  i = tf.math.floordiv(cell_index, float(grid_size))
  j = cell_index - i * grid_size
  yx = parent[..., :2] * grid_size + tf.stack([i, j], axis=-1)
  scale = parent[..., 2:] + 1.0 + tf.zeros_like(yx[..., :1])
  return tf.concat([yx, scale], axis=-1)


def sinusoidal_frequencies(dim: int) -> np.ndarray:
  """``q = dim // 6`` angular frequencies, log-spaced from 1 down to 1/100."""
  q = dim // 6
  if q < 1:
    raise ValueError(f"positional encoding needs dim >= 6, got {dim}")
  if q == 1:
    return np.ones([1], np.float32)
  return np.logspace(0.0, -2.0, q).astype(np.float32)


def sinusoidal_encoding(triplets: tf.Tensor, dim: int) -> tf.Tensor:
  """Encodes ``[..., 3]`` triplets ``(y, x, s)`` as ``[..., dim]`` vectors.

  Per coordinate: ``sin(p·ω_1..q)`` then ``cos(p·ω_1..q)``; the three blocks
  are concatenated in ``y, x, s`` order and zero-padded to ``dim``.
  """
  freqs = tf.constant(sinusoidal_frequencies(dim), triplets.dtype)
  angles = triplets[..., :, None] * freqs  # [..., 3, q]
  enc = tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)  # [..., 3, 2q]
  enc = tf.reshape(enc, tf.concat([tf.shape(triplets)[:-1], [-1]], 0))
  pad = dim - 6 * freqs.shape[0]
  if pad:
    enc = tf.pad(enc, [[0, 0]] * (len(triplets.shape) - 1) + [[0, pad]])
  return enc


class PositionalEncodingModule(Module):
  """Injects the ``(y, x, s)`` encoding into each feature vector.

  ``variant="concat"`` (BagNet model): ``Dense(D)`` over
  ``concat(feature, encoding_D)``. ``variant="additive"`` (EfficientNet
  models): ``swish(feature + Dense(D)(encoding_{D/4}))``.
  """

  VARIANTS = ("concat", "additive")

  def __init__(self, variant: str = "concat", **kwargs):
    super().__init__(**kwargs)
    if variant not in self.VARIANTS:
      raise ValueError(
          f"positional variant must be one of {self.VARIANTS}, got {variant!r}")
    self.variant = variant

  def build(self, input_shape):
    feature_shape = input_shape[0]
    self.feature_dim = int(feature_shape[-1])
    self.encoding_dim = (self.feature_dim if self.variant == "concat"
                         else max(6, self.feature_dim // 4))
    in_dim = (self.feature_dim + self.encoding_dim if self.variant == "concat"
              else self.encoding_dim)
    self.dense = self.sublayer(keras.layers.Dense(
        self.feature_dim, kernel_initializer=self.init("dense"),
        name="linear"),
                               [None, in_dim])
    super().build(input_shape)

  def call(self, inputs):
    features, triplets = inputs  # [M, D], [M, 3]
    with precision.keep_float():
      enc = sinusoidal_encoding(tf.cast(triplets, tf.float32),
                                self.encoding_dim)
    enc = tf.cast(enc, features.dtype)
    if self.variant == "concat":
      return self.dense(tf.concat([features, enc], axis=-1))
    return tf.nn.silu(features + self.dense(enc))

  def get_config(self):
    return {**super().get_config(), "variant": self.variant}
