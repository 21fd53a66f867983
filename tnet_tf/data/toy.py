"""A small texture-spotting problem that needs a closer look.

A ``size×size`` grey canvas of noise holds one ``patch×patch`` square whose
texture is the label: horizontal, vertical or diagonal stripes of period 2 px,
or a checkerboard. Downscaled by 2 the textures blur to nearly the same grey;
at full resolution they are obvious. Deterministic by seed, no download.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

NUM_CLASSES = 4


def _texture(label: int, patch: int) -> np.ndarray:
  yy, xx = np.mgrid[:patch, :patch]
  pattern = {0: yy % 2,                # horizontal stripes
             1: xx % 2,                # vertical stripes
             2: (yy + xx) % 2,         # checkerboard
             3: ((yy + xx) // 2) % 2}  # diagonal stripes
  return pattern[label].astype(np.float32)


def make_examples(num: int, size: int = 64, patch: int = 12,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """``num`` uint8 images ``[num, size, size, 3]`` and int32 labels."""
  if patch > size:
    raise ValueError(f"patch {patch} larger than the canvas {size}")
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, NUM_CLASSES, num).astype(np.int32)
  images = rng.normal(128, 12, (num, size, size)).astype(np.float32)
  for i, label in enumerate(labels):
    y, x = rng.integers(0, size - patch + 1, 2)
    images[i, y:y + patch, x:x + patch] = 60 + 140 * _texture(label, patch)
  images = np.clip(images, 0, 255).astype(np.uint8)
  return np.repeat(images[..., None], 3, axis=-1), labels


def dataset(split: str, size: int = 64, num_examples: int | None = None,
            seed: int = 0) -> tf.data.Dataset:
  """``(image uint8 [size, size, 3], label int32)`` examples of a split."""
  splits = {"train": (2048, seed), "validation": (512, seed + 1),
            "test": (512, seed + 2)}
  if split not in splits:
    raise ValueError(f"toy split must be one of {sorted(splits)}, got "
                     f"{split!r}")
  default_num, split_seed = splits[split]
  images, labels = make_examples(num_examples or default_num, size,
                                 seed=split_seed)
  return tf.data.Dataset.from_tensor_slices((images, labels))
