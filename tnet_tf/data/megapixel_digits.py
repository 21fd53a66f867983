"""Megapixel digits: a built-in benchmark where detail is small and sparse.

Modelled on Megapixel MNIST (Katharopoulos & Fleuret, 2019) but built from
data that installs with a package: scikit-learn's 1,797 handwritten 8×8
digits, upscaled, on a large canvas. Each canvas holds ``num_digits`` digits
— ``num_target`` of the target class, the rest of other classes — placed
without overlap, plus bright line segments as clutter and, optionally, a
texture photo from scikit-image as background. The label is the majority
class. Train and test canvases use disjoint glyph instances. Generation is
deterministic by seed and written once to TFRecords.
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
TEXTURES = ("grass", "gravel", "brick")
SPLITS = {"train": ("train", 0), "validation": ("test", 1), "test": ("test", 2)}


@dataclasses.dataclass(frozen=True)
class MegapixelDigitsConfig(GeneratedSplits):
  """Canvas geometry, clutter and sizes of the splits."""
  canvas_size: int = 256
  digit_size: int = 32
  num_digits: int = 5
  num_target: int = 3
  num_lines: int = 10
  texture: Optional[str] = None  # one of TEXTURES
  texture_contrast: float = 0.35
  train_examples: int = 8000
  validation_examples: int = 500
  test_examples: int = 1000
  test_glyph_fraction: float = 0.3
  seed: int = 0

  def __post_init__(self):
    if self.texture is not None and self.texture not in TEXTURES:
      raise ValueError(f"texture must be one of {TEXTURES} or None, got "
                       f"{self.texture!r}")
    if not 2 * self.num_target > self.num_digits >= self.num_target >= 1:
      raise ValueError("num_target must be a strict majority of num_digits, "
                       f"got {self.num_target} of {self.num_digits}")
    # a loose packing bound: the digits must fit without overlap
    if self.num_digits * (self.digit_size + 2) ** 2 > 0.5 * (
        self.canvas_size ** 2):
      raise ValueError(f"{self.num_digits} digits of {self.digit_size} px do "
                       f"not fit a {self.canvas_size} px canvas")


def glyphs(pool: str, cfg: MegapixelDigitsConfig):
  """The 8×8 glyphs (float in [0, 1]) and labels of the train or test pool."""
  from sklearn.datasets import load_digits  # bundled with scikit-learn
  digits = load_digits()
  order = np.random.default_rng(1234).permutation(len(digits.target))
  cut = int(round(len(order) * (1 - cfg.test_glyph_fraction)))
  idx = order[:cut] if pool == "train" else order[cut:]
  return digits.images[idx] / 16.0, digits.target[idx].astype(np.int32)


def _upscale(glyph: np.ndarray, size: int) -> np.ndarray:
  from skimage.transform import resize
  return resize(glyph, (size, size), order=1, mode="edge",
                anti_aliasing=False)


def _background(rng, cfg: MegapixelDigitsConfig) -> np.ndarray:
  size = cfg.canvas_size
  canvas = rng.normal(0.08, 0.04, (size, size))
  if cfg.texture:
    import skimage.data
    from skimage.transform import resize
    photo = getattr(skimage.data, cfg.texture)().astype(np.float64) / 255.0
    if size > photo.shape[0]:
      photo = resize(photo, (size, size), order=1)
    y, x = rng.integers(0, photo.shape[0] - size + 1, 2)
    canvas += cfg.texture_contrast * photo[y:y + size, x:x + size]
  return canvas


def _draw_lines(canvas, rng, count, digit_size):
  size = canvas.shape[0]
  for _ in range(count):
    length = rng.uniform(0.5, 2.0) * digit_size
    angle = rng.uniform(0, np.pi)
    y0, x0 = rng.uniform(0, size, 2)
    steps = int(length * 2)
    ys = np.clip(y0 + np.sin(angle) * np.linspace(0, length, steps), 0,
                 size - 1).astype(int)
    xs = np.clip(x0 + np.cos(angle) * np.linspace(0, length, steps), 0,
                 size - 1).astype(int)
    canvas[ys, xs] = np.maximum(canvas[ys, xs], rng.uniform(0.5, 1.0))


def _place(rng, count, size, digit):
  """Top-left corners of ``count`` non-overlapping digit boxes."""
  corners = []
  for _ in range(10000):
    y, x = rng.integers(0, size - digit + 1, 2)
    if all(abs(y - cy) >= digit + 2 or abs(x - cx) >= digit + 2
           for cy, cx in corners):
      corners.append((y, x))
      if len(corners) == count:
        return corners
  raise RuntimeError("could not place the digits without overlap")


def generate(split: str, cfg: MegapixelDigitsConfig, num: Optional[int] = None):
  """Canvases of a split as numpy arrays.

  Returns a dict: ``images`` uint8 ``[N, S, S, 1]``, ``labels`` ``[N]``,
  ``boxes`` float32 ``[N, D, 4]`` (y0, x0, y1, x1 in pixels; the first
  ``num_target`` are the target-class digits) and ``digit_labels`` ``[N, D]``.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
  pool, offset = SPLITS[split]
  num = cfg.examples(split) if num is None else num
  images_pool, labels_pool = glyphs(pool, cfg)
  by_class = [np.flatnonzero(labels_pool == c) for c in range(NUM_CLASSES)]
  rng = np.random.default_rng([cfg.seed, offset])
  size, digit, count = cfg.canvas_size, cfg.digit_size, cfg.num_digits
  images = np.empty([num, size, size, 1], np.uint8)
  labels = rng.integers(0, NUM_CLASSES, num).astype(np.int32)
  boxes = np.empty([num, count, 4], np.float32)
  digit_labels = np.empty([num, count], np.int32)
  for i, target in enumerate(labels):
    others = rng.choice([c for c in range(NUM_CLASSES) if c != target],
                        count - cfg.num_target)
    classes = [target] * cfg.num_target + list(others)
    canvas = _background(rng, cfg)
    _draw_lines(canvas, rng, cfg.num_lines, digit)
    for j, ((y, x), cls) in enumerate(
        zip(_place(rng, count, size, digit), classes)):
      glyph = _upscale(images_pool[rng.choice(by_class[cls])], digit)
      region = canvas[y:y + digit, x:x + digit]
      canvas[y:y + digit, x:x + digit] = np.maximum(region, glyph)
      boxes[i, j] = (y, x, y + digit, x + digit)
      digit_labels[i, j] = cls
    images[i, ..., 0] = np.clip(canvas * 255.0, 0, 255).astype(np.uint8)
  return {"images": images, "labels": labels, "boxes": boxes,
          "digit_labels": digit_labels}


