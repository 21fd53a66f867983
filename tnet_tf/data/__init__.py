"""Datasets by name: ``build(split, data_config) → tf.data`` of (image, label)."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tnet_tf.config import DataConfig
from tnet_tf.data import megapixel_digits
from tnet_tf.data import toy


def _toy(split: str, cfg: DataConfig) -> tf.data.Dataset:
  return toy.dataset(split, size=cfg.image_size[0],
                     num_examples=cfg.num_examples or None, seed=cfg.seed)


def megapixel_config(cfg: DataConfig) -> megapixel_digits.MegapixelDigitsConfig:
  """The generator's config: canvas from ``image_size``, rest from options."""
  return megapixel_digits.MegapixelDigitsConfig(
      canvas_size=cfg.image_size[0], seed=cfg.seed, **cfg.options)


def _megapixel(split: str, cfg: DataConfig) -> tf.data.Dataset:
  return megapixel_digits.dataset(split, megapixel_config(cfg), cfg.data_dir)


DATASETS: dict[str, tuple[Callable[[str, DataConfig], tf.data.Dataset], int]]
DATASETS = {"toy": (_toy, toy.NUM_CLASSES),
            "megapixel_digits": (_megapixel, megapixel_digits.NUM_CLASSES)}


def build(split: str, cfg: DataConfig) -> tf.data.Dataset:
  """Unbatched ``(image, label)`` examples of ``split`` of ``cfg.name``."""
  if cfg.name not in DATASETS:
    raise ValueError(f"unknown dataset {cfg.name!r}; known: "
                     f"{sorted(DATASETS)}")
  return DATASETS[cfg.name][0](split, cfg)


def num_classes(name: str) -> int:
  return DATASETS[name][1]
