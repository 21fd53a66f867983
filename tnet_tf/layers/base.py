"""What every TNet module shares: the sub-layers it makes pass a hook."""
from __future__ import annotations

from typing import Callable, Optional

import tf_keras as keras

# (path "module/layer", the layer a module just made) -> the layer it uses
LayerHook = Callable[[str, keras.layers.Layer], keras.layers.Layer]


class Module(keras.layers.Layer):
  """A TNet module made of Keras sub-layers.

  Each sub-layer goes through ``layer_hook`` when the module makes it (see
  ``sublayer``): a compressed TNet is a new TNet whose hook hands back the
  trained layers, wrapped for pruning or quantization, instead of patching
  a trained model's attributes.
  """

  def __init__(self, layer_hook: Optional[LayerHook] = None, **kwargs):
    super().__init__(**kwargs)
    self._layer_hook = layer_hook

  def sublayer(self, layer: keras.layers.Layer, input_shape=None
               ) -> keras.layers.Layer:
    """``layer`` (or what the hook makes of it), built for ``input_shape``
    unless it already is."""
    if self._layer_hook is not None:
      layer = self._layer_hook(f"{self.name}/{layer.name}", layer)
    if input_shape is not None and not layer.built:
      layer.build(input_shape)
    return layer
