"""BagNet-77 (spec §2.2): a ResNet-50-style network whose receptive field is
bounded to 77 px — no batch norm, leaky-ReLU, 3×3 convs only in the first two
blocks of each stage."""
from __future__ import annotations

import re

import tf_keras as keras

from tnet_tf.model.backbones.base import FeatureExtractor
from tnet_tf.model.backbones.weights import load_weights

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_STRIDES = (2, 2, 2, 1)
# padding of the two 3×3 convs of each stage
STAGE_PADDINGS = (("same", "same"), ("same", "same"), ("valid", "same"),
                  ("valid", "same"))
EXPANSION = 4
LS_DIM = 512


def _conv(filters, kernel, stride=1, padding="same", name=None):
  return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                             kernel_initializer="glorot_normal", name=name)


def _bottleneck(x, width, kernel, stride, padding, name):
  """1×1 → k×k (stride) → 1×1 (×4), leaky-ReLU, residual add."""
  out_ch = width * EXPANSION
  y = keras.layers.LeakyReLU(0.2, name=name + "_act1")(
      _conv(width, 1, name=name + "_conv1")(x))
  y = keras.layers.LeakyReLU(0.2, name=name + "_act2")(
      _conv(width, kernel, stride, padding, name=name + "_conv2")(y))
  y = _conv(out_ch, 1, name=name + "_conv3")(y)
  shortcut = x
  if padding == "valid" and kernel > 1:
    crop = (kernel - 1) // 2
    shortcut = keras.layers.Cropping2D(crop, name=name + "_crop")(shortcut)
  if stride > 1 or x.shape[-1] != out_ch:
    shortcut = _conv(out_ch, 1, stride, name=name + "_shortcut")(shortcut)
  y = keras.layers.Add(name=name + "_add")([y, shortcut])
  return keras.layers.LeakyReLU(0.2, name=name + "_out")(y)


def bagnet77_model(input_shape=(None, None, 3), num_dropout_layers: int = 0,
                   dropout_keep: float = 1.0, name: str = "bagnet77"):
  """Functional BagNet-77 returning ``[stage-3 map, V]``.

  Spatial dropout (keep ``dropout_keep``) follows the last
  ``num_dropout_layers`` of: stage 2, stage 3, stage 4, head conv.
  """
  if not 0 <= num_dropout_layers <= 4:
    raise ValueError(f"num_dropout_layers must be in [0, 4], got "
                     f"{num_dropout_layers}")
  if not 0.0 < dropout_keep <= 1.0:
    raise ValueError(f"dropout_keep must be in (0, 1], got {dropout_keep}")
  images = keras.Input(input_shape, name="images")
  # pixels in [0, 255] -> [-1, 1]
  x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(images)
  x = keras.layers.LeakyReLU(0.2, name="stem_act")(
      _conv(64, 3, padding="valid", name="stem_conv")(x))
  drop_after = {1: 4, 2: 3, 3: 2}  # stage index -> needed num_dropout_layers
  f_map = None
  for s, (width, blocks, stride, pads) in enumerate(
      zip(STAGE_WIDTHS, STAGE_BLOCKS, STAGE_STRIDES, STAGE_PADDINGS)):
    for b in range(blocks):
      kernel = 3 if b < 2 else 1
      x = _bottleneck(x, width, kernel, stride if b == 0 else 1,
                      pads[b] if b < 2 else "same",
                      name=f"stage{s + 1}_block{b + 1}")
    if s == 2:
      f_map = x
    if s in drop_after and num_dropout_layers >= drop_after[s]:
      x = keras.layers.SpatialDropout2D(1.0 - dropout_keep,
                                        name=f"stage{s + 1}_dropout")(x)
  x = keras.layers.LeakyReLU(0.2, name="head_act")(
      _conv(LS_DIM, 1, name="head_conv")(x))
  if num_dropout_layers >= 1:
    x = keras.layers.SpatialDropout2D(1.0 - dropout_keep,
                                      name="head_dropout")(x)
  v = keras.layers.GlobalAveragePooling2D(name="gap")(x)
  return keras.Model(images, [f_map, v], name=name)


def bagnet77(base_resolution: int = 77, grid_size: int = 5,
             num_dropout_layers: int = 1, dropout_keep: float = 0.5,
             weights: str | None = None) -> FeatureExtractor:
  """BagNet-77 as TNet's feature extractor; ``F`` = stage 3 at ``[::2, ::2]``.

  For a 77 px input, stage 3 is 9×9 and ``F`` is 5×5×1024.
  """
  model = bagnet77_model((base_resolution, base_resolution, 3),
                         num_dropout_layers, dropout_keep)
  if weights:
    load_weights(model, weights)
  fh = int(model.outputs[0].shape[1])
  indices = list(range(0, fh, 2))
  if len(indices) != grid_size:
    raise ValueError(
        f"BagNet-77 at base resolution {base_resolution} has a {fh}x{fh} "
        f"stage-3 map, giving a {len(indices)}x{len(indices)} grid, not "
        f"{grid_size}x{grid_size}")
  return FeatureExtractor(model, base_resolution, indices, "bagnet", "concat",
                          name="feature_extraction")


def authors_layer(layer: str) -> str | None:
  """Where a layer of ``bagnet77`` sits in the authors' BagNet-77
  (``ImageNet/models.py``, names under ``feature_extraction/``), or None
  for a layer they do not have. Stage ``s`` is their part ``s + 1``."""
  match = re.fullmatch(r"stage(\d+)_block(\d+)_(conv(\d)|shortcut)", layer)
  if match:
    stage, block, _, conv = match.groups()
    part = f"comp_{conv}" if conv else "shortcut_comp"
    return f"part{int(stage) + 1}_block{block}/{part}/conv2d"
  return {"stem_conv": "part1/conv2d", "head_conv": "part6/conv2d"}.get(layer)
