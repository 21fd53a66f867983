"""What every TNet module shares: the sub-layers it makes pass a hook."""
from __future__ import annotations

from typing import Callable, Optional

import tf_keras as keras

# (path "module/layer", the layer a module just made) -> the layer it uses
LayerHook = Callable[[str, keras.layers.Layer], keras.layers.Layer]


INITIALIZERS = ("glorot", "efficientnet")


def kernel_initializer(family: str, kind: str, default="glorot_normal"):
  """The kernel initialiser of a module's ``kind`` ("conv" or "dense")
  layer: the authors' EfficientNet-side ones (Keras EfficientNet's
  VarianceScaling, fan-out) or, for ``"glorot"``, ``default``."""
  if family == "efficientnet":
    if kind == "conv":
      return keras.initializers.VarianceScaling(2.0, "fan_out",
                                                "truncated_normal")
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_out",
                                              "uniform")
  if family != "glorot":
    raise ValueError(f"initializers must be one of {list(INITIALIZERS)}, "
                     f"got {family!r}")
  return default


class Module(keras.layers.Layer):
  """A TNet module made of Keras sub-layers.

  Each sub-layer goes through ``layer_hook`` when the module makes it (see
  ``sublayer``): a compressed TNet is a new TNet whose hook hands back the
  trained layers, wrapped for pruning or quantization, instead of patching
  a trained model's attributes.
  """

  def __init__(self, layer_hook: Optional[LayerHook] = None,
               initializers: str = "glorot", **kwargs):
    super().__init__(**kwargs)
    self._layer_hook = layer_hook
    kernel_initializer(initializers, "dense")  # validates
    self.initializers = initializers

  def init(self, kind: str, default="glorot_normal"):
    """This module's kernel initialiser for a ``kind`` layer."""
    return kernel_initializer(self.initializers, kind, default)

  def sublayer(self, layer: keras.layers.Layer, input_shape=None
               ) -> keras.layers.Layer:
    """``layer`` (or what the hook makes of it), built for ``input_shape``
    unless it already is."""
    if self._layer_hook is not None:
      layer = self._layer_hook(f"{self.name}/{layer.name}", layer)
    if input_shape is not None and not layer.built:
      layer.build(input_shape)
    return layer
