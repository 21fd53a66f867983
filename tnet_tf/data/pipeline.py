"""The one input pipeline: records → shuffle/repeat → decode → skip bad ones.

Every dataset is a *source* of raw records plus a *decoder* from a record to
``(image, label)``. The pipeline shuffles and repeats the records (training),
numbers them, decodes in parallel (order kept, seeded by the number, so the
result does not depend on parallelism), drops the records whose image cannot
be decoded and counts them: a corrupt image never ends an epoch and is never
lost silently.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf


class SkipCounter:
  """Counts records dropped because their image could not be decoded.

  The decoded stream keeps the order of the numbered records, so a gap in
  the numbers is a skipped record. A finite pass whose size is known also
  counts a gap at its end (``finish``).
  """

  def __init__(self, name: str, total: Optional[int] = None):
    self.name = name
    self.total = total  # records per pass, when known (finite datasets)
    self.skipped = 0  # over the life of the counter
    self._expected = 0
    self._lock = threading.Lock()

  def observe(self, index: np.int64) -> np.int64:
    with self._lock:
      index = int(index)
      if index < self._expected:  # a new pass over a finite dataset
        self._finish_locked()
      if index > self._expected:
        self._skip(index - self._expected)
      self._expected = index + 1
    return np.int64(index)

  def finish(self) -> None:
    """Ends a pass: counts unreadable records at its very end."""
    with self._lock:
      self._finish_locked()

  def _finish_locked(self):
    if self.total is not None and self._expected and (
        self._expected < self.total):
      self._skip(self.total - self._expected)
    self._expected = 0

  def _skip(self, count: int) -> None:
    self.skipped += count
    logging.warning("%s: skipped %d unreadable image(s) (%d so far)",
                    self.name, count, self.skipped)


# counters of the pipelines built in this process, by name ("train", ...)
COUNTERS: dict[str, SkipCounter] = {}


def skipped_counts() -> dict[str, int]:
  return {name: counter.skipped for name, counter in COUNTERS.items()}


def build_pipeline(records: tf.data.Dataset,
                   decoder: Callable[..., tuple],
                   name: str, training: bool, seed: int,
                   shuffle_buffer: int = 1024,
                   total: Optional[int] = None,
                   cache: bool = False) -> tf.data.Dataset:
  """Unbatched ``(image, label)`` examples from raw records.

  Args:
    records: raw records (anything ``decoder`` takes).
    decoder: ``decoder(record, seed) -> (image, label)``; ``seed`` is an
      int64 [2] stateless seed unique to the record's position in the stream.
      It may fail (a corrupt image): that record is skipped and counted.
    name: the counter's name in ``COUNTERS`` (e.g. the split).
    training: shuffle and repeat forever.
    total: records per pass, to count unreadable records at the end of a
      finite pass.
    cache: cache the raw records in memory before shuffling.
  """
  if cache:
    records = records.cache()
  if training:
    records = records.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True).repeat()
  counter = SkipCounter(name, None if training else total)
  COUNTERS[name] = counter

  def decode(index, record):
    return index, decoder(record, tf.stack([tf.constant(seed, tf.int64),
                                            index]))

  def observe(index, example):
    index = tf.numpy_function(counter.observe, [index], tf.int64,
                              stateful=True)
    with tf.control_dependencies([index]):
      return tf.nest.map_structure(tf.identity, example)

  ds = records.enumerate().map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
  ds = ds.ignore_errors()
  return ds.map(observe)
