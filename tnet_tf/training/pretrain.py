"""Pre-training TNet's backbone on labelled crops, before TNet trains.

TNet's paper starts from ImageNet weights; a task whose objects are not
ImageNet's (digits, lesions) can start from a backbone taught to read them
on crops the size TNet attends to. ``pretrain_backbone`` trains the
preset's backbone with a linear head on such crops and writes the
backbone's weights to an ``.h5`` that ``backbone_kwargs["weights"]`` (the
``--backbone_weights`` flag) loads into TNet and into the baselines.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import baselines
from tnet_tf.config import ModelConfig

# (count, rng) -> (uint8 images [count, h, w, c], int labels [count])
Crops = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _read(images: np.ndarray, size: int) -> tf.Tensor:
  """Crops as TNet reads a cell: box-filtered to ``size`` px, 3 channels."""
  x = tf.image.resize(tf.convert_to_tensor(images, tf.float32),
                      [size, size], method="area")
  return tf.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def pretrain_backbone(model: ModelConfig, crops: Crops, steps: int,
                      path: str, held_out: tuple[np.ndarray, np.ndarray],
                      batch_size: int = 32, learning_rate: float = 2e-3,
                      seed: int = 0) -> dict:
  """Trains ``model``'s backbone (+ a linear head) for ``steps`` batches
  of ``crops`` under Adam with a cosine decay, writes the backbone's
  weights to ``path`` and returns ``{"accuracy", "steps", "seconds"}`` on
  ``held_out`` crops."""
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  kwargs = {k: v for k, v in model.backbone_kwargs.items()
            if k not in ("weights", "f_stage")}
  if kwargs.get("norm") == "frozen_batch":
    kwargs["norm"] = "batch"  # the statistics TNet will keep are learnt here
  r = model.base_resolution
  features = baselines.feature_model(model.backbone, (r, r, 3), **kwargs)
  logits = keras.layers.Dense(model.num_classes, name="reader_logits")(
      features.output)
  reader = keras.Model(features.inputs, logits, name="reader")
  reader.compile(
      keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
          learning_rate, steps)),
      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  rng = np.random.default_rng(seed)
  bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "accuracy"])
  start = time.time()
  for step in range(steps):
    images, labels = crops(batch_size, rng)
    loss, acc = reader.train_on_batch(_read(images, r), labels)
    bar.update(step + 1, [("loss", loss), ("accuracy", acc)])
  seconds = time.time() - start
  _, accuracy = reader.evaluate(_read(held_out[0], r), held_out[1],
                                batch_size=64, verbose=0)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  features.save_weights(path)
  logging.info("backbone pre-trained: %d steps in %.0f s, held-out accuracy "
               "%.3f → %s", steps, seconds, accuracy, path)
  return {"accuracy": float(accuracy), "steps": steps,
          "seconds": float(seconds)}
