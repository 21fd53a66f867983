"""Generated whole-slide images: tiled, compressed pyramidal TIFFs.

For tests and benchmarks of reading images that do not fit in memory. A
slide is a mostly blank (white) background with tissue — a smooth pink
texture inside a blob-shaped mask from a coarse random field — holding a
few small lesions of one class: dark discs (class 0) or dark rings
(class 1), at known boxes. Every pyramid level is drawn from the same
continuous description (mask, texture, lesions) at its own scale, so the
levels agree, and tile by tile, so a 10⁵-pixel slide is written in bounded
memory; blank tiles and the low-entropy texture compress to little on
disk (zlib, tifffile's built-in codec).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator
import zlib

import numpy as np

BACKGROUND = 245  # the white of an empty glass slide
CLASSES = ("disc", "ring")


@dataclasses.dataclass(frozen=True)
class SlideSpec:
  size: int  # px a side at level 0
  label: int = 0  # the lesions' class (CLASSES)
  lesions: int = 3
  lesion_px: int = 96  # diameter at level 0
  tile: int = 256
  min_level_px: int = 1024  # the smallest pyramid level is not smaller
  field_cells: int = 6  # the tissue mask's coarse grid
  seed: int = 0
  compression: str = "zlib"  # or "jpeg", as scanners write their tiles

  def __post_init__(self):
    if self.size < 2 * self.tile:
      raise ValueError(f"size must be >= 2 tiles ({2 * self.tile} px), got "
                       f"{self.size}")
    if self.label not in range(len(CLASSES)):
      raise ValueError(f"label must be in [0, {len(CLASSES)}), got "
                       f"{self.label}")
    if self.tile % 16 or self.tile < 16:
      raise ValueError(f"tile must be a multiple of 16, got {self.tile}")
    if self.compression not in ("zlib", "jpeg"):
      raise ValueError(f"compression must be 'zlib' or 'jpeg', got "
                       f"{self.compression!r}")
    if not 8 <= self.lesion_px <= self.size // 8:
      raise ValueError(f"lesion_px must be in [8, size/8], got "
                       f"{self.lesion_px}")

  def level_sizes(self) -> list[int]:
    """Sides of the pyramid levels, halving down to ``min_level_px``."""
    sizes = [self.size]
    while sizes[-1] // 2 >= self.min_level_px:
      sizes.append(sizes[-1] // 2)
    return sizes


class Slide:
  """The continuous description of a slide: tissue field, lesions."""

  def __init__(self, spec: SlideSpec):
    self.spec = spec
    self.sizes = spec.level_sizes()
    rng = np.random.default_rng([spec.seed, 7])
    n = spec.field_cells + 1
    self.field = rng.uniform(0.0, 1.0, [n, n])
    self.field[[0, -1], :] = self.field[:, [0, -1]] = 0.0  # blank margins
    self.threshold = 0.5
    self.boxes = self._place_lesions(rng)

  def tissue(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The field at fractional positions (bilinear on the coarse grid)."""
    g = self.spec.field_cells
    fy, fx = np.clip(ys * g, 0, g - 1e-9), np.clip(xs * g, 0, g - 1e-9)
    y0, x0 = fy.astype(int), fx.astype(int)
    wy, wx = fy - y0, fx - x0
    f = self.field
    return ((1 - wy) * (1 - wx) * f[y0, x0] + (1 - wy) * wx * f[y0, x0 + 1]
            + wy * (1 - wx) * f[y0 + 1, x0] + wy * wx * f[y0 + 1, x0 + 1])

  def _place_lesions(self, rng) -> np.ndarray:
    """Lesion boxes (y0, x0, y1, x1) in level-0 px, inside tissue."""
    s, d = self.spec.size, self.spec.lesion_px
    boxes = []
    for _ in range(10000):
      if len(boxes) == self.spec.lesions:
        break
      cy, cx = rng.uniform(d, s - d, 2)
      if self.tissue(np.array(cy / s), np.array(cx / s)) < (
          self.threshold + 0.1):
        continue
      if any(abs(cy - (b[0] + b[2]) / 2) < 2 * d and
             abs(cx - (b[1] + b[3]) / 2) < 2 * d for b in boxes):
        continue
      boxes.append((cy - d / 2, cx - d / 2, cy + d / 2, cx + d / 2))
    if len(boxes) < self.spec.lesions:
      raise ValueError(f"no room for {self.spec.lesions} lesions in the "
                       f"tissue of a {s} px slide (seed {self.spec.seed})")
    return np.array(boxes, np.float64)

  def _centres(self, level: int, ty: int, tx: int) -> tuple:
    """Fractional positions of a tile's pixel centres (rows, columns)."""
    side, t = self.sizes[level], self.spec.tile
    return ((ty * t + np.arange(t) + 0.5) / side,
            (tx * t + np.arange(t) + 0.5) / side)

  def _field_range(self, ys, xs) -> tuple:
    """Min and max of the (bilinear) tissue field over a tile: attained at
    the tile's corners or where it crosses the coarse grid's lines."""
    g = self.spec.field_cells

    def points(v):
      lines = np.arange(np.ceil(v[0] * g), np.floor(v[-1] * g) + 1) / g
      return np.concatenate([[v[0], v[-1]], lines])

    py, px = np.meshgrid(points(ys), points(xs), indexing="ij")
    values = self.tissue(py.ravel(), px.ravel())
    return values.min(), values.max()

  def kind(self, level: int, ty: int, tx: int) -> str:
    """"blank" (glass only), "tissue" (tissue only, no lesion: the same
    pixels for every such tile of the level, the texture being periodic in
    the tile) or "mixed"."""
    ys, xs = self._centres(level, ty, tx)
    if len(self.boxes[self._lesions_in(ys, xs)]):
      return "mixed"
    low, high = self._field_range(ys, xs)
    if high < self.threshold:
      return "blank"
    periodic = self.sizes[level] << level == self.spec.size
    return "tissue" if low >= self.threshold and periodic else "mixed"

  def tile(self, level: int, ty: int, tx: int) -> np.ndarray:
    """uint8 [tile, tile, 3] of a level (0: full resolution)."""
    spec = self.spec
    t = spec.tile
    scale = spec.size / self.sizes[level]  # level-0 px per px of the level
    ys, xs = self._centres(level, ty, tx)
    out = np.full([t, t, 3], BACKGROUND, np.uint8)
    lesions = self.boxes[self._lesions_in(ys, xs)]
    if self._field_range(ys, xs)[1] < self.threshold and not len(lesions):
      return out  # blank glass
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    mask = self.tissue(yy, xx) >= self.threshold
    # level-0 coordinates: the same texture at every level (coarser there);
    # whole periods in a level-0 tile, so tissue-only tiles repeat
    y0, x0 = ys * spec.size, xs * spec.size
    wave = np.outer(np.sin(2 * np.pi * 11 * y0 / t),
                    np.sin(2 * np.pi * 9 * x0 / t)) > 0
    pink = np.where(wave[..., None], np.array([200, 130, 180], np.uint8),
                    np.array([225, 170, 200], np.uint8))
    out[mask] = pink[mask]
    for y_0, x_0, y_1, x_1 in lesions:
      r = (y_1 - y_0) / 2
      dist = np.hypot((y0 - (y_0 + r))[:, None], (x0 - (x_0 + r))[None, :])
      inside = dist <= r if spec.label == 0 else (
          (dist <= r) & (dist >= 0.55 * r))
      # at coarse levels keep at least the pixel nearest the centre
      inside |= dist <= 0.5 * scale
      out[inside] = (90, 40, 110)
    return out

  def _lesions_in(self, ys, xs) -> np.ndarray:
    """Which lesions reach into the tile of pixel centres ``ys`` × ``xs``
    (a margin of one pixel of the level)."""
    s = self.spec.size
    pad = (ys[1] - ys[0]) * s
    y0, y1 = ys[0] * s - pad, ys[-1] * s + pad
    x0, x1 = xs[0] * s - pad, xs[-1] * s + pad
    b = self.boxes
    return ((b[:, 0] <= y1) & (b[:, 2] >= y0) & (b[:, 1] <= x1) &
            (b[:, 3] >= x0))

  def encoded_tiles(self, level: int) -> Iterator[bytes]:
    """The level's tiles, zlib-compressed, row by row; blank and
    tissue-only tiles are drawn and compressed once per level."""
    n = -(-self.sizes[level] // self.spec.tile)
    cache = {}
    for ty in range(n):
      for tx in range(n):
        kind = self.kind(level, ty, tx)
        if kind == "mixed":
          yield zlib.compress(self.tile(level, ty, tx).tobytes(), 6)
          continue
        if kind not in cache:
          cache[kind] = zlib.compress(self.tile(level, ty, tx).tobytes(), 6)
        yield cache[kind]


def write(path: str, spec: SlideSpec) -> dict:
  """Writes the slide as a tiled pyramidal BigTIFF (level 0, then the
  reduced levels as SubIFDs) and returns ``{"size", "levels", "label",
  "boxes"}`` (boxes in level-0 px, y0 x0 y1 x1)."""
  import tifffile  # an optional dependency of reading slides
  slide = Slide(spec)
  sizes = slide.sizes
  with tifffile.TiffWriter(path, bigtiff=True) as tif:
    for level, side in enumerate(sizes):
      extra = ({"subifds": len(sizes) - 1} if level == 0
               else {"subfiletype": 1})
      if spec.compression == "jpeg":  # tifffile encodes the tiles
        n = -(-side // spec.tile)
        tiles = (slide.tile(level, ty, tx) for ty in range(n)
                 for tx in range(n))
        extra["compressionargs"] = {"level": 90}
      else:
        tiles = slide.encoded_tiles(level)
      tif.write(tiles, shape=(side, side, 3), dtype=np.uint8,
                tile=(spec.tile, spec.tile), compression=spec.compression,
                photometric="rgb", **extra)
  return {"size": spec.size, "levels": sizes, "label": spec.label,
          "boxes": slide.boxes.tolist()}
