"""Attention-grid geometry (paper §3.2, spec §2.1) as pure functions.

Boxes are ``[y0, x0, y1, x1]`` in continuous coordinates: fractions of the
image (normalised) or pixels, where pixel ``i`` covers ``[i, i + 1)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf


def cell_boxes(grid_size: int, cell_fraction: float) -> np.ndarray:
  """Cells of an ``n×n`` grid as fractions of their parent, row-major.

  Each cell spans ``cell_fraction`` of the parent's height and width; the
  stride ``(1 - c) / (n - 1)`` makes the first cell start at 0 and the last end
  at 1, so the cells tile the parent exactly. Returns float64 ``[n*n, 4]``.
  """
  if grid_size < 1:
    raise ValueError(f"grid_size must be >= 1, got {grid_size}")
  if not 0.0 < cell_fraction <= 1.0:
    raise ValueError(f"cell_fraction must be in (0, 1], got {cell_fraction}")
  if grid_size == 1:
    starts = np.zeros([1])
  else:
    if cell_fraction * grid_size < 1.0 - 1e-9:
      raise ValueError(
          f"cell_fraction={cell_fraction} with grid_size={grid_size} leaves "
          "gaps between cells; need cell_fraction >= 1/grid_size")
    stride = (1.0 - cell_fraction) / (grid_size - 1)
    starts = np.arange(grid_size) * stride
  y0, x0 = np.meshgrid(starts, starts, indexing="ij")
  y0, x0 = y0.reshape(-1), x0.reshape(-1)
  return np.stack([y0, x0, y0 + cell_fraction, x0 + cell_fraction], axis=-1)


def overlapping_cells(grid_size: int, cell_fraction: float) -> np.ndarray:
  """bool ``[n², n²]``: which cells of a grid share area with which (a cell
  with itself included)."""
  boxes = cell_boxes(grid_size, cell_fraction)
  lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
  hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
  return np.all(hi - lo > 1e-9, axis=-1)


def suppressed_top_k(scores: tf.Tensor, k, overlap: np.ndarray) -> tf.Tensor:
  """Greedy top-``k`` of ``scores`` ``[M, n²]`` that passes over cells
  sharing area with a cell already taken (as non-maximum suppression
  does); when every cell left overlaps one taken, the best of those not
  taken. int32 ``[M, k]`` in the order taken; ``k`` an int or a scalar
  tensor."""
  overlap = tf.constant(overlap)
  low = tf.fill(tf.shape(scores), tf.constant(-1e30, scores.dtype))

  def body(i, clear, free, taken):
    has_clear = tf.reduce_max(clear, -1, keepdims=True) > -1e29
    pick = tf.argmax(tf.where(has_clear, clear, free), -1,
                     output_type=tf.int32)
    hit = tf.gather(overlap, pick)
    clear = tf.where(hit, low, clear)
    free = tf.where(tf.one_hot(pick, tf.shape(scores)[-1]) > 0, low, free)
    return i + 1, clear, free, taken.write(i, pick)

  _, _, _, taken = tf.while_loop(
      lambda i, *_: i < k, body,
      (tf.constant(0), scores, scores,
       tf.TensorArray(tf.int32, size=k, element_shape=[None])))
  return tf.transpose(taken.stack())


def child_boxes(parent_boxes: tf.Tensor, cells: tf.Tensor) -> tf.Tensor:
  """Places cells (fractions of a parent) inside parent boxes.

  Args:
    parent_boxes: ``[..., 4]`` boxes in any coordinate frame.
    cells: ``[..., 4]`` cells as fractions of their parent, broadcastable
      against ``parent_boxes``.
  Returns:
    The cells in the parents' frame, shape of the broadcast.
  """
  # (y, x) pairs at once: fewer ops in a TFLite graph
  start = parent_boxes[..., :2]
  size = parent_boxes[..., 2:] - start
  return tf.concat([start + cells[..., :2] * size,
                    start + cells[..., 2:] * size], axis=-1)


def to_pixels(boxes: tf.Tensor, image_hw: tf.Tensor) -> tf.Tensor:
  """Normalised boxes ``[..., 4]`` → pixel boxes for images of ``[h, w]``."""
  hw = tf.cast(image_hw, boxes.dtype)
  return boxes * tf.concat([hw, hw], axis=0)


def crop_boxes(boxes: tf.Tensor, image_hw: tf.Tensor) -> tf.Tensor:
  """Normalised boxes → the box argument of ``tf.image.crop_and_resize``.

  ``crop_and_resize`` maps 0 and 1 to the centres of the first and last pixel
  and samples the box ends exactly ("align corners"). A cell covering pixels
  ``[a, a + h)`` is sampled from the centre of pixel ``a`` to that of pixel
  ``a + h - 1``, so a cell of exactly ``r`` pixels resized to ``r`` is the
  slice itself, and no sample ever falls outside the image.
  """
  hw = tf.cast(image_hw, boxes.dtype)  # (y, x) pairs at once
  den = tf.maximum(hw - 1.0, 1.0)
  start = boxes[..., :2] * hw
  end = tf.maximum(boxes[..., 2:] * hw - 1.0, start)
  return tf.concat([start / den, end / den], axis=-1)


def cell_sizes(input_hw: Sequence[int], cell_fraction: float,
               levels: int) -> list[tuple[float, float]]:
  """Native pixel size ``(h, w)`` of the regions seen at each level."""
  h, w = float(input_hw[0]), float(input_hw[1])
  sizes = []
  for _ in range(levels):
    sizes.append((h, w))
    h, w = h * cell_fraction, w * cell_fraction
  return sizes


def max_levels(input_hw: Sequence[int], base_resolution: int,
               cell_fraction: float, tolerance: float = 1e-6) -> int:
  """Levels before a cell becomes smaller than the base resolution.

  Level 1 always counts; level ``l > 1`` counts while its cells are at least
  ``base_resolution`` native pixels on their shorter side.
  """
  shorter = float(min(input_hw))
  levels = 1
  while shorter * cell_fraction >= base_resolution * (1.0 - tolerance):
    shorter *= cell_fraction
    levels += 1
    if levels > 64:  # cell_fraction == 1 would loop forever
      break
  return levels


def grid_sample_indices(feature_size: int, grid_size: int,
                        cell_fraction: float) -> list[int]:
  """Feature-map rows/cols nearest to the cell centres of the grid.

  The default way to read an ``n×n`` map ``F`` off an arbitrary backbone
  feature map of side ``feature_size``; the paper's backbones use fixed
  strided slices instead (see ``backbones``).
  """
  cells = cell_boxes(grid_size, cell_fraction)[:grid_size, 1]
  centres = cells + cell_fraction / 2.0
  return [min(feature_size - 1, int(math.floor(c * feature_size)))
          for c in centres]
