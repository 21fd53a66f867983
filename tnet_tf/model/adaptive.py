"""Adaptive attention (two-level TNets): level 1, then level 2's cells a
few at a time in the location module's order, each image stopping as soon
as its running prediction is confident.

A traversal composed from TNet's public steps (``start``, ``select``,
``children``, ``encode`` and its modules), like the TFLite graph
(``tnet_tf.inference.tflite``): ``call_adaptive(model, images, threshold)``
serves, evaluates and records attention (``tnet_tf.inference.export``,
``tnet_tf.training.evaluation``, ``tnet_tf.inference.attention``);
``running(model, images)`` reads the whole traversal at once, what fitting
a halting module needs (``tnet_tf.inference.adaptive``).
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tnet_tf.model import inputs
from tnet_tf.model.layers import grid
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.model.tnet import TNet

# how call_adaptive scores the running prediction's confidence
RULES = ("max_probability", "margin", "learned")


def _unsupported(model) -> Optional[str]:
  """Why ``model`` cannot attend adaptively; ``None`` if it can."""
  if not isinstance(model, TNet):
    return (f"adaptive attention needs a two-level TNet, not a "
            f"{type(model).__name__}")
  cfg = model.config
  if cfg.levels != 2:
    return (f"adaptive attention steps through the cells of level 2 of a "
            f"two-level TNet; this one has {cfg.levels} levels")
  if model.feature_weighting is not None:
    return ("adaptive attention averages the feature vectors read so far; "
            "a feature weighting module is not supported")
  return None


def supports_adaptive(model) -> bool:
  """Whether ``model`` can attend adaptively: a two-level TNet without a
  feature weighting module."""
  return _unsupported(model) is None


def _start(model: TNet, images, k, rule=None, halting=None) -> dict:
  """Level 1 and the order of level 2's cells (the location module's
  greedy top-``k``): what an adaptive traversal starts from."""
  cfg = model.config
  problem = _unsupported(model)
  if problem:
    raise ValueError(problem)
  if rule is not None and rule not in RULES:
    raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")
  if rule == "learned" and halting is None:
    raise ValueError("rule 'learned' needs a fitted halting module "
                     "(tnet_tf.inference.adaptive --fit_halting)")
  if not tf.is_tensor(k):
    inputs.check_locations([k], cfg.levels, cfg.grid_size)
  state = model.start(images, training=False)
  log_probs = tf.nn.log_softmax(model.location_module(
      [state["f_map"], state["all_v"][-1]]))
  idx, chosen = model.select(log_probs, k)  # [B, K], in order
  boxes, pos = model.children(state, idx, k, 1)
  level1 = model.positional_module([state["all_v"][0],
                                    tf.reshape(state["pos"], [-1, 3])])
  return {"state": state, "boxes": boxes, "pos": pos, "level1": level1,
          "cell_probs": tf.exp(chosen), "log_probs": log_probs,
          "chosen": chosen, "idx": idx}


def _encode_cells(model: TNet, start: dict, boxes, rows, pos):
  """Positional feature vectors ``[M, D]`` of the cells ``boxes``
  (``[M, 4]``) of the images ``rows`` at positions ``pos``."""
  _, v = model.encode(start["state"], boxes, rows, 2)
  return model.positional_module([v, pos])


def running(model: TNet, images, max_locations=None) -> dict:
  """The adaptive traversal read whole, in one batch: ``logits``
  ``[B, K + 1, C]`` (the running prediction after level 1 and after each
  of the cells in reading order), ``cell_logits`` ``[B, K, C]`` (each
  cell's own) and ``cell_probs`` ``[B, K]`` (their location
  probabilities). ``logits[:, j]`` is what ``call_adaptive`` returns for
  an image that stops after ``j`` cells (what fitting a halting module
  and evaluating many thresholds at once need)."""
  k = model.config.locations[0] if max_locations is None else max_locations
  start = _start(model, images, k)
  batch = start["state"]["batch"]
  v = _encode_cells(model, start, tf.reshape(start["boxes"], [-1, 4]),
                    tf.repeat(tf.range(batch), k),
                    tf.reshape(start["pos"], [-1, 3]))
  v = tf.reshape(v, [batch, k, -1])  # [B, K, D]
  every = tf.concat([tf.expand_dims(start["level1"], 1), v], axis=1)
  mean = tf.math.cumsum(every, axis=1) / tf.reshape(
      tf.range(1, k + 2, dtype=every.dtype), [1, -1, 1])
  classify = model.classification_module
  return {"logits": classify(mean, training=False),
          "cell_logits": classify(v, training=False),
          "cell_probs": start["cell_probs"]}


def call_adaptive(model: TNet, images, threshold, max_locations=None,
                  rule: str = "max_probability", group=1,
                  halting=None, first=None) -> dict:
  """Per-image adaptive attention (two-level TNets): level 1, then the
  level-2 cells ``group`` at a time in the location module's order (its
  greedy top-``max_locations``), every image stopping as soon as its
  running prediction is confident: ``rule`` ``"max_probability"`` (the
  top class probability), ``"margin"`` (top minus second) or
  ``"learned"`` (the sigmoid of a fitted
  ``tnet_tf.model.layers.halting.HaltingModule`` ``halting``) ≥
  ``threshold``. ``first`` (default ``group``): the cells of the first
  step after level 1 — the rule applies after 0, ``first``,
  ``first + group``, … cells (one backbone call for the cells nearly every
  image needs). A threshold of 0 stops every image after level 1; above 1
  none stops early, which is the fixed-k model (k = ``max_locations``,
  default the config's). Only the images still looking are cropped and
  encoded at each step, so a batch's compute shrinks as its images stop.

  Returns the record (``TNetOutput``) of ``logits`` ``[B, C]``,
  ``num_locations`` ``[B]`` (cells each image read), ``boxes``
  ``[B, 1 + K, 4]`` (input pixels, level order; the first K' of each
  image's cells are the ones read), ``attended`` ``[B, 1 + K]`` (1 where a
  feature vector was read), ``levels`` and the rest of ``TNet.call``'s
  attention record for the cells in reading order (``feature_weights``, 0
  where nothing was read, ``location_log_probs``, ``location_probs``,
  ``location_indices``).
  """
  cfg = model.config
  k = cfg.locations[0] if max_locations is None else max_locations
  first = group if first is None else first
  if (not tf.is_tensor(first) and first < 1) or (
      not tf.is_tensor(group) and group < 1):
    raise ValueError(f"group and first must be >= 1 cell, got {group} "
                     f"and {first}")
  traversal = _Traversal(model, _start(model, images, k, rule, halting),
                         threshold, rule, halting, group, first)
  return traversal.record(traversal.run())


class _Traversal:
  """One adaptive traversal of a batch: what every step shares (the start,
  the stopping rule), the step, and the record at the end."""

  def __init__(self, model: TNet, start: dict, threshold, rule: str,
               halting, group, first):
    self.model, self.start = model, start
    self.cfg = model.config
    self.rule, self.halting = rule, halting
    self.group, self.first = group, first
    self.threshold = tf.cast(threshold, tf.float32)
    self.boxes, self.pos = start["boxes"], start["pos"]  # [B, K, 4|3]
    self.cell_probs = start["cell_probs"]  # [B, K]
    # the location probability of the cells not yet read, after each
    self.remaining = tf.math.cumsum(self.cell_probs, axis=1, reverse=True)
    self.batch = start["state"]["batch"]
    self.num = tf.shape(self.boxes)[1]
    self.classify = model.classification_module

  def stop(self, probs, previous, run, votes, read, rows):
    """Whether each of ``rows`` stops now, and its new run length."""
    if self.rule == "learned":
      num = self.num
      at = tf.minimum(read, num - 1)
      after = tf.gather(self.remaining, rows)
      x, run = halting_lib.features(
          probs, previous, run, votes, read,
          tf.where(read < num, tf.gather(tf.gather(self.cell_probs, rows),
                                         at, batch_dims=1), 0.0),
          tf.where(read < num, tf.gather(after, at, batch_dims=1), 0.0),
          # counts on the scale the module was fitted at
          self.halting.max_locations or num)
      score = tf.sigmoid(self.halting(x))
    else:
      top = tf.math.top_k(probs, min(2, self.cfg.num_classes)).values
      score = top[:, 0] if self.rule == "max_probability" else (
          top[:, 0] - top[:, -1])
    return score >= self.threshold, run

  def step(self, j, total, count, probs, votes, run, active, logits):
    """The next ``first`` (at j = 0) or ``group`` cells of the images
    still looking, added to their running sums."""
    rows = tf.cast(tf.where(active)[:, 0], tf.int32)
    size = tf.where(j == 0, self.first, self.group)
    some = tf.gather(self.boxes[:, j:j + size], rows)  # [A, g, 4]
    g = tf.shape(some)[1]
    v = _encode_cells(
        self.model, self.start, tf.reshape(some, [-1, 4]),
        tf.repeat(rows, g),
        tf.reshape(tf.gather(self.pos[:, j:j + size], rows), [-1, 3]))
    cell_votes = tf.reduce_sum(tf.reshape(tf.one_hot(tf.argmax(
        self.classify(v, training=False), -1),
        self.cfg.num_classes), [tf.size(rows), g, -1]), axis=1)
    v = tf.reduce_sum(tf.reshape(v, [tf.size(rows), g, -1]), axis=1)
    at = tf.expand_dims(rows, 1)
    total = tf.tensor_scatter_nd_add(total, at, v)
    count = tf.tensor_scatter_nd_add(
        count, at, tf.fill(tf.shape(rows), tf.cast(g, count.dtype)))
    new = self.classify(
        tf.gather(total, rows) / tf.expand_dims(tf.gather(count, rows), 1),
        training=False)
    new_probs = tf.nn.softmax(tf.cast(new, tf.float32))
    new_votes = tf.gather(votes, rows) + cell_votes
    done, new_run = self.stop(new_probs, tf.gather(probs, rows),
                              tf.gather(run, rows), new_votes,
                              tf.fill(tf.shape(rows), j + g), rows)
    return (j + size, total, count,
            tf.tensor_scatter_nd_update(probs, at, new_probs),
            tf.tensor_scatter_nd_update(votes, at, new_votes),
            tf.tensor_scatter_nd_update(run, at, new_run),
            tf.tensor_scatter_nd_update(active, at, tf.logical_not(done)),
            tf.tensor_scatter_nd_update(logits, at, new))

  def run(self) -> tuple:
    """Level 1's prediction, then ``step`` while an image is still looking
    and cells are left: ``(count, logits)`` — feature vectors read per
    image ``[B]`` (level 1 included) and the final logits ``[B, C]``."""
    batch = self.batch
    total = self.start["level1"]
    count = tf.ones([batch], total.dtype)
    logits = self.classify(total, training=False)
    probs = tf.nn.softmax(tf.cast(logits, tf.float32))
    votes = tf.zeros_like(probs)
    run = tf.zeros([batch])
    done, run = self.stop(probs, probs, run, votes,
                          tf.zeros([batch], tf.int32), tf.range(batch))
    loop = tf.while_loop(
        lambda j, *rest: tf.logical_and(j < self.num,
                                        tf.reduce_any(rest[-2])),
        self.step, (tf.constant(0), total, count, probs, votes, run,
                    tf.logical_not(done), logits))
    return loop[2], loop[-1]

  def record(self, outcome: tuple) -> dict:
    """The attention record (``TNetOutput``) of the traversal's outcome."""
    count, logits = outcome
    batch, start = self.batch, self.start
    read = tf.cast(count, tf.int32) - 1
    steps = tf.range(self.num)
    attended = tf.concat([tf.ones([batch, 1], tf.int32), tf.cast(
        steps[None] < read[:, None], tf.int32)], axis=1)
    n2 = self.cfg.grid_size ** 2
    state = start["state"]
    return TNetOutput(
        logits=logits, num_locations=read,
        boxes=grid.to_pixels(tf.concat([state["boxes"], self.boxes], axis=1),
                             state["image_hw"]),
        attended=attended,
        levels=tf.concat([tf.ones([1], tf.int32),
                          tf.fill(tf.shape(steps), 2)], axis=0),
        # the attention record of ``TNet.call``, over what was read
        feature_weights=tf.cast(attended, tf.float32) / tf.cast(
            tf.expand_dims(read + 1, 1), tf.float32),
        location_log_probs=start["chosen"],
        location_probs=[tf.reshape(tf.exp(start["log_probs"]),
                                   [batch, 1, n2])],
        location_indices=[tf.reshape(start["idx"], [batch, 1, -1])]
    ).as_dict()
