"""A small CNN backbone for tests and the CPU benchmark."""
from __future__ import annotations

import tf_keras as keras

from tnet_tf.model.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.model.backbones.weights import load_weights
from tnet_tf.config import TINY_CNN_DEFAULT_NORM, TINY_CNN_NORMS


def tiny_cnn_model(input_shape=(32, 32, 3), widths=(16, 32, 64),
                   dropout: float = 0.0, batch_norm: bool = True,
                   depth: int = 1, norm: str | None = None) -> keras.Model:
  """Per stage a stride-2 3×3 conv and ``depth - 1`` stride-1 ones (a
  normalisation and swish each); output is the last stage's map.

  ``norm``: "renorm" (the default, or "none" when ``batch_norm`` is False:
  batch renormalisation, clipping r to [1/3, 3] and d to ±5), "batch" or
  "frozen_batch" (batch norm on the statistics and scales of the loaded
  ``weights``, in training too). Plain batch norm lets a TNet lean on its
  training batch — its overviews and cells normalised by one another —
  and the model in inference, on running statistics, is then far worse
  than in training (measured: the small-object task 94% in training mode
  against 66–80% in inference; Megapixel MNIST 79% against 10%). The other
  two normalise the same way in training and inference. Batch
  renormalisation is the default since issue 24: over five training seeds
  on the built-in tasks its mean beats plain batch norm's best seed
  (experiments/README.md, "Training you can trust").
  """
  if depth < 1:
    raise ValueError(f"depth must be >= 1, got {depth}")
  norm = norm or (TINY_CNN_DEFAULT_NORM if batch_norm else "none")
  if norm not in TINY_CNN_NORMS:
    raise ValueError(f"norm must be one of {TINY_CNN_NORMS}, got {norm!r}")
  images = keras.Input(input_shape, name="images")
  x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(images)
  for i, width in enumerate(widths):
    for j in range(depth):
      # the last conv of a stage keeps the one-conv names (and weights)
      last = j == depth - 1
      suffix = f"{i + 1}" if last else f"{i + 1}_{j + 1}"
      x = keras.layers.Conv2D(width, 3, strides=2 if j == 0 else 1,
                              padding="same", use_bias=norm == "none",
                              name=f"conv{suffix}")(x)
      if norm == "renorm":
        x = keras.layers.BatchNormalization(
            renorm=True, renorm_clipping={"rmax": 3.0, "rmin": 1 / 3.0,
                                          "dmax": 5.0},
            name=f"bn{suffix}")(x)
      elif norm in ("batch", "frozen_batch"):
        bn = keras.layers.BatchNormalization(name=f"bn{suffix}")
        bn.trainable = norm == "batch"  # frozen: the loaded statistics
        x = bn(x)
      x = keras.layers.Activation(
          "swish", name=f"stage{i + 1}" if last else f"act{suffix}")(x)
  if dropout:
    x = keras.layers.SpatialDropout2D(dropout, name="dropout")(x)
  return keras.Model(images, x, name="tiny_cnn")


def tiny_cnn(base_resolution: int = 32, grid_size: int = 3,
             cell_fraction: float = 0.5, widths=(16, 32, 64),
             dropout: float = 0.0, batch_norm: bool = True,
             weights: str | None = None,
             f_stage: int | None = None, depth: int = 1,
             norm: str | None = None) -> FeatureExtractor:
  """The small CNN as a feature extractor; ``F`` from stage ``f_stage``
  (1-based; default the second-last), read at the cell centres."""
  model = tiny_cnn_model((base_resolution, base_resolution, 3), widths,
                         dropout, batch_norm, depth, norm)
  if weights:
    load_weights(model, weights)
  if f_stage is not None and not 1 <= f_stage <= len(widths):
    raise ValueError(f"f_stage must be in [1, {len(widths)}], got {f_stage}")
  f_layer = f"stage{f_stage or max(1, len(widths) - 1)}"
  return from_keras_model(model, f_layer, grid_size, cell_fraction,
                          location_variant="efficientnet",
                          positional_variant="additive")
