"""TNet: multi-scale hard attention (paper §3.1, Fig. 2).

Level 1 sees the whole image at the base resolution ``r``; at each next level
the location module picks ``k`` cells of every region's ``n×n`` grid, and the
chosen cells are cut from the full-resolution input and resized to ``r``. All
feature vectors get positional information, are averaged (or weighted) and
classified.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf import backbones
from tnet_tf import losses
from tnet_tf.config import ModelConfig
from tnet_tf.layers import grid
from tnet_tf.layers import positional
from tnet_tf.layers.classification import ClassificationModule
from tnet_tf.layers.feature_weighting import FeatureWeightingModule
from tnet_tf.layers.location import LocationModule
from tnet_tf.layers.positional import PositionalEncodingModule

_IMAGE_DTYPES = (tf.uint8, tf.uint16, tf.int8, tf.int16, tf.int32, tf.int64,
                 tf.float16, tf.bfloat16, tf.float32, tf.float64)


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


def features_per_level(locations: Sequence[int]) -> list[int]:
  """Regions per image at each level: ``[1, k1, k1·k2, ...]``."""
  counts = [1]
  for k in locations:
    counts.append(counts[-1] * k)
  return counts


def total_locations(locations: Sequence[int]) -> int:
  """Attended locations per image: ``k1 + k1·k2 + ...`` (``N − 1``)."""
  return sum(features_per_level(locations)) - 1


class Sampling:
  """How TNet samples pixels: ``crop_and_resize(images, boxes, box_indices,
  size)`` with boxes as in ``tf.image.crop_and_resize`` (bilinear, float32
  out), and ``whole(images, size)``, the same for the box (0, 0, 1, 1) of
  every image. ``TNet.sampling`` may be swapped (``tnet_tf.tflite`` traces
  with TFLite builtin ops)."""

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


class TNet(keras.Model):
  """The Traversal Network.

  Call: ``model(images, training=False, locations=[2, 1])`` with images
  ``[B, H, W, 1|3]`` of any size (uint8 or float pixel values in [0, 255]);
  ``locations`` may also be an int tensor ``[levels - 1]`` (one graph for
  every setting, as the serving signatures need).
  Returns a dict: ``logits`` ``[B, C]`` and the attention record, with
  ``N = 1 + attended locations`` feature vectors per image in level order:
  ``feature_logits`` ``[B, N, C]``, ``feature_weights`` ``[B, N]``, ``boxes``
  ``[B, N, 4]`` (y0, x0, y1, x1 in input pixels), ``levels`` ``[N]``,
  ``positions`` ``[B, N, 3]``, ``location_log_probs`` ``[B, N-1]`` (log
  probability of each attended cell), ``embedding`` ``[B, D]`` and, per level
  with a decision, ``location_probs`` ``[B, G, n²]`` and ``location_indices``
  ``[B, G, k]`` (``G`` regions of that level per image).
  """

  def __init__(self, config: ModelConfig,
               backbone: Optional[backbones.FeatureExtractor] = None,
               **kwargs):
    kwargs.setdefault("name", "tnet")
    super().__init__(**kwargs)
    self.config = config
    if backbone is None:
      backbone_kwargs = dict(config.backbone_kwargs)
      backbone_kwargs.setdefault("base_resolution", config.base_resolution)
      backbone_kwargs.setdefault("grid_size", config.grid_size)
      if config.backbone.startswith("efficientnet") or (
          config.backbone == "tiny_cnn"):
        backbone_kwargs.setdefault("cell_fraction", config.cell_fraction)
      backbone = backbones.build(config.backbone, **backbone_kwargs)
    if backbone.base_resolution != config.base_resolution:
      raise ValueError(f"backbone base resolution {backbone.base_resolution} "
                       f"!= config.base_resolution {config.base_resolution}")
    if backbone.grid_size != config.grid_size:
      raise ValueError(f"backbone gives a {backbone.grid_size}x"
                       f"{backbone.grid_size} F map, config.grid_size is "
                       f"{config.grid_size}")
    self.feature_extraction = backbone
    self.sampling = Sampling()
    self.location_module = LocationModule(
        config.location_variant or backbone.location_variant,
        config.location_hidden_dim, name="location_module")
    self.positional_module = PositionalEncodingModule(
        config.positional_variant or backbone.positional_variant,
        name="positional_encoding_module")
    self.classification_module = ClassificationModule(
        config.num_classes, config.dropout, name="classification_module")
    self.feature_weighting = (FeatureWeightingModule(name="feature_weighting")
                              if config.feature_weighting else None)
    self._cells = tf.constant(
        grid.cell_boxes(config.grid_size, config.cell_fraction), tf.float32)
    dim = backbone.feature_dim
    r = config.base_resolution
    # Build every sub-layer now so weights exist before the first call
    # (checkpoint restore, summaries, parameter counts).
    self.location_module.build(
        [[None, config.grid_size, config.grid_size, backbone.f_channels],
         [None, dim]])
    self.positional_module.build([[None, dim], [None, 3]])
    self.classification_module.build([None, dim])
    if self.feature_weighting is not None:
      self.feature_weighting.build([None, None, dim])
    # EMA baseline of the rewards (non-trainable: saved in checkpoints,
    # identical on every replica).
    self.baseline = self.add_weight(
        name="reinforce_baseline", shape=(), dtype=tf.float32,
        initializer=keras.initializers.Constant(0.5), trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.eval_locations: Optional[Sequence[int]] = None  # None: config's
    self.loss_config = losses.LossConfig()
    self.backbone_optimizer = None
    self._tnet_metrics: dict = {}
    self.build_input_shape = (None, r, r, 3)
    self.built = True

  # ------------------------------------------------------------------ inputs
  def _check_locations(self, locations) -> tuple[int, ...]:
    cfg = self.config
    if locations is None:
      return cfg.locations
    if tf.is_tensor(locations):
      return self._check_location_tensor(locations)
    if isinstance(locations, (int, np.integer)):
      locations = [int(locations)]
    try:
      if isinstance(locations, (str, bytes)):
        raise TypeError("a string")
      locations = tuple(int(k) for k in locations)
    except (TypeError, ValueError) as err:
      raise TypeError(f"locations must be a list of ints per level, got "
                      f"{locations!r}") from err
    while locations and locations[-1] == 0:  # trailing zeros are no-ops
      locations = locations[:-1]
    if len(locations) > cfg.levels - 1:
      raise ValueError(
          f"locations {list(locations)} asks for {len(locations) + 1} levels; "
          f"this model has levels={cfg.levels} (at most {cfg.levels - 1} "
          "entries)")
    cells = cfg.grid_size ** 2
    for level, k in enumerate(locations, start=2):
      if not 0 <= k <= cells:
        raise ValueError(
            f"locations for level {level} is {k}; allowed range is 0..{cells} "
            f"(the {cfg.grid_size}x{cfg.grid_size} grid has {cells} cells)")
    if 0 in locations:
      raise ValueError(f"locations {list(locations)}: a level after one "
                       "with 0 locations has no regions to refine")
    return locations

  def _check_location_tensor(self, locations: tf.Tensor) -> tuple:
    """An integer tensor ``[levels - 1]`` → one scalar tensor per level
    (serving: a different number of locations per request, one graph).
    A level with 0 locations has no regions, nor have the levels after it."""
    cfg = self.config
    if not locations.dtype.is_integer:
      raise TypeError(f"locations tensor must be an integer dtype, got "
                      f"{locations.dtype.name}")
    if locations.shape.rank != 1 or (
        locations.shape[0] is not None and
        locations.shape[0] != cfg.levels - 1):
      raise ValueError(f"locations tensor must have shape "
                       f"[{cfg.levels - 1}] (levels - 1), got "
                       f"{locations.shape}")
    cells = cfg.grid_size ** 2
    locations = tf.cast(locations, tf.int32)
    checks = [
        tf.debugging.assert_equal(
            tf.size(locations), cfg.levels - 1,
            message=f"locations must give {cfg.levels - 1} values"),
        tf.debugging.assert_non_negative(
            locations, message="locations must be >= 0"),
        tf.debugging.assert_less_equal(
            locations, cells,
            message=f"locations per level must be <= {cells} (the cells of "
                    f"the {cfg.grid_size}x{cfg.grid_size} grid)")]
    with tf.control_dependencies(checks):
      locations = tf.identity(locations)
    return tuple(locations[i] for i in range(cfg.levels - 1))

  def _check_images(self, images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
      raise ValueError(f"images must be rank 4 [batch, height, width, "
                       f"channels], got shape {images.shape}")
    if images.dtype not in _IMAGE_DTYPES:
      raise TypeError(f"images dtype must be one of "
                      f"{[d.name for d in _IMAGE_DTYPES]}, got "
                      f"{images.dtype.name}")
    channels = images.shape[-1]
    if channels not in (1, 3):
      raise ValueError(f"images must have 1 or 3 channels, got {channels} "
                       f"(shape {images.shape})")
    for axis, name in ((0, "batch"), (1, "height"), (2, "width")):
      if images.shape[axis] == 0:
        raise ValueError(f"images have zero {name} (shape {images.shape})")
    asserts = [tf.debugging.assert_positive(
        tf.shape(images)[:3],
        message="images must be non-empty: batch, height and width > 0")]
    if self.config.check_numerics and images.dtype.is_floating:
      asserts.append(tf.debugging.assert_all_finite(
          images, "images contain NaN or Inf values"))
    with tf.control_dependencies(asserts):
      return tf.identity(images)

  # ----------------------------------------------------------------- forward
  def _extract(self, images, boxes, box_image, training):
    """Crops normalised ``boxes`` [M, 4] of ``images`` → (F, V) of the crops.
    ``boxes=None``: the whole image of each example (level 1)."""
    r = self.config.base_resolution
    if boxes is None:
      crops = self.sampling.whole(images, [r, r])
    else:
      crops = self.sampling.crop_and_resize(
          images, grid.crop_boxes(boxes, tf.shape(images)[1:3]), box_image,
          [r, r])  # float32 [M, r, r, C]
    if crops.shape[-1] == 1:
      crops = tf.tile(crops, [1, 1, 1, 3])
    return self.feature_extraction(crops, training=training)

  def _select(self, log_probs, k, training):
    if training and self.config.selection == "sampling":
      return gumbel_top_k(log_probs, k)
    return tf.math.top_k(log_probs, k).indices

  def call(self, images, training=None, locations=None):
    locations = self._check_locations(locations)
    state = self.start(images, training=training)
    active = None
    for k in locations:
      if tf.is_tensor(k):  # serving: one graph for every setting
        active = k > 0 if active is None else tf.logical_and(active, k > 0)
        state = self._descend_if(state, k, active, training)
      else:
        state = self.descend(state, k, training=training)
    return self.readout(state, training=training)

  _LEVEL_KEYS = ("all_v", "all_boxes", "all_pos", "all_levels", "all_logp",
                 "location_probs", "location_indices")

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
              new["boxes"], new["pos"],
              tuple(new[key][-1] for key in self._LEVEL_KEYS))

    def skip():
      return (tf.zeros([], tf.int32), state["f_map"][:0],
              state["boxes"][:, :0], state["pos"][:, :0],
              (state["all_v"][-1][:0], state["boxes"][:, :0],
               state["pos"][:, :0], tf.zeros([0], tf.int32),
               tf.zeros([batch, 0]), tf.zeros([batch, regions, n2]),
               tf.zeros([batch, regions, 0], tf.int32)))

    children, f_map, boxes, pos, level = tf.cond(active, run, skip)
    return {**state, "regions": children, "f_map": f_map, "boxes": boxes,
            "pos": pos, "num": state["num"] + children,
            **{key: state[key] + [value]
               for key, value in zip(self._LEVEL_KEYS, level)}}

  # The traversal one level at a time: ``call`` is ``start``, one ``descend``
  # per level with locations, then ``readout``. Other graphs can compose the
  # steps differently (``tnet_tf.tflite`` masks levels instead of skipping).
  def start(self, images, training=None) -> dict:
    """Level 1 on the whole image: the traversal state after one level."""
    images = self._check_images(images)
    batch = tf.shape(images)[0]
    boxes = tf.tile(tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), [batch, 1, 1])
    pos = tf.zeros([batch, 1, 3])
    f_map, v = self._extract(images, None, None, bool(training))
    return {"images": images, "batch": batch, "regions": 1,
            "f_map": f_map, "boxes": boxes, "pos": pos,
            "all_v": [v], "all_boxes": [boxes], "all_pos": [pos],
            "all_levels": [tf.zeros([1], tf.int32)], "all_logp": [],
            "num": 1, "location_probs": [], "location_indices": []}

  def descend(self, state: dict, k, training=None) -> dict:
    """The next level: ``k`` (int or scalar int tensor, > 0) cells of every
    region of the current level, cropped and encoded. A new state."""
    cfg = self.config
    training = bool(training)
    batch, regions = state["batch"], state["regions"]
    n2 = cfg.grid_size ** 2
    logits = self.location_module([state["f_map"], state["all_v"][-1]])
    log_probs = tf.nn.log_softmax(logits)  # [B*G, n²]
    idx = self._select(log_probs, k, training)  # [B*G, k]
    chosen_logp = tf.gather(log_probs, idx, batch_dims=1)
    # children: [B, G, k, 4] -> [B, G*k, 4]
    cells = tf.gather(self._cells, idx)
    boxes = tf.reshape(
        grid.child_boxes(tf.expand_dims(state["boxes"], 2),
                         tf.reshape(cells, [batch, regions, k, 4])),
        [batch, regions * k, 4])
    pos = tf.reshape(
        positional.child_positions(tf.expand_dims(state["pos"], 2),
                                   tf.reshape(idx, [batch, regions, k]),
                                   cfg.grid_size),
        [batch, regions * k, 3])
    children = regions * k
    box_image = tf.repeat(tf.range(batch), children)
    f_map, v = self._extract(state["images"], tf.reshape(boxes, [-1, 4]),
                             box_image, training)
    depth = len(state["all_v"])  # levels so far; the new one is depth + 1
    return {
        **state, "regions": children, "f_map": f_map,
        "boxes": boxes, "pos": pos,
        "all_v": state["all_v"] + [v],
        "all_boxes": state["all_boxes"] + [boxes],
        "all_pos": state["all_pos"] + [pos],
        "all_levels": state["all_levels"] + [tf.fill([children], depth)],
        "all_logp": state["all_logp"] + [
            tf.reshape(chosen_logp, [batch, children])],
        "num": state["num"] + children,
        "location_probs": state["location_probs"] + [
            tf.reshape(tf.exp(log_probs), [batch, regions, n2])],
        "location_indices": state["location_indices"] + [
            tf.reshape(idx, [batch, regions, k])]}

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
    # expand_dims, not [..., None]: the TFLite converter has a builtin for it
    scale = tf.expand_dims(tf.cast(weights, features.dtype), -1)
    embedding = tf.reduce_sum(features * scale, axis=1)
    logits = self.classification_module(embedding, training=training)
    feature_logits = self.classification_module(features, training=training)
    boxes = tf.concat(state["all_boxes"], axis=1)
    images = state["images"]
    return {
        "logits": logits,
        "feature_logits": feature_logits,
        "feature_weights": weights,
        "embedding": tf.cast(embedding, tf.float32),
        "boxes": grid.to_pixels(boxes, tf.shape(images)[1:3]),
        "levels": tf.concat(state["all_levels"], axis=0) + 1,
        "positions": positions,
        "location_log_probs": (tf.concat(state["all_logp"], axis=1)
                               if state["all_logp"]
                               else tf.zeros([batch, 0])),
        "location_probs": state["location_probs"],
        "location_indices": state["location_indices"],
    }

  # ---------------------------------------------------------------- training
  def compile(self, optimizer="adam", loss_config=None,
              backbone_optimizer=None, **kwargs):
    """Keras ``compile`` plus the learning rule's hyper-parameters.

    With ``backbone_optimizer`` the feature extractor's variables are updated
    by it (e.g. a smaller learning rate for a pre-trained backbone) and the
    new modules by ``optimizer``.
    """
    kwargs.pop("loss", None)
    super().compile(optimizer=optimizer, **kwargs)
    self.loss_config = loss_config or losses.LossConfig()
    self.backbone_optimizer = (keras.optimizers.get(backbone_optimizer)
                               if backbone_optimizer is not None else None)
    names = ["loss", "ce", "seq_reinforce", "perfeature_ce",
             "perfeature_reinforce", "contrastive", "l2", "reward",
             "baseline", "locations", "entropy"]
    self._tnet_metrics = {n: keras.metrics.Mean(n) for n in names}
    self._tnet_metrics["top1"] = keras.metrics.SparseCategoricalAccuracy(
        "top1")
    self._tnet_metrics["top5"] = keras.metrics.SparseTopKCategoricalAccuracy(
        5, "top5")

  @property
  def metrics(self):
    return list(self._tnet_metrics.values())

  def compute_tnet_loss(self, record, labels, training: bool):
    """Total loss of the rule (this replica's mean) and its terms."""
    cfg = self.loss_config
    terms = losses.tnet_loss_terms(record, labels, self.baseline, cfg)
    total = tf.reduce_mean(terms["per_example"])
    terms["contrastive"] = tf.constant(0.0)
    terms["l2"] = tf.constant(0.0)
    if cfg.contrastive_weight:
      terms["contrastive"] = losses.cosine_contrastive(
          record["embedding"], labels, cfg.contrastive_margin)
      total += cfg.contrastive_weight * terms["contrastive"]
    if cfg.l2 and training:
      terms["l2"] = losses.l2_penalty(self.trainable_variables)
      total += cfg.l2 * terms["l2"]
    return total, terms

  def _update_metrics(self, total, terms, record, labels):
    m = self._tnet_metrics
    m["loss"].update_state(total)
    for name in ("ce", "seq_reinforce", "perfeature_ce",
                 "perfeature_reinforce", "reward"):
      m[name].update_state(terms[name])
    m["contrastive"].update_state(terms["contrastive"])
    m["l2"].update_state(terms["l2"])
    m["baseline"].update_state(self.baseline)
    m["locations"].update_state(
        tf.cast(tf.shape(record["location_log_probs"])[1], tf.float32))
    m["entropy"].update_state(
        losses.location_entropy(record["location_probs"]))
    m["top1"].update_state(labels, record["logits"])
    m["top5"].update_state(labels, record["logits"])
    return {name: metric.result() for name, metric in m.items()}

  def _update_baseline(self, terms):
    """EMA step with rewards averaged over all replicas' images."""
    mask = terms["attended_mask"][None, :]
    sums = tf.stack([
        tf.reduce_sum(terms["reward"]),
        tf.cast(tf.size(terms["reward"]), tf.float32),
        tf.reduce_sum(terms["feature_reward"] * mask),
        tf.reduce_sum(tf.ones_like(terms["feature_reward"]) * mask)])
    ctx = tf.distribute.get_replica_context()
    if ctx is not None:
      sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    target = losses.baseline_target(sums[0], sums[1], sums[2], sums[3],
                                    self.loss_config.lambda_r)
    self.baseline.assign(losses.updated_baseline(
        self.baseline, target, self.loss_config.baseline_decay))

  def split_variables(self):
    """(head, backbone) variables; backbone is empty with one optimiser."""
    backbone_ids = {id(v) for v in self.feature_extraction.trainable_variables}
    if self.backbone_optimizer is None:
      return self.trainable_variables, []
    head = [v for v in self.trainable_variables if id(v) not in backbone_ids]
    return head, self.feature_extraction.trainable_variables

  def train_step(self, data):
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
    samples = self.loss_config.num_samples
    if samples > 1:  # M Monte-Carlo samples of the locations per image
      images = tf.concat([images] * samples, axis=0)
      labels = tf.concat([labels] * samples, axis=0)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    head_vars, backbone_vars = self.split_variables()
    with tf.GradientTape() as tape:
      record = self(images, training=True)
      total, terms = self.compute_tnet_loss(record, labels, training=True)
      # gradients are summed over replicas: scale to the global mean
      objective = total / replicas
      scaled = (self.optimizer.get_scaled_loss(objective)
                if isinstance(self.optimizer,
                              keras.mixed_precision.LossScaleOptimizer)
                else objective)
    grads = tape.gradient(scaled, head_vars + backbone_vars)
    if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
      grads = self.optimizer.get_unscaled_gradients(grads)
    head_grads = grads[:len(head_vars)]
    self.optimizer.apply_gradients(
        [(g, v) for g, v in zip(head_grads, head_vars) if g is not None])
    if backbone_vars:
      backbone_grads = [
          tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))
          for g in grads[len(head_vars):]]
      self.backbone_optimizer.apply_gradients(zip(backbone_grads,
                                                  backbone_vars))
    self._update_baseline(terms)
    return self._update_metrics(total, terms, record, labels)

  def test_step(self, data):
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
    record = self(images, training=False, locations=self.eval_locations)
    total, terms = self.compute_tnet_loss(record, labels, training=False)
    return self._update_metrics(total, terms, record, labels)

  def predict_step(self, data):
    images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return self(images, training=False, locations=self.eval_locations)

  # ------------------------------------------------------------- inspection
  def summary(self, *args, print_fn=None, **kwargs):
    super().summary(*args, print_fn=print_fn, **kwargs)
    print_fn = print_fn or print
    cfg = self.config
    print_fn(f"TNet: base resolution {cfg.base_resolution}, grid "
             f"{cfg.grid_size}x{cfg.grid_size} (cells {cfg.cell_fraction:g} of "
             f"the parent), levels {cfg.levels}, locations "
             f"{list(cfg.locations)}")
    if cfg.input_size:
      for row in level_geometry(cfg, cfg.input_size):
        h, w = row["region_px"]
        note = (f"UPSAMPLED x{row['scale']:.2f} (cells smaller than the base "
                "resolution)" if row["upsampled"] else
                f"downscaled x{1 / row['scale']:.2f}")
        print_fn(f"  level {row['level']}: regions {h:.1f}x{w:.1f} px at "
                 f"input {list(cfg.input_size)} -> {note}")

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    cfg = dict(config["config"])
    return cls(ModelConfig(**cfg), name=config.get("name", "tnet"))


