"""What callers hand to a TNet, checked and put in one normal form.

Pure functions used wherever images or numbers of locations enter: the
model, its configs, the runner's flags, the serving export and TFLite.
``locations`` lists the cells attended per region at each level after the
first, e.g. ``(2, 1)``; a 0 ends the traversal at that level, so trailing
zeros are dropped (``(2, 0)`` is ``(2,)``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

IMAGE_DTYPES = (tf.uint8, tf.uint16, tf.int8, tf.int16, tf.int32, tf.int64,
                tf.float16, tf.bfloat16, tf.float32, tf.float64)


# --------------------------------------------------------------- locations
def features_per_level(locations: Sequence[int]) -> list[int]:
  """Regions per image at each level: ``[1, k1, k1·k2, ...]``."""
  counts = [1]
  for k in locations:
    counts.append(counts[-1] * k)
  return counts


def total_locations(locations: Sequence[int]) -> int:
  """Attended locations per image: ``k1 + k1·k2 + ...`` (``N − 1``)."""
  return sum(features_per_level(locations)) - 1


def strip_trailing_zeros(locations: Iterable[int]) -> tuple[int, ...]:
  """``(2, 1, 0, 0)`` → ``(2, 1)``: levels after a 0 have nothing to see."""
  counts = list(locations)
  while counts and counts[-1] == 0:
    counts.pop()
  return tuple(counts)


def pad_locations(locations: Sequence[int], levels: int) -> list[int]:
  """Exactly ``levels - 1`` counts, zeros appended (the tensor form of
  serving signatures and TFLite files)."""
  counts = [int(k) for k in locations]
  if len(counts) > levels - 1:
    raise ValueError(f"locations {counts} asks for {len(counts) + 1} "
                     f"levels; this model has levels={levels}")
  return counts + [0] * (levels - 1 - len(counts))


def check_level_range(locations: Sequence[int], grid_size: int) -> None:
  """Each count in ``0..n²`` (a message naming the level otherwise)."""
  cells = grid_size ** 2
  for level, k in enumerate(locations, start=2):
    if not 0 <= k <= cells:
      raise ValueError(
          f"locations for level {level} must be in [0, {cells}], got {k} "
          f"(the {grid_size}x{grid_size} grid has {cells} cells)")


def check_locations(locations, levels: int, grid_size: int
                    ) -> tuple[int, ...]:
  """Python locations (an int or a sequence of ints) → the normal form."""
  if isinstance(locations, (int, np.integer)):
    locations = [int(locations)]
  try:
    if isinstance(locations, (str, bytes)):
      raise TypeError("a string")
    locations = strip_trailing_zeros(int(k) for k in locations)
  except (TypeError, ValueError) as err:
    raise TypeError(f"locations must be a list of ints per level, got "
                    f"{locations!r}") from err
  if len(locations) > levels - 1:
    raise ValueError(
        f"locations {list(locations)} asks for {len(locations) + 1} levels; "
        f"this model has levels={levels} (at most {levels - 1} entries)")
  check_level_range(locations, grid_size)
  if 0 in locations:
    raise ValueError(f"locations {list(locations)}: a level after one "
                     "with 0 locations has no regions to refine")
  return locations


def check_location_tensor(locations: tf.Tensor, levels: int,
                          grid_size: int) -> tuple[tf.Tensor, ...]:
  """An integer tensor ``[levels - 1]`` → one int32 scalar per level, with
  in-graph checks of its range (serving: a different number of locations
  per request in one graph)."""
  if not locations.dtype.is_integer:
    raise TypeError(f"locations tensor must be an integer dtype, got "
                    f"{locations.dtype.name}")
  if locations.shape.rank != 1 or (
      locations.shape[0] is not None and locations.shape[0] != levels - 1):
    raise ValueError(f"locations tensor must have shape [{levels - 1}] "
                     f"(levels - 1), got {locations.shape}")
  cells = grid_size ** 2
  locations = tf.cast(locations, tf.int32)
  checks = [
      tf.debugging.assert_equal(
          tf.size(locations), levels - 1,
          message=f"locations must give {levels - 1} values"),
      tf.debugging.assert_non_negative(
          locations, message="locations must be >= 0 per level"),
      tf.debugging.assert_less_equal(
          locations, cells,
          message=f"locations per level must be <= {cells} (the cells of "
                  f"the {grid_size}x{grid_size} grid)")]
  with tf.control_dependencies(checks):
    locations = tf.identity(locations)
  return tuple(locations[i] for i in range(levels - 1))


# ------------------------------------------------------------------ images
def check_images(images, check_numerics: bool = False) -> tf.Tensor:
  """A batch ``[B, H, W, 1|3]`` of pixel values in [0, 255] (any integer or
  float dtype), with in-graph checks of what the static shape leaves open."""
  images = tf.convert_to_tensor(images)
  if images.shape.rank != 4:
    raise ValueError(f"images must be rank 4 [batch, height, width, "
                     f"channels], got shape {images.shape}")
  if images.dtype not in IMAGE_DTYPES:
    raise TypeError(f"images dtype must be one of "
                    f"{[d.name for d in IMAGE_DTYPES]}, got "
                    f"{images.dtype.name}")
  channels = images.shape[-1]
  if channels not in (1, 3):
    raise ValueError(f"images must have 1 or 3 channels, got {channels} "
                     f"(shape {images.shape})")
  for axis, name in ((0, "batch"), (1, "height"), (2, "width")):
    if images.shape[axis] == 0:
      raise ValueError(f"images have zero {name} (shape {images.shape})")
  asserts = [tf.debugging.assert_positive(
      tf.shape(images)[:3],
      message="images must be non-empty: batch, height and width > 0")]
  if check_numerics and images.dtype.is_floating:
    asserts.append(tf.debugging.assert_all_finite(
        images, "images contain NaN or Inf values"))
  with tf.control_dependencies(asserts):
    return tf.identity(images)
