"""A small CNN backbone for tests and the CPU benchmark."""
from __future__ import annotations

import tf_keras as keras

from tnet_tf.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.backbones.weights import load_weights


def tiny_cnn_model(input_shape=(32, 32, 3), widths=(16, 32, 64),
                   dropout: float = 0.0, batch_norm: bool = True
                   ) -> keras.Model:
  """Stride-2 3×3 convs (BN, swish); output is the last stage's map."""
  images = keras.Input(input_shape, name="images")
  x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(images)
  for i, width in enumerate(widths):
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same",
                            use_bias=not batch_norm, name=f"conv{i + 1}")(x)
    if batch_norm:
      x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
    x = keras.layers.Activation("swish", name=f"stage{i + 1}")(x)
  if dropout:
    x = keras.layers.SpatialDropout2D(dropout, name="dropout")(x)
  return keras.Model(images, x, name="tiny_cnn")


def tiny_cnn(base_resolution: int = 32, grid_size: int = 3,
             cell_fraction: float = 0.5, widths=(16, 32, 64),
             dropout: float = 0.0, batch_norm: bool = True,
             weights: str | None = None,
             f_stage: int | None = None) -> FeatureExtractor:
  """The small CNN as a feature extractor; ``F`` from stage ``f_stage``
  (1-based; default the second-last), read at the cell centres."""
  model = tiny_cnn_model((base_resolution, base_resolution, 3), widths,
                         dropout, batch_norm)
  if weights:
    load_weights(model, weights)
  if f_stage is not None and not 1 <= f_stage <= len(widths):
    raise ValueError(f"f_stage must be in [1, {len(widths)}], got {f_stage}")
  f_layer = f"stage{f_stage or max(1, len(widths) - 1)}"
  return from_keras_model(model, f_layer, grid_size, cell_fraction,
                          location_variant="efficientnet",
                          positional_variant="additive")
