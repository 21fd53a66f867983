"""EfficientNet-B0…B7 from ``tf_keras.applications`` as TNet's backbone."""
from __future__ import annotations

import tf_keras as keras

from tnet_tf.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.backbones.weights import check_weights_file

VARIANTS = {f"b{i}": getattr(keras.applications, f"EfficientNetB{i}")
            for i in range(8)}

# grid size -> (layer whose output gives F, first row/col, step); spec §2.2:
# 5×5 from the output of stage 3 (stride 8; its last block: block3b in B0,
# block3c in B1–B3, block3d in B4) at 3::5, 3×3 from stage 4 block 3
# (stride 16) at 2::4, i.e. 28×28 → 5×5 and 14×14 → 3×3 at 224 px.
F_TAPS = {5: ("stage3", 3, 5), 3: ("block4c_add", 2, 4)}


def _stage_output(model: keras.Model, stage: int) -> str:
  """The name of the last residual add of ``stage`` (block<stage>?_add)."""
  adds = [layer.name for layer in model.layers
          if layer.name.startswith(f"block{stage}") and
          layer.name.endswith("_add")]
  return adds[-1]


def efficientnet_model(variant: str = "b0", input_shape=(224, 224, 3),
                       weights: str | None = None,
                       block_drop_rate: float = 0.2) -> keras.Model:
  """The Keras application without top, ``V`` by global average pooling."""
  if variant not in VARIANTS:
    raise ValueError(f"EfficientNet variant must be one of "
                     f"{sorted(VARIANTS)}, got {variant!r}")
  if weights:
    check_weights_file(weights)
  try:
    return VARIANTS[variant](include_top=False, weights=weights,
                             input_shape=input_shape, pooling="avg",
                             drop_connect_rate=block_drop_rate)
  except ValueError as err:
    if not weights:
      raise
    raise ValueError(f"weights in {weights} do not match EfficientNet-"
                     f"{variant.upper()} without top: {err}") from err


def efficientnet(variant: str = "b0", base_resolution: int = 224,
                 grid_size: int = 5, cell_fraction: float = 0.35,
                 weights: str | None = None,
                 block_drop_rate: float = 0.2) -> FeatureExtractor:
  """EfficientNet feature extractor; ``F`` from the stage the spec names."""
  model = efficientnet_model(variant, (base_resolution, base_resolution, 3),
                             weights, block_drop_rate)
  if grid_size in F_TAPS:
    layer, start, step = F_TAPS[grid_size]
    if layer == "stage3":
      layer = _stage_output(model, 3)
    side = int(model.get_layer(layer).output.shape[1])
    indices = list(range(start, side, step))
    if len(indices) != grid_size:
      indices = None  # another base resolution: sample at cell centres
  else:
    layer, indices = "block4c_add", None
  return from_keras_model(model, layer, grid_size, cell_fraction,
                          f_indices=indices, location_variant="efficientnet",
                          positional_variant="additive")
