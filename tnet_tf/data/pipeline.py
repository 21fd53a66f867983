"""The one input pipeline: records → shuffle/repeat → decode → skip bad ones.

Every dataset is a *source* of raw records plus a *decoder* from a record to
``(image, label)``. The pipeline shuffles and repeats the records (training),
numbers them, decodes in parallel (order kept, seeded by the number, so the
result does not depend on parallelism), drops the records whose image cannot
be decoded and counts them: a corrupt image never ends an epoch and is never
lost silently.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf


class SkipCounter:
  """Counts records dropped because their image could not be decoded.

  Each pass over a dataset (each iterator) gets its own number; the decoded
  stream keeps the order of the numbered records, so a gap in the numbers
  is a skipped record. A finite pass counts its gaps when its reading
  reaches the end of the records (the last records included); a pass
  abandoned before (a few images for a picture) counts nothing, so a clean
  split reads 0 however it is read. An endless (training) stream counts
  each gap as it sees it. One counter per pipeline: nothing is shared
  between the runs of a process.
  """

  def __init__(self, name: str):
    self.name = name
    self.skipped = 0  # over the life of the counter
    self._passes = itertools.count()
    self._expected: dict[int, int] = {}  # pass -> next record number
    self._pending: dict[int, int] = {}  # pass -> gaps not yet counted
    self._lock = threading.Lock()

  def begin_pass(self) -> np.int64:
    with self._lock:
      number = next(self._passes)
      self._expected[number] = 0
      self._pending[number] = 0
    return np.int64(number)

  def observe(self, number: np.int64, index: np.int64,
              endless: np.bool_) -> np.int64:
    with self._lock:
      number, index = int(number), int(index)
      gap = index - self._expected.get(number, 0)
      self._expected[number] = index + 1
      if gap > 0 and endless:
        self._skip(gap)
      elif gap > 0:
        self._pending[number] = self._pending.get(number, 0) + gap
    return np.int64(index)

  def end_pass(self, number: np.int64, total: np.int64) -> np.bool_:
    """A finite pass reached its end: its gaps, the trailing ones too."""
    with self._lock:
      expected = self._expected.pop(int(number), 0)
      gaps = self._pending.pop(int(number), 0) + max(0, int(total) - expected)
      if gaps:
        self._skip(gaps)
    return np.bool_(False)

  def _skip(self, count: int) -> None:
    self.skipped += count
    logging.warning("%s: skipped %d unreadable image(s) (%d so far)",
                    self.name, count, self.skipped)


def _empty_like(spec):
  """An element of ``spec`` with 0 for every unknown dimension."""
  shape = [d if d is not None else 0 for d in spec.shape]
  if spec.dtype == tf.string:
    return tf.fill(shape, "")
  return tf.zeros(shape, spec.dtype)


def build_pipeline(records: tf.data.Dataset,
                   decoder: Callable[..., tuple],
                   name: str, training: bool, seed: int,
                   shuffle_buffer: int = 1024,
                   total: Optional[int] = None,
                   cache: bool = False,
                   counter: Optional[SkipCounter] = None) -> tf.data.Dataset:
  """Unbatched ``(image, label)`` examples from raw records.

  Args:
    records: raw records (anything ``decoder`` takes).
    decoder: ``decoder(record, seed) -> (image, label)``; ``seed`` is an
      int64 [2] stateless seed unique to the record's position in the stream.
      It may fail (a corrupt image): that record is skipped and counted.
    name: what the log calls the records (e.g. the split).
    training: shuffle and repeat forever.
    total: records per pass (default: the records' cardinality, if known),
      to count unreadable records at the end of a finite pass.
    cache: cache the raw records in memory before shuffling.
    counter: counts the skipped records (default: a new one, logging only).
  """
  counter = counter or SkipCounter(name)
  if cache:
    records = records.cache()
  if training:
    records = records.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True).repeat()
    total = None
  elif total is None and int(records.cardinality()) >= 0:
    total = int(records.cardinality())

  def decode(index, record):
    return index, decoder(record, tf.stack([tf.constant(seed, tf.int64),
                                            index]))

  decoded = records.enumerate().map(
      decode, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).ignore_errors()
  _, example_spec = decoded.element_spec

  def one_pass(number):
    def observe(index, example):
      index = tf.numpy_function(counter.observe,
                                [number, index, tf.constant(total is None)],
                                tf.int64, stateful=True)
      with tf.control_dependencies([index]):
        return tf.nest.map_structure(tf.identity, example), True

    body = decoded.map(observe)
    if total is None:
      return body
    # an element after the last record ends the pass, then is dropped
    end = tf.data.Dataset.from_tensors(number).map(lambda n: (
        tf.nest.map_structure(_empty_like, example_spec),
        tf.numpy_function(counter.end_pass, [n, tf.constant(total, tf.int64)],
                          tf.bool, stateful=True)))
    return body.concatenate(end)

  passes = tf.data.Dataset.from_tensors(0).map(
      lambda _: tf.numpy_function(counter.begin_pass, [], tf.int64,
                                  stateful=True))
  return passes.flat_map(one_pass).filter(lambda _, keep: keep).map(
      lambda example, _: example)
