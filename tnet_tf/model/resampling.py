"""How TNet reads pixels: where its cells lie, and how a cell becomes r×r.

Three ways (``ModelConfig.resampling``):

- ``"authors"`` — what the code behind the paper's numbers did
  (``Tpap/TNet``, ``ImageNet/models.py``): cells are integer pixel windows of
  side ``round(c·s)`` (half to even) of a region of side ``s``, at a stride
  rounded up, the overhang split into padding (the larger half top/left)
  that reads mid-grey (their 0 in [-1, 1]). The padding is of the region
  the cells divide: a cell of a region below the image (level 3 on) that
  reaches past its region reads grey there, not the image beyond it (they
  cut cells from the batch of parent crops). Each level's region is resized
  to ``r`` by half-pixel-centre bilinear interpolation without antialiasing
  (``tf.image.resize``). A 448 → 224 cell is an exact 2×2 average; larger
  ratios alias.
- ``"antialias"`` — the same cells, each resampled with a box filter the
  size of the ratio: sampled bilinearly at ``m·r`` points (``m = ⌈s/r⌉``,
  spacing ≤ 1 px) and averaged over ``m×m``; right at any ratio.
- ``"align_corners"`` — continuous cells (fractions of the parent) sampled
  by ``crop_and_resize`` from the centre of their first pixel to that of
  their last (what this project did before); ``Sampling`` gives the op.

The first two are written with gathers and arithmetic only, so a TFLite
file holds them as builtin ops, and they take any image size (shapes may
be dynamic).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.config import RESAMPLINGS
from tnet_tf.model.layers import grid

PAD_VALUE = 127.5  # the authors' zero padding, in [0, 255] pixel values


# ------------------------------------------------------------- the cells
def pixel_grid(size, grid_size: int, cell_fraction: float):
  """Integer cells of a region of ``size`` pixels along one axis: cell side,
  stride and padding before the first cell (``size`` an int or a float
  tensor; the result of the same kind)."""
  is_int = isinstance(size, (int, np.integer))
  ops = np if is_int else tf.math
  size = float(size) if is_int else tf.cast(size, tf.float64)
  side = ops.round(size * cell_fraction)  # both round half to even
  stride = (ops.ceil((size - side) / (grid_size - 1)) if grid_size > 1
            else 0.0 * side)
  pad = (grid_size - 1) * stride + side - size
  before = ops.ceil(pad / 2.0)
  if is_int:
    return int(side), int(stride), int(before)
  return tuple(tf.cast(v, tf.float32) for v in (side, stride, before))


def image_hw(images) -> tuple:
  """(h, w) as Python ints when the shape is static, else int tensors."""
  static = images.shape[1:3]
  if static[0] is not None and static[1] is not None:
    return int(static[0]), int(static[1])
  shape = tf.shape(images)
  return shape[1], shape[2]


class Resampling:
  """One way of placing cells and sampling them (see the module)."""

  name = ""

  def __init__(self, grid_size: int, cell_fraction: float):
    self.grid_size = grid_size
    self.cell_fraction = cell_fraction

  def whole(self, sampling, images, r: int) -> tf.Tensor:
    """Level 1: every image at ``r×r``, float32."""
    raise NotImplementedError

  def children(self, parents, cells, image_hw: tuple,
               depth: int) -> tf.Tensor:
    """The chosen cells ``cells`` (row-major indices ``[B, G, k]``) of the
    regions ``parents`` (normalised boxes ``[B, G, 4]`` at level
    ``depth``) of images of ``image_hw`` pixels (ints or scalar int
    tensors, as ``image_hw()`` gives them) as normalised boxes
    ``[B, G, k, 4]``."""
    raise NotImplementedError

  def crops(self, sampling, images, boxes, box_image, r: int,
            depth: int, bounds=None) -> tf.Tensor:
    """Regions ``boxes`` (normalised ``[M, 4]``, of level ``depth``) of
    ``images[box_image]`` at ``r×r``, float32. ``bounds`` (normalised
    ``[M, 4]``, or ``None``: the image) is the part of the image each
    region may read; pixels outside it read the padding (``parent_bounds``
    gives it: the region the cell divides)."""
    raise NotImplementedError


class AlignCorners(Resampling):
  """Continuous cells, ``crop_and_resize`` with aligned corners."""

  name = "align_corners"

  def __init__(self, grid_size, cell_fraction):
    super().__init__(grid_size, cell_fraction)
    self._cells = tf.constant(grid.cell_boxes(grid_size, cell_fraction),
                              tf.float32)

  def whole(self, sampling, images, r):
    return sampling.whole(images, [r, r])

  def children(self, parents, cells, image_hw, depth):
    return grid.child_boxes(tf.expand_dims(parents, 2),
                            tf.gather(self._cells, cells))

  def crops(self, sampling, images, boxes, box_image, r, depth,
            bounds=None):
    # continuous cells lie inside their parent: nothing to bound
    return sampling.crop_and_resize(
        images, grid.crop_boxes(boxes, tf.shape(images)[1:3]), box_image,
        [r, r])


class IntegerCells(Resampling):
  """The authors' integer cells, resampled half-pixel bilinearly."""

  name = "authors"
  supersample = False

  def level_size(self, image_hw: Sequence, depth: int) -> tuple:
    """Side of the regions of level ``depth`` (1 = the image), per axis."""
    sizes = list(image_hw)
    for _ in range(depth - 1):
      sizes = [pixel_grid(s if isinstance(s, (int, np.integer)) else s,
                          self.grid_size, self.cell_fraction)[0]
               for s in sizes]
    return tuple(sizes)

  def inside(self, image_hw: Sequence, depth: int) -> bool:
    """Whether every cell down to level ``depth`` lies inside the image —
    known only for a static image size: no cell overhangs into padding."""
    if not all(isinstance(s, (int, np.integer)) for s in image_hw):
      return False
    for d in range(1, depth):
      for size in self.level_size(image_hw, d):
        side, stride, before = pixel_grid(size, self.grid_size,
                                          self.cell_fraction)
        if before or (self.grid_size - 1) * stride + side != size:
          return False
    return True

  def whole(self, sampling, images, r):
    h, w = image_hw(images)
    batch = tf.shape(images)[0]
    starts = tf.zeros([batch, 2])
    return self._sample(images, starts, (h, w), tf.range(batch), r,
                        inside=True, sampling=sampling)

  def children(self, parents, cells, image_hw, depth):
    hw = tf.cast(tf.stack(image_hw), tf.float32)
    parent_hw = self.level_size(image_hw, depth)
    geometry = [pixel_grid(s, self.grid_size, self.cell_fraction)
                for s in parent_hw]
    side = tf.cast(tf.stack([g[0] for g in geometry]), tf.float32)
    stride = tf.cast(tf.stack([g[1] for g in geometry]), tf.float32)
    before = tf.cast(tf.stack([g[2] for g in geometry]), tf.float32)
    # integer pixel starts of the parents (normalised boxes are exact to
    # far below half a pixel)
    origin = tf.round(tf.expand_dims(parents[..., :2] * hw, 2))
    cells = tf.cast(cells, tf.float32)
    row = tf.math.floordiv(cells, float(self.grid_size))
    index = tf.stack([row, cells - row * self.grid_size], axis=-1)
    start = origin + index * stride - before  # [B, G, k, 2]
    return tf.concat([start / hw, (start + side) / hw], axis=-1)

  def crops(self, sampling, images, boxes, box_image, r, depth,
            bounds=None):
    size = image_hw(images)
    hw = tf.cast(tf.stack(size), tf.float32)
    starts = tf.round(boxes[:, :2] * hw)
    inside = self.inside(size, depth)
    return self._sample(images, starts, self.level_size(size, depth),
                        box_image, r, inside=inside, sampling=sampling,
                        bounds=None if inside or bounds is None else
                        tf.round(bounds * tf.tile(hw, [2])))

  def sample_window(self, sampling, patches, starts, window, r,
                    inside=False, bounds=None) -> tf.Tensor:
    """Windows of ``window`` pixels per axis (fractional when read from a
    coarser pyramid level) starting at ``starts`` ``[M, 2]`` of ``patches``
    ``[M, h, w, C]``, at ``r×r``: ``crops`` on windows read from a file
    (``tnet_tf.data.regions``); ``bounds`` ``[M, 4]`` in the patches'
    pixels, as in ``sample_bilinear``."""
    return self._sample(patches, starts, window,
                        tf.range(tf.shape(patches)[0]), r, inside=inside,
                        sampling=sampling, bounds=bounds)

  def _sample(self, images, starts, window, box_image, r, inside=False,
              sampling=None, bounds=None):
    """Windows ``[start, start + window)`` (pixels, may overhang the image
    into padding unless ``inside``) of ``images[box_image]`` resampled to
    ``r×r``; pixels outside ``bounds`` (``[M, 4]`` pixels, optional) read
    the padding too."""
    if (sampling is not None and inside and not self.supersample and
        all(isinstance(s, (int, np.integer)) and s >= r for s in window)):
      # shrinking a window inside the image, the half-pixel centres are
      # evenly spaced and never clamped: one crop_and_resize from the
      # first centre to the last reads the same pixels, in one kernel
      first = [(s / r - 1.0) / 2.0 for s in window]  # p_0 − start
      last = [w - 1.0 - f for w, f in zip(window, first)]
      span = tf.cast(tf.stack(image_hw(images)), tf.float32) - 1.0
      boxes = tf.concat([(starts + first) / span, (starts + last) / span],
                        axis=-1)
      return sampling.crop_and_resize(images, boxes, box_image, [r, r])
    m = ([max(1, math.ceil(s / r)) if isinstance(
        s, (int, float, np.integer, np.floating))
          else tf.maximum(1, tf.cast(tf.math.ceil(
              tf.cast(s, tf.float32) / r), tf.int32)) for s in window]
         if self.supersample else [1, 1])
    ys = _positions(starts[:, 0], window[0], r, m[0])
    xs = _positions(starts[:, 1], window[1], r, m[1])
    out = sample_bilinear(images, ys, xs, box_image,
                          None if inside else PAD_VALUE, bounds)
    if self.supersample:  # box filter: the mean of m×m sub-samples
      shape = tf.shape(out)
      out = tf.reduce_mean(tf.reshape(
          out, [shape[0], r, m[0], r, m[1], shape[3]]), axis=[2, 4])
    return out


