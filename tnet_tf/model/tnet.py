"""TNet: multi-scale hard attention (paper §3.1, Fig. 2) — the architecture.

Level 1 sees the whole image at the base resolution ``r``; at each next level
the location module picks ``k`` cells of every region's ``n×n`` grid, and the
chosen cells are cut from the full-resolution input and resized to ``r``. All
feature vectors get positional information, are averaged (or weighted) and
classified. How TNet is trained (the learning rule, its baseline, the
optimisers) is the task's: ``tnet_tf.training.tasks.TNetClassifier``.

The traversal is ``start`` (level 1), one ``descend`` per level with
locations (``plan``: the cells, before any pixel is read; ``encode``: their
pixels; ``grow``: the next state), then ``readout``; ``call`` composes
them, other graphs compose them differently: adaptive attention
(``tnet_tf.model.adaptive``), TFLite (``tnet_tf.inference.tflite``), stages
whose pixels a host reads between them (``tnet_tf.model.staged``: slides
through a SavedModel). Pixels are read through an image source
(``tnet_tf.model.sources``), in memory or from files alike.
"""
from __future__ import annotations

from typing import Optional, Sequence
import weakref

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import backbones
from tnet_tf.model import inputs
from tnet_tf.model import resampling
from tnet_tf.model import sources
from tnet_tf.config import ModelConfig
from tnet_tf.model.layers import grid
from tnet_tf.model.layers import positional
from tnet_tf.model.layers.base import LayerHook
from tnet_tf.model.layers.classification import ClassificationModule
from tnet_tf.model.layers.feature_weighting import FeatureWeightingModule
from tnet_tf.model.layers.location import LocationModule
from tnet_tf.model.layers.positional import PositionalEncodingModule
from tnet_tf.model.outputs import TNetOutput


def plackett_luce_log_probs(log_probs: tf.Tensor,
                            indices: tf.Tensor) -> tf.Tensor:
  """Log-probability of each draw of an ordered sample without replacement,
  given the draws before it: ``log p(i_j) − log(1 − Σ_{m<j} p(i_m))``
  (``[M, k]``; their sum is the Plackett–Luce log-probability of the
  ordered draw, what REINFORCE needs for Gumbel-top-k samples)."""
  chosen = tf.gather(log_probs, indices, batch_dims=1)  # [M, k]
  before = tf.math.cumsum(tf.exp(chosen), axis=-1, exclusive=True)
  return chosen - tf.math.log(tf.maximum(1.0 - before, 1e-12))


def gumbel_top_k(log_probs: tf.Tensor, k: int,
                 seed: Optional[int] = None) -> tf.Tensor:
  """Samples ``k`` distinct indices per row without replacement.

  Perturbing log-probabilities with Gumbel noise and taking the top-k draws
  an ordered sample from the Plackett–Luce distribution, i.e. sequential
  sampling without replacement from the categorical distribution.
  """
  u = tf.random.uniform(tf.shape(log_probs), minval=1e-12, maxval=1.0,
                        seed=seed)
  return tf.math.top_k(log_probs - tf.math.log(-tf.math.log(u)), k).indices


class Sampling:
  """The ops of ``resampling="align_corners"``: ``crop_and_resize(images,
  boxes, box_indices, size)`` with boxes as in ``tf.image.crop_and_resize``
  (bilinear, float32 out), and ``whole(images, size)``, the same for the box
  (0, 0, 1, 1) of every image. A traversal may use others
  (``TNet.start(sampling=...)``: ``tnet_tf.inference.tflite`` traces with TFLite
  builtin ops). The other resamplings are builtin ops already, except that
  ``"antialias"`` takes level 1 from ``area(images, size)`` where the
  sampling has it (a box filter of the exact ratio in one pass; ``None``:
  it supersamples with gathers instead)."""

  @staticmethod
  def area(images, size):
    return tf.image.resize(tf.cast(images, tf.float32), size, method="area")

  @staticmethod
  def crop_and_resize(images, boxes, box_indices, size):
    return tf.image.crop_and_resize(images, boxes, box_indices, size)

  @staticmethod
  def whole(images, size):
    # crop_and_resize of (0, 0, 1, 1) samples exactly as an align-corners
    # bilinear resize, which keeps uint8 pixels uint8 until the output
    return tf.raw_ops.ResizeBilinear(images=images, size=size,
                                     align_corners=True,
                                     half_pixel_centers=False)


