"""Evaluation of a trained model at several numbers of locations."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf.inputs import total_locations


def _counts(logits, labels):
  labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
  logits = tf.cast(logits, tf.float32)
  top1 = tf.reduce_sum(tf.cast(tf.equal(
      tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
  top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(
      labels, logits, min(5, logits.shape[-1])), tf.float32))
  ce = tf.reduce_sum(
      tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
  return tf.stack([top1, top5, ce, tf.cast(tf.size(labels), tf.float32)])


def evaluate_at_locations(model: keras.Model, dataset: tf.data.Dataset,
                          settings: Sequence[Sequence[int]] = ((),),
                          strategy: Optional[tf.distribute.Strategy] = None,
                          ) -> list[dict]:
  """Top-1, top-5 and cross-entropy for each locations setting, in one pass.

  ``model`` is a task or a TNet: ``model(images, locations=...)`` returns a
  record with ``logits``. ``dataset`` yields batches ``(images, labels)``;
  each batch is classified once per setting. Returns one dict per setting:
  ``locations``, ``total_locations``, ``top1``, ``top5``, ``loss``,
  ``examples``.
  """
  strategy = strategy or tf.distribute.get_strategy()
  settings = [tuple(int(k) for k in s) for s in settings]

  def make_step(locs):
    def replica_fn(images, labels):
      logits = model(images, training=False, locations=locs)["logits"]
      return _counts(logits, labels)

    @tf.function(reduce_retracing=True)
    def step(batch):
      per_replica = strategy.run(replica_fn, args=batch[:2])
      return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                             axis=None)
    return step

  steps = [make_step(s) for s in settings]
  totals = np.zeros([len(settings), 4])
  for batch in strategy.experimental_distribute_dataset(dataset):
    for i, step in enumerate(steps):
      totals[i] += step(batch).numpy()
  rows = []
  for locs, (top1, top5, ce, n) in zip(settings, totals):
    n = max(n, 1.0)
    rows.append({"locations": list(locs),
                 "total_locations": total_locations(locs),
                 "top1": top1 / n, "top5": top5 / n, "loss": ce / n,
                 "examples": int(n)})
  return rows


def evaluate_adaptive(model: keras.Model, dataset: tf.data.Dataset,
                      thresholds: Sequence[float], max_locations: int,
                      strategy: Optional[tf.distribute.Strategy] = None
                      ) -> list[dict]:
  """Top-1, top-5, cross-entropy and mean cells read of adaptive attention
  (``TNet.call_adaptive``, the top-probability rule, at most
  ``max_locations`` cells) at each threshold, in one pass. ``model``: a
  two-level TNet or a task holding one (``network``)."""
  strategy = strategy or tf.distribute.get_strategy()
  network = getattr(model, "network", model)

  def make_step(threshold):
    def replica_fn(images, labels):
      out = network.call_adaptive(images, threshold, max_locations)
      return tf.concat([_counts(out["logits"], labels), [tf.cast(
          tf.reduce_sum(out["num_locations"]), tf.float32)]], axis=0)

    @tf.function(reduce_retracing=True)
    def step(batch):
      per_replica = strategy.run(replica_fn, args=batch[:2])
      return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                             axis=None)
    return step

  steps = [make_step(float(t)) for t in thresholds]
  totals = np.zeros([len(steps), 5])
  for batch in strategy.experimental_distribute_dataset(dataset):
    for i, step in enumerate(steps):
      totals[i] += step(batch).numpy()
  rows = []
  for t, (top1, top5, ce, n, cells) in zip(thresholds, totals):
    n = max(n, 1.0)
    rows.append({"threshold": float(t), "max_locations": int(max_locations),
                 "mean_locations": cells / n, "top1": top1 / n,
                 "top5": top5 / n, "loss": ce / n, "examples": int(n)})
  return rows
