"""Optimisers and learning-rate schedules from a ``TrainConfig``."""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from tnet_tf.config import TrainConfig


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Constant, step-decay (the paper's ×0.1 drops) or cosine, with an
  optional linear warm-up."""

  def __init__(self, base: float, kind: str = "constant",
               decay_steps=(), decay_factor: float = 0.1,
               total_steps: int = 1, warmup_steps: int = 0):
    self.base = float(base)
    self.kind = kind
    self.decay_steps = [int(s) for s in decay_steps]
    self.decay_factor = float(decay_factor)
    self.total_steps = int(total_steps)
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.kind == "step":
      drops = tf.add_n([tf.cast(step >= s, tf.float32)
                        for s in self.decay_steps])
      lr = self.base * tf.pow(self.decay_factor, drops)
    elif self.kind == "cosine":
      span = max(1, self.total_steps - self.warmup_steps)
      progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
      lr = self.base * 0.5 * (1.0 + tf.cos(math.pi * progress))
    else:
      lr = tf.constant(self.base)
    if self.warmup_steps:
      lr *= tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
    return lr

  def get_config(self):
    return {"base": self.base, "kind": self.kind,
            "decay_steps": self.decay_steps,
            "decay_factor": self.decay_factor,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps}


def build_optimizer(cfg: TrainConfig, learning_rate: float):
  schedule = WarmupSchedule(learning_rate, cfg.lr_schedule, cfg.lr_decay_steps,
                            cfg.lr_decay_factor, cfg.train_steps,
                            cfg.warmup_steps)
  if cfg.optimizer == "adamw":
    return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
  return keras.optimizers.Adam(schedule)
