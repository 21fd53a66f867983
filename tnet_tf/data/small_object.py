"""One small object in clutter: a lesion in a slide, a vehicle in a scene.

A grey canvas of thin bright line segments (clutter) holds one object about
1/16 of the canvas side: a disc, a square, a triangle or a cross (the
class). Every shape is drawn with the same mean brightness over its box,
and the brightness varies by a factor of 2 between canvases, so that the
downscaled canvas — where the object is a blob of 2×2 pixels — says little
of the class, and only a closer look at the right place tells the shapes
apart. The object's box is known
(localisation rate). Canvases are drawn from a per-canvas seed when read;
nothing is stored.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tnet_tf.data.generated import GeneratedSplits, line_pixels

SHAPES = ("disc", "square", "triangle", "cross")
SPLITS = {"train": 0, "validation": 1, "test": 2}
MASK_MEAN = 0.38  # the triangle covers 40% of its box, the cross 42%


@dataclasses.dataclass(frozen=True)
class SmallObjectConfig(GeneratedSplits):
  canvas_size: int = 256
  object_fraction: float = 1 / 16
  num_classes: int = 4  # the first of SHAPES
  num_lines: int = 40
  train_examples: int = 60000  # drawn when read: no two alike
  validation_examples: int = 500
  test_examples: int = 500
  seed: int = 0

  def __post_init__(self):
    if not 2 <= self.num_classes <= len(SHAPES):
      raise ValueError(f"num_classes must be in [2, {len(SHAPES)}], got "
                       f"{self.num_classes}")
    if self.object_side < 8:
      raise ValueError(f"the object must be >= 8 px: canvas_size × "
                       f"object_fraction = {self.object_side}")

  @property
  def object_side(self) -> int:
    return int(round(self.canvas_size * self.object_fraction))


def shape_mask(shape: str, side: int) -> np.ndarray:
  """A float [side, side] mask in [0, 1] of one shape, scaled so that its
  mean is ``MASK_MEAN`` (the same brightness for every shape, seen from
  afar; below the smallest shape's area, so no pixel exceeds 1)."""
  yy, xx = (np.mgrid[:side, :side] + 0.5) / side - 0.5
  masks = {
      "disc": (xx ** 2 + yy ** 2) <= 0.45 ** 2,
      "square": (np.abs(xx) <= 0.45) & (np.abs(yy) <= 0.45) &
                ~((np.abs(xx) <= 0.25) & (np.abs(yy) <= 0.25)),
      "triangle": (yy >= -0.45) & (yy <= 0.45) &
                  (np.abs(xx) <= (yy + 0.45) / 2),
      "cross": (np.abs(xx) <= 0.12) | (np.abs(yy) <= 0.12),
  }
  mask = masks[shape].astype(np.float64)
  return mask * (MASK_MEAN / mask.mean())


def draw(cfg: SmallObjectConfig, split: str, index: int):
  """Canvas uint8 [S, S, 1], its label and the object's box (pixels)."""
  rng = np.random.default_rng([cfg.seed, SPLITS[split], index])
  size, side = cfg.canvas_size, cfg.object_side
  canvas = rng.normal(40.0, 8.0, (size, size))
  for _ in range(cfg.num_lines):  # 1 px bright segments, 1–3 objects long
    length = rng.uniform(1.0, 3.0) * side
    ys, xs = line_pixels(rng, size, length)
    canvas[ys, xs] = rng.uniform(150.0, 255.0)
  label = int(rng.integers(cfg.num_classes))
  y, x = rng.integers(0, size - side + 1, 2)
  brightness = 255.0 * rng.uniform(0.5, 1.0)
  mask = shape_mask(SHAPES[label], side)
  region = canvas[y:y + side, x:x + side]
  canvas[y:y + side, x:x + side] = region * (1 - mask) + brightness * mask
  image = np.clip(canvas, 0, 255).astype(np.uint8)[..., None]
  box = np.array([y, x, y + side, x + side], np.float32)
  return image, np.int32(label), box


def dataset(split: str, cfg: SmallObjectConfig,
            with_boxes: bool = False) -> tf.data.Dataset:
  """``(image uint8 [S, S, 1], label)`` of a split, or dicts with the
  object's ``boxes`` ``[1, 4]``."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
  size = cfg.canvas_size

  def one(index):
    image, label, box = tf.numpy_function(
        lambda i: draw(cfg, split, int(i)), [index],
        [tf.uint8, tf.int32, tf.float32], stateful=False)
    image.set_shape([size, size, 1])
    label.set_shape([])
    box.set_shape([4])
    if with_boxes:
      return {"image": image, "label": label, "boxes": box[None]}
    return image, label

  return tf.data.Dataset.range(cfg.examples(split)).map(
      one, num_parallel_calls=tf.data.AUTOTUNE)
