"""A learned halting signal for adaptive attention
(``tnet_tf.model.adaptive.call_adaptive``).

After each step of an adaptive traversal — level 1, then level 2's cells in
the location module's order — the halting module sees a few statistics of
the traversal so far and scores how likely the running prediction already
is the one the image would get after all ``K`` cells. An image stops once
that score reaches the threshold.

The statistics (``FEATURES``, all computed from what the traversal has read):
the running prediction's top two probabilities, margin and entropy; how
much it moved since the previous step (KL divergence, the previous
probability of today's top class, whether the top class is the same and for
how many steps it has been); the votes of the cells read (each cell's own
classification, as the per-feature regularisation trains it): votes of the
most and second most voted class and of the running top class; the location
module's probability of the next cell and the mass of the cells not yet
read; and the fraction of the ``K`` cells read.

The module is fitted after training (``tnet_tf.inference.adaptive --fit_halting``):
its inputs are statistics of the trained, frozen model, and on images the
model was trained on those statistics are over-confident, so it is fitted
on a held-out split. The target needs no labels (agreement of the running
prediction with the final one), so any unlabeled images would do.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

FEATURES = ("top1", "top2", "margin", "entropy", "change", "previous_of_top",
            "same", "run", "votes_top", "votes_second", "votes_for_top",
            "next", "remaining", "read")


def features(probs, previous, run, votes, read, next_prob, remaining, k):
  """The ``[B, len(FEATURES)]`` statistics of one decision point and the
  new run length ``[B]``.

  ``probs`` / ``previous``: the running prediction's probabilities ``[B, C]``
  now and at the previous decision point (``probs`` itself at the first);
  ``run`` ``[B]``: for how many decision points the top class had held;
  ``votes`` ``[B, C]``: cells read so far whose own top class is each class;
  ``read`` ``[B]``: cells read; ``next_prob`` / ``remaining`` ``[B]``: the
  location probability of the next cell, and of all cells not read; ``k``:
  the cells an image may read.
  """
  probs = tf.cast(probs, tf.float32)
  previous = tf.cast(previous, tf.float32)
  k = tf.cast(k, tf.float32)
  read = tf.cast(read, tf.float32)
  num_classes = probs.shape[-1]
  top = tf.math.top_k(probs, min(2, num_classes))
  top1 = top.values[:, 0]
  top2 = top.values[:, -1] if num_classes > 1 else tf.zeros_like(top1)
  cls = top.indices[:, 0]
  log_p = tf.math.log(probs + 1e-12)
  entropy = -tf.reduce_sum(probs * log_p, -1)
  change = tf.reduce_sum(probs * (log_p - tf.math.log(previous + 1e-12)), -1)
  before = tf.gather(previous, cls, batch_dims=1)
  same = tf.cast(tf.logical_and(
      tf.equal(cls, tf.argmax(previous, -1, output_type=cls.dtype)),
      read > 0), tf.float32)
  run = tf.where(same > 0, tf.cast(run, tf.float32) + 1.0, 0.0)
  votes = tf.cast(votes, tf.float32)
  ranked = tf.math.top_k(votes, min(2, num_classes)).values
  second = ranked[:, -1] if num_classes > 1 else tf.zeros_like(top1)
  for_top = tf.gather(votes, cls, batch_dims=1)
  x = tf.stack([top1, top2, top1 - top2, entropy, change, before, same,
                run / k, ranked[:, 0] / k, second / k, for_top / k,
                tf.cast(next_prob, tf.float32),
                tf.cast(remaining, tf.float32), read / k], axis=-1)
  return x, run


def decision_points(k: int, group: int = 1, first=None) -> list[int]:
  """Cells read at each decision point of ``call_adaptive``
  (``tnet_tf.model.adaptive``): 0, ``first``, ``first + group``, …
  (< ``k``)."""
  first = group if first is None else first
  return [0] + list(range(first, k, group))


def trace(running_logits, cell_logits, cell_probs, group: int = 1,
          first=None):
  """The statistics at every decision point of a traversal read whole.

  ``running_logits`` ``[B, K + 1, C]`` (after level 1 and after each cell),
  ``cell_logits`` ``[B, K, C]`` (each cell's own), ``cell_probs`` ``[B, K]``
  (location probability of each cell, in reading order). Decision points
  are ``decision_points(K, group, first)`` (< K: after K cells there is
  nothing left to decide). Returns ``x`` ``[B, S, F]`` and ``read``
  ``[S]``, the cells read at each point.
  """
  k = int(cell_logits.shape[1])
  probs = tf.nn.softmax(tf.cast(running_logits, tf.float32))
  num_classes = probs.shape[-1]
  votes = tf.math.cumsum(tf.one_hot(tf.argmax(cell_logits, -1), num_classes),
                         axis=1)
  votes = tf.concat([tf.zeros_like(votes[:, :1]), votes], axis=1)
  cell_probs = tf.cast(cell_probs, tf.float32)
  remaining = tf.math.cumsum(cell_probs, axis=1, reverse=True)
  batch = tf.shape(probs)[0]
  run = tf.zeros([batch])
  points = decision_points(k, group, first)
  out, last = [], 0
  for j in points:
    x, run = features(probs[:, j], probs[:, last], run, votes[:, j],
                      tf.fill([batch], float(j)), cell_probs[:, j],
                      remaining[:, j], k)
    out.append(x)
    last = j
  return tf.stack(out, axis=1), np.array(points, np.int32)


class HaltingModule(keras.layers.Layer):
  """Scores ``[B, F]`` statistics (``features``) → ``[B]`` logits of "the
  running prediction is already the final one": standardisation (fitted
  constants), a hidden ReLU layer, a linear output."""

  def __init__(self, hidden: int = 32, group: int = 1, max_locations: int = 0,
               first: int = 0, **kwargs):
    kwargs.setdefault("name", "halting_module")
    super().__init__(**kwargs)
    self.hidden_units = hidden
    self.group = group  # what it was fitted for (recorded, not enforced)
    self.max_locations = max_locations
    self.first = first or group
    num = len(FEATURES)
    self.mean = self.add_weight("mean", [num], initializer="zeros",
                                trainable=False)
    self.scale = self.add_weight("scale", [num], initializer="ones",
                                 trainable=False)
    self.hidden = keras.layers.Dense(hidden, activation="relu",
                                     name="hidden")
    self.out = keras.layers.Dense(1, name="out")
    self.hidden.build([None, num])
    self.out.build([None, hidden])
    self.built = True

  def call(self, x):
    x = (tf.cast(x, tf.float32) - self.mean) / self.scale
    return self.out(self.hidden(x))[:, 0]

  def get_config(self):
    return {**super().get_config(), "hidden": self.hidden_units,
            "group": self.group, "max_locations": self.max_locations,
            "first": self.first}


def schedule_of(module: HaltingModule) -> dict:
  """The ``group`` / ``first`` of ``call_adaptive`` a halting module was
  fitted for."""
  return {"group": module.group, "first": module.first}


def call_options(module) -> dict:
  """``call_adaptive``'s ``rule``, ``halting`` and schedule for an
  optional fitted module: the learned rule on the schedule it was fitted
  for, or (``None``) the top-probability rule."""
  if module is None:
    return {"rule": "max_probability", "halting": None}
  return {"rule": "learned", "halting": module, **schedule_of(module)}
