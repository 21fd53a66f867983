"""Location module (paper §3.2, spec §2.3): ``n²`` logits over grid cells."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model.layers import precision
from tnet_tf.model.layers.base import Module


class MeshGridCoordinates(keras.layers.Layer):
  """Appends row and column coordinates (linspace −1..1) as 2 channels.

  Each coordinate goes through a learned scalar affine map initialised to the
  identity.
  """

  def build(self, input_shape):
    self.scale = self.add_weight("scale", [2], initializer="ones")
    self.shift = self.add_weight("shift", [2], initializer="zeros")
    super().build(input_shape)

  def call(self, features):
    shape = tf.shape(features)
    rows = tf.linspace(-1.0, 1.0, shape[1])
    cols = tf.linspace(-1.0, 1.0, shape[2])
    yy, xx = tf.meshgrid(rows, cols, indexing="ij")
    dtype = features.dtype
    coords = (tf.cast(tf.stack([yy, xx], axis=-1), dtype) *
              tf.cast(self.scale, dtype) + tf.cast(self.shift, dtype))
    coords = tf.broadcast_to(coords[None], tf.concat([shape[:3], [2]], 0))
    return tf.concat([features, coords], axis=-1)


class LocationModule(Module):
  """Scores the ``n×n`` candidate cells from ``F`` (and ``V`` as context).

  ``variant="bagnet"``: concat(F, tiled V) + coordinates → 1×1 conv
  (``hidden_dim``, leaky-ReLU) → 1×1 conv to 1. ``variant="efficientnet"``:
  1×1 conv (``hidden_dim``, swish) → squeeze-and-excitation (ratio 0.5) →
  coordinates → 1×1 conv (swish) → 1×1 conv to 1. Both L2-normalise the
  ``n²`` logits. Inputs are stop-gradient: no gradient reaches the backbone.

  Call returns the normalised logits ``[M, n²]``; softmax gives the
  attendance probabilities. With ``learned_scale`` they are multiplied by
  ``exp(s)``, a learned scalar from 0 (a temperature: the authors' unit
  vector bounds the distribution, on 25 cells no cell above 0.104).
  """

  VARIANTS = ("bagnet", "efficientnet")

  def __init__(self, variant: str = "bagnet", hidden_dim: int | None = None,
               learned_scale: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.learned_scale = learned_scale
    if variant not in self.VARIANTS:
      raise ValueError(
          f"location variant must be one of {self.VARIANTS}, got {variant!r}")
    self.variant = variant
    self.hidden_dim = hidden_dim
    self.coordinates = self.sublayer(MeshGridCoordinates(name="meshgrid"))

  def build(self, input_shape):
    f_shape, v_shape = input_shape
    f_dim, v_dim = int(f_shape[-1]), int(v_shape[-1])

    def conv(units, act, name, channels):
      return self.sublayer(keras.layers.Conv2D(
          units, 1, activation=act, kernel_initializer=self.init("conv"),
          name=name), [None, None, None, channels])

    if self.variant == "bagnet":
      hidden = self.hidden_dim or v_dim
      self.fuse = conv(hidden, tf.nn.leaky_relu, "conv", f_dim + v_dim + 2)
    else:
      hidden = self.hidden_dim or f_dim
      self.init_conv = conv(hidden, "swish", "init_conv", f_dim)
      # the squeeze-and-excitation's 1×1 convs, as dense layers
      se = lambda units, act, name: keras.layers.Dense(
          units, act, kernel_initializer=self.init("conv", "glorot_uniform"),
          name=name)
      self.se_reduce = self.sublayer(se(max(1, hidden // 2), "swish",
                                        "se_reduce"), [None, hidden])
      self.se_expand = self.sublayer(se(hidden, "sigmoid", "se_expand"),
                                     [None, max(1, hidden // 2)])
      self.fuse = conv(hidden, "swish", "final_conv", hidden + 2)
    self.output_conv = conv(1, None, "output_linear", hidden)
    if not self.coordinates.built:
      self.coordinates.build(None)
    if self.learned_scale:
      self.log_scale = self.add_weight("log_scale", [], initializer="zeros")
    super().build(input_shape)

  def call(self, inputs):
    f_map, v = inputs  # [M, n, n, c], [M, D]
    f_map, v = tf.stop_gradient(f_map), tf.stop_gradient(v)
    if self.variant == "bagnet":
      v_tiled = tf.broadcast_to(
          v[:, None, None, :],
          tf.concat([tf.shape(f_map)[:3], tf.shape(v)[-1:]], 0))
      x = self.coordinates(tf.concat([f_map, v_tiled], axis=-1))
    else:
      x = self.init_conv(f_map)
      gate = self.se_expand(self.se_reduce(tf.reduce_mean(x, axis=[1, 2])))
      x = self.coordinates(x * gate[:, None, None, :])
    logits = self.output_conv(self.fuse(x))  # [M, n, n, 1]
    logits = tf.reshape(tf.cast(logits, tf.float32), [tf.shape(logits)[0], -1])
    with precision.keep_float():
      logits = tf.math.l2_normalize(logits, axis=-1)
      if self.learned_scale:
        logits *= tf.exp(tf.cast(self.log_scale, tf.float32))
      return logits

  def get_config(self):
    return {**super().get_config(), "variant": self.variant,
            "hidden_dim": self.hidden_dim,
            "learned_scale": self.learned_scale}
