"""EfficientNet-B0…B7 from ``tf_keras.applications`` as TNet's backbone."""
from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
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
  # a tensorflow/tpu checkpoint (NoisyStudent) is read into the built model
  tpu_checkpoint = bool(weights) and is_checkpoint(weights)
  if weights and weights != IMAGENET and not tpu_checkpoint:
    check_weights_file(weights)
  try:
    model = VARIANTS[variant](include_top=False,
                              weights=None if tpu_checkpoint else weights,
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
  if tpu_checkpoint:
    load_tpu_checkpoint(model, variant, weights)
  if block_drop_schedule == "authors" and block_drop_rate:
    model = _drop_from_one(model, block_drop_rate)
  if not weights or tpu_checkpoint:  # the authors feed NoisyStudent [-1, 1]
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


# a block's layers (Keras application names) in the authors' EfficientNet
# (fMoW/models_fMoW.py, CUB/models_cub.py) and in the tensorflow/tpu
# EfficientNet checkpoints (NoisyStudent) their bird runs start from: the
# latter number convolutions and batch norms in order of creation, so a
# block without expansion (the first) starts one lower
_BLOCK_LAYERS = {  # keras: (authors', tpu with expansion, tpu without)
    "expand_conv": ("expand/conv2d", "conv2d", None),
    "expand_bn": ("expand/batch_norm", "tpu_batch_normalization", None),
    "dwconv": ("depthwise/conv2d", "depthwise_conv2d", "depthwise_conv2d"),
    "bn": ("depthwise/batch_norm", "tpu_batch_normalization_1",
           "tpu_batch_normalization"),
    "se_reduce": ("se/conv2d_1", "se/conv2d", "se/conv2d"),
    "se_expand": ("se/conv2d_2", "se/conv2d_1", "se/conv2d_1"),
    "project_conv": ("bottleneck/conv2d", "conv2d_1", "conv2d"),
    "project_bn": ("bottleneck/batch_norm", "tpu_batch_normalization_2",
                   "tpu_batch_normalization_1"),
}
_OUTER_LAYERS = {  # keras: (authors', tpu)
    "stem_conv": ("stem/conv2d", "stem/conv2d"),
    "stem_bn": ("stem/batch_norm", "stem/tpu_batch_normalization"),
    "top_conv": ("top/conv2d", "head/conv2d"),
    "top_bn": ("top/batch_norm", "head/tpu_batch_normalization"),
}
_BLOCK = re.compile(r"block(\d+)([a-z])_(.+)")


def authors_layer(layer: str) -> str | None:
  """Where a layer of a Keras EfficientNet sits in the authors' model
  (names under ``feature_extraction/``), or None for a layer they do not
  have (the input normalisation). Keras' block ``Nx`` is their part
  ``N + 1``, block ``x`` counted from 1."""
  if layer in _OUTER_LAYERS:
    return _OUTER_LAYERS[layer][0]
  match = _BLOCK.fullmatch(layer)
  if not match or match.group(3) not in _BLOCK_LAYERS:
    return None
  stage, letter, kind = match.groups()
  return (f"part{int(stage) + 1}_block{ord(letter) - ord('a') + 1}/"
          f"{_BLOCK_LAYERS[kind][0]}")


def tpu_layers(model: keras.Model) -> dict[str, str]:
  """The layers of a Keras EfficientNet by their names in a
  tensorflow/tpu EfficientNet checkpoint (without the model's prefix):
  ``{keras layer: tpu scope}``."""
  names = [layer.name for layer in model.layers]
  blocks = list(dict.fromkeys(m.group(1) + m.group(2) for m in
                              map(_BLOCK.fullmatch, names) if m))
  out = {}
  for name in names:
    if name in _OUTER_LAYERS:
      out[name] = _OUTER_LAYERS[name][1]
      continue
    match = _BLOCK.fullmatch(name)
    if not match or match.group(3) not in _BLOCK_LAYERS:
      continue
    block = match.group(1) + match.group(2)
    expands = f"block{block}_expand_conv" in names
    scope = _BLOCK_LAYERS[match.group(3)][1 if expands else 2]
    out[name] = f"blocks_{blocks.index(block)}/{scope}"
  return out


def load_tpu_checkpoint(model: keras.Model, variant: str,
                        path: str) -> None:
  """Loads a tensorflow/tpu EfficientNet checkpoint (e.g. NoisyStudent,
  what the authors' CUB and NABirds runs start from) into ``model``:
  every weight from its exponential moving average, as the authors
  restore it (``restore_dicts/efficientnet-*.p``); the classifier of the
  checkpoint is left out. A missing or mis-shaped weight is an error
  naming each one."""
  reader = tf.train.load_checkpoint(path)
  shapes = reader.get_variable_to_shape_map()
  scopes, missing, misshaped, pairs = tpu_layers(model), [], [], []
  for layer in model.layers:
    if layer.name not in scopes:
      continue
    for weight in layer.weights:
      attr = weight.name.split("/")[-1].split(":")[0]
      key = (f"efficientnet-{variant}/{scopes[layer.name]}/{attr}/"
             "ExponentialMovingAverage")
      if key not in shapes:
        missing.append(key)
      elif list(shapes[key]) != weight.shape.as_list():
        misshaped.append(f"{key} {list(shapes[key])} (the model's "
                         f"{layer.name}/{attr}: {weight.shape.as_list()})")
      else:
        pairs.append((weight, key))
  if missing or misshaped:
    problems = ([f"{len(missing)} missing: " + ", ".join(missing[:8])]
                if missing else []) + (
        [f"{len(misshaped)} of another shape: " + ", ".join(misshaped[:8])]
        if misshaped else [])
    raise ValueError(f"{path} is not a tensorflow/tpu checkpoint of "
                     f"EfficientNet-{variant.upper()}: " + "; ".join(problems))
  for weight, key in pairs:
    weight.assign(reader.get_tensor(key))


def is_checkpoint(path: str) -> bool:
  """Whether ``path`` is a TensorFlow checkpoint prefix."""
  return tf.io.gfile.exists(path + ".index")
