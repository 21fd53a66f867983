"""The feature extraction module's interface: an image batch → ``(F, V)``."""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model.layers import grid


class FeatureExtractor(keras.layers.Layer):
  """Wraps a two-output Keras model ``x → (feature map, V)``.

  ``F`` is read off the feature map at rows/cols ``f_indices`` (one per grid
  cell), giving ``[M, n, n, c]``; ``V`` is ``[M, D]``. Inputs are ``[M, r, r,
  3]`` float pixel values in ``[0, 255]``.
  """

  def __init__(self, model: keras.Model, base_resolution: int,
               f_indices: Sequence[int], location_variant: str,
               positional_variant: str, jit_compile: bool = False,
               initializers: str = "glorot", **kwargs):
    super().__init__(**kwargs)
    self.model = model
    # the initialisers of the TNet modules built around it (layers/base.py)
    self.initializers = initializers
    self.base_resolution = int(base_resolution)
    self.f_indices = [int(i) for i in f_indices]
    self.grid_size = len(self.f_indices)
    self.location_variant = location_variant
    self.positional_variant = positional_variant
    f_out, v_out = model.outputs
    if len(v_out.shape) != 2:
      raise ValueError(f"V must be [batch, dim], got shape {v_out.shape}")
    fh, fw = f_out.shape[1], f_out.shape[2]
    if fh is None or max(self.f_indices) >= min(fh, fw):
      raise ValueError(
          f"F indices {self.f_indices} do not fit the {fh}x{fw} feature map "
          f"at base resolution {base_resolution}")
    self.f_channels = int(f_out.shape[-1])
    self.feature_dim = int(v_out.shape[-1])
    # XLA for the backbone alone (see BUILD.md)
    self.jit_compile = bool(jit_compile)
    self._xla = (tf.function(lambda x, training: model(x, training=training),
                             jit_compile=True) if jit_compile else None)

  def replace(self, model: keras.Model | None = None,
              jit_compile: bool | None = None) -> "FeatureExtractor":
    """The same extractor around another two-output model (e.g. a pruned or
    quantized copy) and/or with XLA on or off."""
    return FeatureExtractor(
        self.model if model is None else model, self.base_resolution,
        self.f_indices, self.location_variant, self.positional_variant,
        self.jit_compile if jit_compile is None else jit_compile,
        self.initializers, name=self.name)

  def call(self, images, training=None):
    if self._xla is not None:
      f_map, v = self._xla(images, bool(training))
    else:
      f_map, v = self.model(images, training=training)
    idx = tf.constant(self.f_indices, tf.int32)
    f_map = tf.gather(tf.gather(f_map, idx, axis=1), idx, axis=2)
    return f_map, v

  def get_config(self):
    raise NotImplementedError(
        "FeatureExtractor is rebuilt from a ModelConfig, not from get_config")


def from_keras_model(model: keras.Model, f_layer: str, grid_size: int,
                     cell_fraction: float, v_layer: str | None = None,
                     f_indices: Sequence[int] | None = None,
                     location_variant: str = "efficientnet",
                     positional_variant: str = "additive",
                     initializers: str = "glorot",
                     name: str = "feature_extraction") -> FeatureExtractor:
  """Any functional Keras model as a backbone, by naming the layer of ``F``.

  ``V`` is the output of ``v_layer`` (default: the model's output), global
  average pooled if it is a 4-D map. Without ``f_indices``, ``F`` is sampled
  at the feature-map positions nearest to the cell centres.
  """
  if not model.inputs or len(model.inputs[0].shape) != 4:
    raise ValueError("the backbone must be a functional model with one image "
                     "input of a fixed size")
  res_h, res_w = model.inputs[0].shape[1:3]
  if res_h is None or res_h != res_w:
    raise ValueError(f"the backbone input must be a fixed square size, got "
                     f"{model.inputs[0].shape}; build it with input_shape="
                     "(r, r, 3)")
  try:
    f_out = model.get_layer(f_layer).output
  except ValueError as err:
    raise ValueError(f"f_layer {f_layer!r} is not a layer of model "
                     f"{model.name!r}") from err
  v_out = model.get_layer(v_layer).output if v_layer else model.outputs[0]
  if len(v_out.shape) == 4:
    v_out = keras.layers.GlobalAveragePooling2D(name="v_pool")(v_out)
  if f_indices is None:
    f_indices = grid.grid_sample_indices(int(f_out.shape[1]), grid_size,
                                         cell_fraction)
  two_out = keras.Model(model.inputs, [f_out, v_out], name=model.name)
  return FeatureExtractor(two_out, res_h, f_indices, location_variant,
                          positional_variant, initializers=initializers,
                          name=name)