# ---------------------------------------------------------------- the cache
def default_cache_dir() -> str:
  return os.path.expanduser(os.environ.get("TNET_TF_CACHE",
                                           "~/.cache/tnet_tf"))


def split_dir(cfg: MegapixelDigitsConfig, cache_dir: Optional[str]) -> str:
  return os.path.join(cache_dir or default_cache_dir(), "megapixel_digits",
                      cfg.fingerprint())


def _example(image, label, boxes, digit_labels) -> bytes:
  feature = {
      "image": tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[image.tobytes()])),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(
          value=[int(label)])),
      "boxes": tf.train.Feature(float_list=tf.train.FloatList(
          value=boxes.reshape(-1).tolist())),
      "digit_labels": tf.train.Feature(int64_list=tf.train.Int64List(
          value=digit_labels.tolist())),
  }
  return tf.train.Example(features=tf.train.Features(
      feature=feature)).SerializeToString()


def prepare(cfg: MegapixelDigitsConfig, cache_dir: Optional[str] = None,
            splits=("train", "validation", "test")) -> str:
  """Writes the splits as TFRecords once; returns the directory."""
  directory = split_dir(cfg, cache_dir)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w") as fh:
    json.dump(dataclasses.asdict(cfg), fh, indent=1)
  for split in splits:
    path = os.path.join(directory, f"{split}.tfrecord")
    if os.path.exists(path):
      continue
    logging.info("Generating %d megapixel-digits canvases (%s) into %s",
                 cfg.examples(split), split, path)
    data = generate(split, cfg)
    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp) as writer:
      for i in range(len(data["labels"])):
        writer.write(_example(data["images"][i], data["labels"][i],
                              data["boxes"][i], data["digit_labels"][i]))
    os.replace(tmp, path)  # a killed run never leaves a half-written split
  return directory


def dataset(split: str, cfg: MegapixelDigitsConfig,
            cache_dir: Optional[str] = None,
            with_boxes: bool = False) -> tf.data.Dataset:
  """``(image uint8 [S, S, 1], label)`` (or a dict with boxes) of a split."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
  directory = prepare(cfg, cache_dir, (split,))
  size, count = cfg.canvas_size, cfg.num_digits
  spec = {"image": tf.io.FixedLenFeature([], tf.string),
          "label": tf.io.FixedLenFeature([], tf.int64),
          "boxes": tf.io.FixedLenFeature([count * 4], tf.float32),
          "digit_labels": tf.io.FixedLenFeature([count], tf.int64)}

  def parse(record):
    ex = tf.io.parse_single_example(record, spec)
    image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8),
                       [size, size, 1])
    label = tf.cast(ex["label"], tf.int32)
    if with_boxes:
      return {"image": image, "label": label,
              "boxes": tf.reshape(ex["boxes"], [count, 4]),
              "digit_labels": tf.cast(ex["digit_labels"], tf.int32)}
    return image, label

  return tf.data.TFRecordDataset(
      os.path.join(directory, f"{split}.tfrecord")).map(
          parse, num_parallel_calls=tf.data.AUTOTUNE)
