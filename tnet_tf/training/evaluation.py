"""Evaluation of a trained model at several numbers of locations."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf.model.adaptive import call_adaptive
from tnet_tf.model.inputs import total_locations
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import tasks


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


class Evaluator:
  """Fixed locations ``settings`` and ``adaptive`` cases of ``model``,
  summed in one pass over a dataset (batches ``(images, labels)``, each
  batch classified once per case); the step functions are traced once, so
  one evaluator serves repeated passes (the trainer's monitor).

  ``model`` is a task or a TNet: ``model(images, locations=...)`` returns a
  record with ``logits``. An adaptive case is a dict of the arguments of
  ``call_adaptive`` (``tnet_tf.model.adaptive``) — ``threshold``,
  ``max_locations`` and optionally ``rule``, ``halting``, ``group``,
  ``first`` — run on the TNet (the task's ``network``). A call returns the fixed rows
  (``locations``, ``total_locations``, ``top1``, ``top5``, ``loss``,
  ``examples``) and the adaptive rows (``threshold``, ``max_locations``,
  ``rule``, ``mean_locations``, ``top1``, ``top5``, ``loss``,
  ``examples``).
  """

  def __init__(self, model: keras.Model,
               settings: Sequence[Sequence[int]] = (),
               adaptive: Sequence[dict] = (),
               strategy: Optional[tf.distribute.Strategy] = None):
    self.strategy = strategy or tf.distribute.get_strategy()
    self.settings = [tuple(int(k) for k in s) for s in settings]
    self.cases = [dict(case, threshold=float(case["threshold"]))
                  for case in adaptive]
    network = tasks.network_of(model)

    def fixed(locs):
      def replica_fn(images, labels):
        out = TNetOutput.of(model(images, training=False, locations=locs))
        return _counts(out.logits, labels)
      return replica_fn

    def stopping(case):
      def replica_fn(images, labels):
        out = TNetOutput.of(call_adaptive(network, images, **case))
        return tf.concat([_counts(out.logits, labels), [tf.cast(
            tf.reduce_sum(out.num_locations), tf.float32)]], axis=0)
      return replica_fn

    self._cases = ([(_step(fixed(s), self.strategy), 4)
                    for s in self.settings] +
                   [(_step(stopping(case), self.strategy), 5)
                    for case in self.cases])

  def __call__(self, dataset: tf.data.Dataset
               ) -> tuple[list[dict], list[dict]]:
    totals = [np.zeros([width]) for _, width in self._cases]
    for batch in self.strategy.experimental_distribute_dataset(dataset):
      for i, (step, _) in enumerate(self._cases):
        totals[i] += step(batch).numpy()
    rows = []
    for locs, (top1, top5, ce, n) in zip(self.settings, totals):
      n = max(n, 1.0)
      rows.append({"locations": list(locs),
                   "total_locations": total_locations(locs),
                   "top1": top1 / n, "top5": top5 / n, "loss": ce / n,
                   "examples": int(n)})
    adaptive_rows = []
    for case, (top1, top5, ce, n, cells) in zip(
        self.cases, totals[len(self.settings):]):
      n = max(n, 1.0)
      adaptive_rows.append({
          "threshold": case["threshold"],
          "max_locations": int(case["max_locations"]),
          "rule": case.get("rule", "max_probability"),
          "mean_locations": cells / n, "top1": top1 / n, "top5": top5 / n,
          "loss": ce / n, "examples": int(n)})
    return rows, adaptive_rows


def evaluate(model: keras.Model, dataset: tf.data.Dataset,
             settings: Sequence[Sequence[int]] = (),
             adaptive: Sequence[dict] = (),
             strategy: Optional[tf.distribute.Strategy] = None,
             ) -> tuple[list[dict], list[dict]]:
  """One pass of an ``Evaluator`` over ``dataset``."""
  return Evaluator(model, settings, adaptive, strategy)(dataset)


def evaluate_at_locations(model: keras.Model, dataset: tf.data.Dataset,
                          settings: Sequence[Sequence[int]] = ((),),
                          strategy: Optional[tf.distribute.Strategy] = None,
                          ) -> list[dict]:
  """Top-1, top-5 and cross-entropy for each locations setting, in one pass
  (``evaluate``'s fixed rows)."""
  return evaluate(model, dataset, settings, (), strategy)[0]


def _step(replica_fn, strategy: tf.distribute.Strategy):
  """``replica_fn(images, labels)`` (a vector of sums) on every replica of
  a distributed batch, summed over the replicas."""
  @tf.function(reduce_retracing=True)
  def step(batch):
    per_replica = strategy.run(replica_fn, args=batch[:2])
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                           axis=None)
  return step
