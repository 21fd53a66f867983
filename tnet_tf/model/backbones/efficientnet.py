"""EfficientNet-B0…B7 from ``tf_keras.applications`` as TNet's backbone."""
from __future__ import annotations

import numpy as np
import tf_keras as keras

from tnet_tf.model.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.model.backbones.weights import IMAGENET
from tnet_tf.model.backbones.weights import check_weights_file
from tnet_tf.model.backbones.weights import imagenet_unavailable

VARIANTS = {f"b{i}": getattr(keras.applications, f"EfficientNetB{i}")
            for i in range(8)}

# Where F is read, as the authors' code reads it (Tpap/TNet): the output of
# a block and its rows/cols at a 224 px input. The birds' 5×5 grid
# (CUB/models_cub.py, NABirds/models_nab.py): B0 — block4a (stride 16, 14×14)
# at 2:12:2; B1–B5 — block3b (stride 8, 28×28) at 5:22:4; B6–B7 — block3a at
# 5:22:4. fMoW's 3×3 grid (fMoW/models_fMoW.py): block4c at 2::4.
TAPS_5X5 = {"b0": ("block4a_project_bn", range(2, 12, 2)),
            **{f"b{i}": ("block3b_add", range(5, 22, 4)) for i in range(1, 6)},
            "b6": ("block3a_project_bn", range(5, 22, 4)),
            "b7": ("block3a_project_bn", range(5, 22, 4))}
TAP_3X3 = ("block4c_add", range(2, 14, 4))
DROP_SCHEDULES = ("authors", "keras")


def tap(variant: str, grid_size: int) -> tuple[str, list[int]]:
  """(layer, rows/cols at 224 px) of F for a grid, as the authors'."""
  layer, rows = TAPS_5X5[variant] if grid_size == 5 else TAP_3X3
  return layer, list(rows)


def _drop_from_one(model: keras.Model, rate: float) -> keras.Model:
  """A copy of ``model`` with the stochastic-depth rate of block ``b``
  (1-based) set to ``rate·b/N``, as the authors count (Keras counts from 0:
  the first block gets 0); the same weights."""
  blocks = []
  for layer in model.layers:
    prefix = layer.name.split("_")[0]
    if prefix.startswith("block") and prefix not in blocks:
      blocks.append(prefix)

  def clone(layer):
    if layer.name.startswith("block") and layer.name.endswith("_drop"):
      b = blocks.index(layer.name.split("_")[0]) + 1
      return keras.layers.Dropout(rate * b / len(blocks),
                                  noise_shape=layer.noise_shape,
                                  name=layer.name)
    return layer.__class__.from_config(layer.get_config())
  copy = keras.models.clone_model(model, clone_function=clone)
  copy.set_weights(model.get_weights())
  return copy


def efficientnet_model(variant: str = "b0", input_shape=(224, 224, 3),
                       weights: str | None = None,
                       block_drop_rate: float = 0.2,
                       block_drop_schedule: str = "authors") -> keras.Model:
  """The Keras application without top, ``V`` by global average pooling;
  stochastic depth counted from block 1 (``"authors"``) or 0 (Keras)."""
  if variant not in VARIANTS:
    raise ValueError(f"EfficientNet variant must be one of "
                     f"{sorted(VARIANTS)}, got {variant!r}")
  if block_drop_schedule not in DROP_SCHEDULES:
    raise ValueError(f"block_drop_schedule must be one of "
                     f"{list(DROP_SCHEDULES)}, got {block_drop_schedule!r}")
  if weights and weights != IMAGENET:
    check_weights_file(weights)
  try:
    model = VARIANTS[variant](include_top=False, weights=weights,
                              input_shape=input_shape, pooling="avg",
                              drop_connect_rate=block_drop_rate)
  except Exception as err:  # a download fails with URL or OS errors
    if weights == IMAGENET:
      raise imagenet_unavailable(f"EfficientNet-{variant.upper()}",
                                 f"efficientnet{variant}_notop.h5",
                                 err) from err
    if not weights or not isinstance(err, ValueError):
      raise
    raise ValueError(f"weights in {weights} do not match EfficientNet-"
                     f"{variant.upper()} without top: {err}") from err
  if block_drop_schedule == "authors" and block_drop_rate:
    model = _drop_from_one(model, block_drop_rate)
  if not weights:
    authors_input_range(model)
  return model


def normalization_of(model: keras.Model) -> keras.layers.Normalization:
  """The input normalisation of a Keras EfficientNet application (its
  name is made unique per model, so it is found by type)."""
  return next(layer for layer in model.layers
              if isinstance(layer, keras.layers.Normalization))


def authors_input_range(model: keras.Model) -> None:
  """Makes the stem of ``model`` (a Keras EfficientNet application) read
  pixels as the authors' EfficientNets do: ``(x / 255 − 0.5) · 2``, in
  [−1, 1] (``fMoW/input_fMoW.py``, ``CUB/input_cub.py``,
  ``NABirds/input_nab.py``). The application rescales by 1/255 and then
  normalises with statistics that a randomly initialised model never
  adapts (mean 0, variance 1: the stem would read [0, 1]); mean 0.5 and
  variance 0.25 give the authors' range. Keras' ImageNet weights carry
  their own statistics and keep them; a checkpoint restores what its run
  was trained with."""
  norm = normalization_of(model)
  mean, variance, count = norm.get_weights()
  norm.set_weights([np.full_like(mean, 0.5), np.full_like(variance, 0.25),
                    count])


def efficientnet(variant: str = "b0", base_resolution: int = 224,
                 grid_size: int = 5, cell_fraction: float = 0.35,
                 weights: str | None = None, block_drop_rate: float = 0.2,
                 block_drop_schedule: str = "authors") -> FeatureExtractor:
  """EfficientNet feature extractor; ``F`` where the authors read it
  (``tap``), or at the cell centres for another grid or resolution."""
  model = efficientnet_model(variant, (base_resolution, base_resolution, 3),
                             weights, block_drop_rate, block_drop_schedule)
  layer, indices = (tap(variant, grid_size) if grid_size in (3, 5)
                    else ("block4c_add", None))
  side = int(model.get_layer(layer).output.shape[1])
  if indices is not None and (base_resolution != 224 or
                              max(indices) >= side):
    indices = None  # another base resolution: sample at cell centres
  return from_keras_model(model, layer, grid_size, cell_fraction,
                          f_indices=indices, location_variant="efficientnet",
                          positional_variant="additive",
                          initializers="efficientnet")