def level_geometry(config: ModelConfig, input_hw: Sequence[int]) -> list[dict]:
  """Per level: native region size in pixels and its resize factor to ``r``."""
  r = config.base_resolution
  rows = []
  for level, (h, w) in enumerate(
      grid.cell_sizes(input_hw, config.cell_fraction, config.levels), start=1):
    rows.append({"level": level, "region_px": (h, w), "scale": r / min(h, w),
                 "upsampled": min(h, w) < r * (1 - 1e-6)})
  return rows


def build_backbone(config: ModelConfig) -> backbones.FeatureExtractor:
  """The feature extraction module a config names, for its grid."""
  kwargs = dict(config.backbone_kwargs)
  kwargs.setdefault("base_resolution", config.base_resolution)
  kwargs.setdefault("grid_size", config.grid_size)
  if config.backbone.startswith("efficientnet") or (
      config.backbone == "tiny_cnn"):
    kwargs.setdefault("cell_fraction", config.cell_fraction)
  return backbones.build(config.backbone, **kwargs)


def check_backbone(backbone: backbones.FeatureExtractor,
                   config: ModelConfig) -> None:
  """A backbone made for another base resolution or grid is an error."""
  if backbone.base_resolution != config.base_resolution:
    raise ValueError(f"backbone base resolution {backbone.base_resolution} "
                     f"!= config.base_resolution {config.base_resolution}")
  if backbone.grid_size != config.grid_size:
    raise ValueError(f"backbone gives a {backbone.grid_size}x"
                     f"{backbone.grid_size} F map, config.grid_size is "
                     f"{config.grid_size}")


def pathwise_factors(log_p: tf.Tensor) -> tf.Tensor:
  """``[B, N]`` factors equal to 1 whose gradient is that of each attended
  cell's log p ``[B, N-1]`` (1 for the whole image): scaling the features
  by them lets the classification loss reach the location module through
  the average (as attention sampling does), beside REINFORCE."""
  factors = tf.exp(log_p - tf.stop_gradient(log_p))
  return tf.concat([tf.ones_like(factors[:, :1]), factors], axis=1)


def describe(cfg: ModelConfig) -> list[str]:
  """Lines on the grid and, for a configured input size, each level's
  regions in pixels (what ``TNet.summary`` prints)."""
  lines = [f"TNet: base resolution {cfg.base_resolution}, grid "
           f"{cfg.grid_size}x{cfg.grid_size} (cells {cfg.cell_fraction:g} of "
           f"the parent), levels {cfg.levels}, locations "
           f"{list(cfg.locations)}"]
  if cfg.input_size:
    for row in level_geometry(cfg, cfg.input_size):
      h, w = row["region_px"]
      note = (f"UPSAMPLED x{row['scale']:.2f} (cells smaller than the base "
              "resolution)" if row["upsampled"] else
              f"downscaled x{1 / row['scale']:.2f}")
      lines.append(f"  level {row['level']}: regions {h:.1f}x{w:.1f} px at "
                   f"input {list(cfg.input_size)} -> {note}")
  return lines


# backbones traced for eager traversals of files (kept outside the models:
# a traced function is no part of a model's checkpoint or SavedModel)
_TRACED_BACKBONES = weakref.WeakKeyDictionary()

# the traversal state's per-level lists, in the order ``_descend_if`` packs
_LEVEL_KEYS = ("all_v", "all_boxes", "all_pos", "all_levels", "all_logp",
               "location_probs", "location_indices")