class Antialiased(IntegerCells):
  """The authors' cells, each resampled with a box filter."""

  name = "antialias"
  supersample = True

  def whole(self, sampling, images, r):
    # level 1 reads the whole image: the area resize is the same box filter
    # at the exact ratio (not rounded up to m), in one pass over the pixels
    # instead of (m·r)² gathered samples (m = 12 for 1500 px at r = 128)
    area = getattr(sampling, "area", None) if sampling is not None else None
    if area is None:
      return super().whole(sampling, images, r)
    return area(images, [r, r])


def _positions(start: tf.Tensor, length, out: int, supersample) -> tf.Tensor:
  """``[M, out·supersample]`` sample rows (or columns) of windows starting
  at ``start`` of ``length`` pixels: half-pixel centres, clamped to the
  window as ``tf.image.resize`` clamps to its input."""
  steps = out * supersample
  length = tf.cast(length, tf.float32)
  i = tf.cast(tf.range(steps), tf.float32)
  start = tf.reshape(start, [-1, 1])
  points = start - 0.5 + (tf.reshape(i, [1, -1]) + 0.5) * (
      length / tf.cast(steps, tf.float32))
  return tf.clip_by_value(points, start, start + length - 1.0)


def sample_bilinear(images: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor,
                    box_image: tf.Tensor, pad_value: Optional[float],
                    bounds: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Bilinear samples ``[M, h, w, C]`` (float32) of ``images[box_image]``
  at rows ``ys`` ``[M, h]`` × columns ``xs`` ``[M, w]`` (pixel-centre
  coordinates); pixels outside the image read ``pad_value`` (``None``:
  the caller knows every sample lies inside the image, and the checks are
  left out — four selects over the output fewer), and so do pixels whose
  centre lies outside ``bounds`` (``[M, 4]``: y0, x0, y1, x1 in pixels,
  optional)."""
  shape = tf.shape(images)
  height, width, channels = shape[1], shape[2], shape[3]
  pixels = tf.reshape(images, [-1, channels])
  first = tf.reshape(tf.cast(box_image, tf.int32) * height * width, [-1, 1])
  top, left = tf.floor(ys), tf.floor(xs)

  def axis(low, limit, axis_bounds):
    """Clipped indices of low/high and their validity."""
    high = low + 1.0
    limit_f = tf.cast(limit, tf.float32) - 1.0
    valid = [tf.logical_and(v >= 0.0, v <= limit_f) for v in (low, high)]
    if axis_bounds is not None:  # pixel centres inside [start, end)
      start, end = (tf.reshape(b, [-1, 1]) for b in axis_bounds)
      valid = [tf.logical_and(ok, tf.logical_and(v + 0.5 >= start,
                                                 v + 0.5 <= end))
               for ok, v in zip(valid, (low, high))]
    index = [tf.cast(tf.clip_by_value(v, 0.0, limit_f), tf.int32)
             for v in (low, high)]
    return index, valid

  if bounds is not None:
    bounds = tf.cast(bounds, tf.float32)
  (rows, row_ok), (cols, col_ok) = (
      axis(top, height, None if bounds is None else (bounds[:, 0],
                                                     bounds[:, 2])),
      axis(left, width, None if bounds is None else (bounds[:, 1],
                                                     bounds[:, 3])))
  h, w = tf.shape(ys)[1], tf.shape(xs)[1]

  def corner(i, j):
    flat = (tf.reshape(first + rows[i] * width, [-1, h, 1]) +
            tf.reshape(cols[j], [-1, 1, w]))
    value = tf.cast(tf.gather(pixels, flat), tf.float32)
    if pad_value is None:
      return value
    ok = tf.logical_and(tf.reshape(row_ok[i], [-1, h, 1]),
                        tf.reshape(col_ok[j], [-1, 1, w]))
    return tf.where(tf.expand_dims(ok, -1), value, pad_value)

  wy = tf.reshape(ys - top, [-1, h, 1, 1])
  wx = tf.reshape(xs - left, [-1, 1, w, 1])
  upper = corner(0, 0) + (corner(0, 1) - corner(0, 0)) * wx
  lower = corner(1, 0) + (corner(1, 1) - corner(1, 0)) * wx
  return upper + (lower - upper) * wy


def parent_bounds(parents: tf.Tensor, parent_bounds_: tf.Tensor,
                  k) -> tf.Tensor:
  """What the ``k`` children of each region may read: the region
  (``parents``, normalised ``[B, G, 4]``) within what it could read itself
  (``parent_bounds_``, same shape), repeated for its children:
  ``[B, G·k, 4]`` in the children's order."""
  inner = tf.concat([tf.maximum(parents[..., :2], parent_bounds_[..., :2]),
                     tf.minimum(parents[..., 2:], parent_bounds_[..., 2:])],
                    axis=-1)
  return tf.repeat(inner, k, axis=1)


def create(name: str, grid_size: int, cell_fraction: float) -> Resampling:
  kinds = {"authors": IntegerCells, "antialias": Antialiased,
           "align_corners": AlignCorners}
  if name not in kinds:
    raise ValueError(f"resampling must be one of {list(RESAMPLINGS)}, got "
                     f"{name!r}")
  return kinds[name](grid_size, cell_fraction)