class TNet(keras.Model):
  """The Traversal Network.

  Call: ``model(images, training=False, locations=[2, 1])`` with images
  ``[B, H, W, 1|3]`` of any size (uint8 or float pixel values in [0, 255])
  or an image source (``tnet_tf.model.sources.ImageSource``: e.g. slides
  read region by region, ``tnet_tf.data.regions.Regions``); ``locations``
  may also be an int tensor ``[levels - 1]`` (one graph for every setting,
  as the serving signatures need).
  Returns the attention record, a dict (its typed view:
  ``tnet_tf.model.outputs.TNetOutput.of``): ``logits`` ``[B, C]`` and, with
  ``N = 1 + attended locations`` feature vectors per image in level order:
  ``feature_logits`` ``[B, N, C]``, ``feature_weights`` ``[B, N]``, ``boxes``
  ``[B, N, 4]`` (y0, x0, y1, x1 in input pixels), ``levels`` ``[N]``,
  ``positions`` ``[B, N, 3]``, ``location_log_probs`` ``[B, N-1]`` (log
  probability of each attended cell), ``embedding`` ``[B, D]`` and, per level
  with a decision, ``location_probs`` ``[B, G, n²]`` and ``location_indices``
  ``[B, G, k]`` (``G`` regions of that level per image).

  ``backbone`` replaces the one the config names; ``layer_hook(path,
  layer)`` sees every sub-layer the modules make (``tnet_tf.tools.compress``
  wraps them for pruning or quantization-aware training).
  """

  def __init__(self, config: ModelConfig,
               backbone: Optional[backbones.FeatureExtractor] = None,
               layer_hook: Optional[LayerHook] = None, **kwargs):
    kwargs.setdefault("name", "tnet")
    super().__init__(**kwargs)
    self.config = config
    backbone = backbone or build_backbone(config)
    check_backbone(backbone, config)
    self.feature_extraction = backbone
    self.sampling = Sampling()
    self.resampling = resampling.create(config.resampling, config.grid_size,
                                        config.cell_fraction)
    # which cells overlap which: fixed by the grid, built once
    self._overlap = (grid.overlapping_cells(config.grid_size,
                                            config.cell_fraction)
                     if config.policy.overlap_suppression else None)
    hook = {"layer_hook": layer_hook, "initializers": (
        config.initializers or backbone.initializers)}
    self.location_module = LocationModule(
        config.location_variant or backbone.location_variant,
        config.location_hidden_dim,
        learned_scale=config.policy.location_scale == "learned",
        name="location_module", **hook)
    self.positional_module = PositionalEncodingModule(
        config.positional_variant or backbone.positional_variant,
        name="positional_encoding_module", **hook)
    self.classification_module = ClassificationModule(
        config.num_classes, config.dropout, name="classification_module",
        **hook)
    self.feature_weighting = (
        FeatureWeightingModule(name="feature_weighting", **hook)
        if config.feature_weighting else None)
    dim = backbone.feature_dim
    # Build every sub-layer now so weights exist before the first call
    # (checkpoint restore, summaries, parameter counts).
    self.location_module.build(
        [[None, config.grid_size, config.grid_size, backbone.f_channels],
         [None, dim]])
    self.positional_module.build([[None, dim], [None, 3]])
    self.classification_module.build([None, dim])
    if self.feature_weighting is not None:
      self.feature_weighting.build([None, None, dim])
    r = config.base_resolution
    self.build_input_shape = (None, r, r, 3)
    self.built = True

  @property
  def levels(self) -> int:
    return self.config.levels

  @property
  def default_locations(self) -> tuple[int, ...]:
    return self.config.locations

  # ----------------------------------------------------------------- forward
  def call(self, images, training=None, locations=None, exploration=None):
    """``exploration`` (training only): a scalar scale of Gumbel noise added
    to the location log-probabilities before the top-k (large: cells at
    random; 0: greedy), in place of the configured selection."""
    cfg = self.config
    if locations is None:
      locations = cfg.locations
    elif tf.is_tensor(locations):
      locations = inputs.check_location_tensor(locations, cfg.levels,
                                               cfg.grid_size)
    else:
      locations = inputs.check_locations(locations, cfg.levels, cfg.grid_size)
    state = self.start(images, training=training)
    if training and exploration is not None:
      state["exploration"] = exploration
    active = None
    for k in locations:
      if tf.is_tensor(k):  # serving: one graph for every setting
        active = k > 0 if active is None else tf.logical_and(active, k > 0)
        state = self._descend_if(state, k, active, training)
      else:
        state = self.descend(state, k, training=training)
    return self.readout(state, training=training)

  def start(self, images, training=None,
            sampling: Optional[Sampling] = None) -> dict:
    """Level 1 on the whole image: the traversal state after one level.
    ``images``: pixels or an image source (``sources.image_source``)."""
    sampling = sampling or self.sampling
    r = self.config.base_resolution
    images = sources.image_source(images, self.config.check_numerics)
    batch = images.batch
    crops = images.whole(self.resampling, sampling, r)  # [B, r, r, C]
    boxes = tf.tile(tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), [batch, 1, 1])
    pos = tf.zeros([batch, 1, 3])
    f_map, v = self._features(crops, bool(training), images.host_reads)
    return {"images": images, "image_hw": tf.stack(images.image_hw()),
            "sampling": sampling, "batch": batch,
            "regions": 1, "f_map": f_map, "boxes": boxes, "pos": pos,
            "bounds": boxes, "all_v": [v], "all_boxes": [boxes], "all_pos": [pos],
            "all_levels": [tf.zeros([1], tf.int32)], "all_logp": [],
            "num": 1, "depth": 1, "location_probs": [],
            "location_indices": []}

  def descend(self, state: dict, k, training=None) -> dict:
    """The next level: ``k`` (int or scalar int tensor, > 0) cells of every
    region of the current level, cropped and encoded: ``plan``, ``encode``
    of its ``reads``, ``grow``. A new state."""
    plan = self.plan(state, k, training=training)
    boxes, box_image, depth, bounds = self.reads(plan)
    f_map, v = self.encode(state, boxes, box_image, depth, training,
                           bounds=bounds)
    return self.grow(state, plan, f_map, v)

  def plan(self, state: dict, k, training=None) -> dict:
    """What ``descend`` decides before reading pixels: the location
    module's ``log_probs`` ``[B·G, n²]``, the cells it selects ``indices``
    ``[B·G, k]`` with their log p ``chosen`` (``select``), those cells as
    normalised ``boxes`` ``[B, G·k, 4]`` with positions ``pos``
    ``[B, G·k, 3]``, their image ``box_image`` ``[B·G·k]``, what each may
    read ``bounds`` ``[B, G·k, 4]`` (``resampling.parent_bounds``), their
    level ``depth``, ``k`` and their number per image ``regions`` (G·k)."""
    logits = self.location_module([state["f_map"], state["all_v"][-1]])
    log_probs = tf.nn.log_softmax(logits)  # [B*G, n²]
    idx, chosen_logp = self.select(log_probs, k, bool(training),
                                   state.get("exploration"))
    depth = state["depth"]  # levels so far; the new one is depth + 1
    boxes, pos = self.children(state, idx, k, depth)
    children = state["regions"] * k
    return {"log_probs": log_probs, "indices": idx, "chosen": chosen_logp,
            "boxes": boxes, "pos": pos,
            "box_image": tf.repeat(tf.range(state["batch"]), children),
            # what each cell may read: the region it divides (from level 3
            # on, less than the image)
            "bounds": resampling.parent_bounds(state["boxes"],
                                               state["bounds"], k),
            "depth": depth + 1, "k": k, "regions": children}

  @staticmethod
  def reads(plan: dict) -> tuple:
    """What ``encode`` reads for ``plan``: boxes ``[M, 4]``, their images
    ``[M]``, their level and their bounds ``[M, 4]`` (``None`` at level 2:
    the image)."""
    return (tf.reshape(plan["boxes"], [-1, 4]), plan["box_image"],
            plan["depth"],
            tf.reshape(plan["bounds"], [-1, 4]) if plan["depth"] > 2
            else None)

  def grow(self, state: dict, plan: dict, f_map, v) -> dict:
    """The state after ``plan``'s cells were encoded as ``f_map`` and ``v``
    (``encode``): what ``descend`` returns."""
    batch, regions, k = state["batch"], state["regions"], plan["k"]
    children = plan["regions"]
    n2 = self.config.grid_size ** 2
    new = (v, plan["boxes"], plan["pos"],
           tf.fill([children], plan["depth"] - 1),
           tf.reshape(plan["chosen"], [batch, children]),
           tf.reshape(tf.exp(plan["log_probs"]), [batch, regions, n2]),
           tf.reshape(plan["indices"], [batch, regions, k]))
    return {**state, "regions": children, "f_map": f_map,
            "boxes": plan["boxes"], "pos": plan["pos"],
            "bounds": plan["bounds"], "num": state["num"] + children,
            "depth": plan["depth"],
            **{key: state[key] + [value]
               for key, value in zip(_LEVEL_KEYS, new)}}

  def readout(self, state: dict, training=None, valid=None) -> dict:
    """Positional encoding, averaging (or weighting) and classification of
    every feature vector so far: the output record of ``call``. ``valid``
    ``[N]`` (1 or 0) leaves feature vectors out of the average (weight 0)."""
    training = bool(training)
    batch, num = state["batch"], state["num"]
    # [B, N, D] in level order
    dim = self.feature_extraction.feature_dim
    features = tf.concat(
        [tf.reshape(f, [batch, -1, dim]) for f in state["all_v"]], axis=1)
    positions = tf.concat(state["all_pos"], axis=1)
    features = self.positional_module(
        [tf.reshape(features, [-1, dim]), tf.reshape(positions, [-1, 3])])
    features = tf.reshape(features, [batch, num, dim])
    if self.feature_weighting is not None:
      weights = self.feature_weighting(features, valid=valid)
    elif valid is None:
      weights = tf.fill([batch, num], 1.0 / tf.cast(num, tf.float32))
    else:
      valid = tf.cast(valid, tf.float32)
      weights = tf.tile(tf.expand_dims(valid / tf.reduce_sum(valid), 0),
                        [batch, 1])
    if training and self.config.policy.location_gradient == "pathwise" and (
        state["all_logp"]):
      weights = weights * pathwise_factors(tf.concat(state["all_logp"], 1))
    # expand_dims, not [..., None]: the TFLite converter has a builtin for it
    scale = tf.expand_dims(tf.cast(weights, features.dtype), -1)
    embedding = tf.reduce_sum(features * scale, axis=1)
    return TNetOutput(
        logits=self.classification_module(embedding, training=training),
        feature_logits=self.classification_module(features,
                                                  training=training),
        feature_weights=weights,
        embedding=tf.cast(embedding, tf.float32),
        boxes=grid.to_pixels(tf.concat(state["all_boxes"], axis=1),
                             state["image_hw"]),
        levels=tf.concat(state["all_levels"], axis=0) + 1,
        positions=positions,
        location_log_probs=(tf.concat(state["all_logp"], axis=1)
                            if state["all_logp"] else tf.zeros([batch, 0])),
        location_probs=state["location_probs"],
        location_indices=state["location_indices"]).as_dict()

  # The steps' parts, public for traversals composed outside the class.
  def select(self, log_probs, k, training=None, exploration=None):
    """Cells ``[M, k]`` of ``log_probs`` ``[M, n²]`` and the log p REINFORCE
    uses for each: greedy top-k (marginal log p); in training, Gumbel-top-k
    samples (the Plackett–Luce log p of the ordered draw) or top-k under
    noise of scale ``exploration`` (marginal log p: noise explores, the
    policy is the model's)."""
    def top_k(scores):
      if self._overlap is not None:
        return grid.suppressed_top_k(scores, k, self._overlap)
      return tf.math.top_k(scores, k).indices

    if training and exploration is not None:
      noise = -tf.math.log(-tf.math.log(tf.random.uniform(
          tf.shape(log_probs), 1e-12, 1.0)))
      idx = top_k(log_probs + exploration * noise)
    elif training and self.config.policy.selection == "sampling":
      idx = gumbel_top_k(log_probs, k)
      return idx, plackett_luce_log_probs(log_probs, idx)
    else:
      idx = top_k(log_probs)
    return idx, tf.gather(log_probs, idx, batch_dims=1)

  def children(self, state: dict, idx, k, depth: int) -> tuple:
    """The ``k`` cells ``idx`` (``[B·G, k]``) of each of the current
    level's regions (of level ``depth``): normalised boxes ``[B, G·k, 4]``
    and positions ``[B, G·k, 3]``, in region order."""
    batch, regions = state["batch"], state["regions"]
    cells = tf.reshape(idx, [batch, regions, k])
    boxes = self.resampling.children(state["boxes"], cells,
                                     state["images"].image_hw(), depth)
    pos = positional.child_positions(tf.expand_dims(state["pos"], 2), cells,
                                     self.config.grid_size)
    return (tf.reshape(boxes, [batch, regions * k, 4]),
            tf.reshape(pos, [batch, regions * k, 3]))

  def encode(self, state: dict, boxes, box_image, depth: int,
             training=None, bounds=None) -> tuple:
    """(F, V) of the regions ``boxes`` (normalised ``[M, 4]``, of level
    ``depth``) of the images ``box_image``: read at ``r×r`` from the
    state's image source (pixels outside ``bounds``, normalised ``[M, 4]``,
    read the padding; ``None``: the image), then the feature extraction
    module."""
    r = self.config.base_resolution
    images = state["images"]
    crops = images.crops(self.resampling, state["sampling"], boxes,
                         box_image, r, depth, bounds)  # [M, r, r, C]
    return self._features(crops, bool(training), images.host_reads)

  def _features(self, crops, training, host_reads=False):
    """(F, V) of float crops ``[M, r, r, 1|3]`` (grey crops tiled to RGB).
    In an eager traversal of a source read on the host (``host_reads``)
    the backbone runs as one traced graph instead of layer by layer."""
    if crops.shape[-1] == 1:
      crops = tf.tile(crops, [1, 1, 1, 3])
    if host_reads and tf.executing_eagerly() and not training:
      traced = _TRACED_BACKBONES.get(self.feature_extraction)
      if traced is None:
        r = self.config.base_resolution
        backbone = self.feature_extraction
        traced = tf.function(
            lambda x: backbone(x, training=False),
            input_signature=[tf.TensorSpec([None, r, r, 3], tf.float32)])
        _TRACED_BACKBONES[backbone] = traced
      return traced(tf.cast(crops, tf.float32))
    return self.feature_extraction(crops, training=training)

  def _descend_if(self, state: dict, k: tf.Tensor, active: tf.Tensor,
                  training) -> dict:
    """``descend`` if ``active`` (this level and all before it have
    locations), else a level without regions — built from empty tensors,
    never by running the backbone on an empty batch (which TF's oneDNN
    convolutions reject)."""
    n2 = self.config.grid_size ** 2
    batch = state["batch"]
    regions = tf.convert_to_tensor(state["regions"], tf.int32)

    def run():
      new = self.descend(state, k, training=training)
      return (tf.convert_to_tensor(new["regions"], tf.int32), new["f_map"],
              new["boxes"], new["pos"], new["bounds"],
              tuple(new[key][-1] for key in _LEVEL_KEYS))

    def skip():
      return (tf.zeros([], tf.int32), state["f_map"][:0],
              state["boxes"][:, :0], state["pos"][:, :0],
              state["bounds"][:, :0],
              (state["all_v"][-1][:0], state["boxes"][:, :0],
               state["pos"][:, :0], tf.zeros([0], tf.int32),
               tf.zeros([batch, 0]), tf.zeros([batch, regions, n2]),
               tf.zeros([batch, regions, 0], tf.int32)))

    children, f_map, boxes, pos, bounds, level = tf.cond(active, run, skip)
    return {**state, "regions": children, "f_map": f_map, "boxes": boxes,
            "pos": pos, "bounds": bounds, "num": state["num"] + children,
            "depth": state["depth"] + 1,
            **{key: state[key] + [value]
               for key, value in zip(_LEVEL_KEYS, level)}}

  # ------------------------------------------------------------- inspection
  def summary(self, *args, print_fn=None, **kwargs):
    super().summary(*args, print_fn=print_fn, **kwargs)
    for line in describe(self.config):
      (print_fn or print)(line)

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(ModelConfig(**config["config"]),
               name=config.get("name", "tnet"))
