"""Images TNet reads region by region: tiled pyramids read lazily.

A ``Source`` is one image as a pyramid of levels (level 0 = full
resolution) that answers ``read(level, y0, y1, x0, x1)`` by decoding only
the tiles (or strips) the window touches:

- ``TiffSource`` — any TIFF through tifffile: pyramidal TIFF / OME-TIFF /
  SVS (levels from the file's series), and plain tiled or stripped TIFF
  (one level, read in tiles or strips, never decoded whole).
- ``OpenSlideSource`` — NDPI, MRXS, SCN, BIF, ... through OpenSlide (the
  optional extra ``slides``).
- ``ArraySource`` — an image in memory (JPEG, PNG, ... decoded whole, up
  to ``max_pixels``).

``Regions`` (a batch of sources of one size) is an image source TNet
reads through (``tnet_tf.model.sources.ImageSource``), where it takes its
images: ``model(Regions([source]), locations=...)``. Level 1 reads the
coarsest pyramid level not smaller than the base resolution and resamples
it as the in-memory path resamples the whole image; every attended region
is read from the coarsest level that still has ``r`` pixels across it, and
resampled with the model's resampling (``"authors"`` or ``"antialias"``)
at that level's coordinates. Nothing else is read. On a one-level source
the result equals the in-memory path's (the same pixels, the same
arithmetic).

Pixels are uint8; 16-bit files are scaled by 255 / 65535, an alpha channel
is dropped (OpenSlide's is composited on white), grey stays one channel.
Every failure names the file (and the level and region): a truncated file,
a tile that fails to decode, pyramid levels that disagree.
"""
from __future__ import annotations

import collections
import logging as std_logging
import math
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.model import resampling as resampling_lib
from tnet_tf.model import sources

MAX_PIXELS = 64 * 2 ** 20  # decoded whole at most: 64 MP (192 MB as RGB)
OPENSLIDE_EXTENSIONS = (".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu",
                        ".svslide")
TIFF_EXTENSIONS = (".tif", ".tiff", ".svs", ".btf", ".tf8", ".qptiff")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class RegionReadError(ValueError):
  """A file, or a region of it, that cannot be read; the message names
  it."""


def _to_uint8(pixels: np.ndarray, name: str) -> np.ndarray:
  """[h, w] or [h, w, C] pixels as uint8 [h, w, 1|3]."""
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.shape[-1] == 4:
    pixels = pixels[..., :3]
  elif pixels.shape[-1] == 2:  # grey + alpha
    pixels = pixels[..., :1]
  if pixels.shape[-1] not in (1, 3):
    raise RegionReadError(f"{name}: {pixels.shape[-1]} channels (1, 3 or "
                          "4 are read)")
  if pixels.dtype == np.uint8:
    return pixels
  if pixels.dtype == np.uint16:
    return np.round(pixels.astype(np.float32) * (255.0 / 65535.0)).astype(
        np.uint8)
  if pixels.dtype == np.bool_:
    return pixels.astype(np.uint8) * 255
  raise RegionReadError(f"{name}: pixels of type {pixels.dtype} (uint8 or "
                        "uint16 are read)")


class Source:
  """One image as a pyramid (see the module). Subclasses set ``name``,
  ``level_shapes`` ([(h, w)], level 0 first, strictly shrinking),
  ``channels`` and implement ``_read``."""

  name = ""
  level_shapes: list = []
  channels = 3

  def __init__(self):
    self.decoded_pixels = 0  # pixels decoded so far (whole tiles count)

  def downsample(self, level: int) -> tuple:
    """Level-0 pixels per pixel of ``level``, per axis."""
    h, w = self.level_shapes[0]
    lh, lw = self.level_shapes[level]
    return h / lh, w / lw

  def read(self, level: int, y0: int, y1: int, x0: int, x1: int
           ) -> np.ndarray:
    """uint8 ``[y1 - y0, x1 - x0, C]`` of a window inside ``level``."""
    h, w = self.level_shapes[level]
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
      raise RegionReadError(f"{self.name}: window rows {y0}:{y1} cols "
                            f"{x0}:{x1} outside level {level} ({h}x{w})")
    return self._read(level, y0, y1, x0, x1)

  def window(self, level: int, y0: int, y1: int, x0: int, x1: int,
             pad: float) -> np.ndarray:
    """float32 ``[y1 - y0, x1 - x0, C]`` of any window: pixels outside the
    level read ``pad``."""
    h, w = self.level_shapes[level]
    out = np.full([y1 - y0, x1 - x0, self.channels], pad, np.float32)
    a, b = max(y0, 0), min(y1, h)
    c, d = max(x0, 0), min(x1, w)
    if a < b and c < d:
      out[a - y0:b - y0, c - x0:d - x0] = self.read(level, a, b, c, d)
    return out

  def _read(self, level, y0, y1, x0, x1):
    raise NotImplementedError

  def close(self) -> None:
    pass


class ArraySource(Source):
  """An image in memory, one level."""

  def __init__(self, pixels: np.ndarray, name: str = "<array>"):
    super().__init__()
    self.name = name
    self.pixels = _to_uint8(np.asarray(pixels), name)
    self.level_shapes = [tuple(self.pixels.shape[:2])]
    self.channels = self.pixels.shape[-1]

  def _read(self, level, y0, y1, x0, x1):
    self.decoded_pixels += (y1 - y0) * (x1 - x0)
    return self.pixels[y0:y1, x0:x1]


class TiffSource(Source):
  """A TIFF read tile by tile (or strip by strip) with tifffile."""

  def __init__(self, path: str, cache_tiles: int = 64,
               check_levels: bool = True):
    super().__init__()
    import tifffile  # a dependency; imported where slides are read
    self.name = path
    self._tiles = collections.OrderedDict()
    self._cache = cache_tiles
    quiet = std_logging.getLogger("tifffile")
    level, quiet.level = quiet.level, std_logging.CRITICAL
    try:
      self._tif = tifffile.TiffFile(path)
      series = self._tif.series[0]
      self._pages = [lv.pages[0] for lv in series.levels]
    except Exception as err:  # tifffile raises many kinds
      raise RegionReadError(f"{path}: not a readable TIFF ({err})") from err
    finally:
      quiet.level = level
    size = os.path.getsize(path)
    self.level_shapes = []
    for i, page in enumerate(self._pages):
      self._check_page(page, i, size)
      self.level_shapes.append((int(page.imagelength), int(page.imagewidth)))
    listed = len(self._pages[0].subifds or ())
    if listed and listed != len(self._pages) - 1:
      raise RegionReadError(
          f"{path}: pyramid levels disagree: level 0 lists {listed} reduced "
          f"levels, {len(self._pages) - 1} of them are level 0 at one scale")
    self.channels = min(int(self._pages[0].samplesperpixel), 3)
    if self.channels == 2:
      self.channels = 1
    _check_pyramid(self)
    if check_levels and len(self._pages) > 1:
      _check_level_content(self)

  def _check_page(self, page, level: int, file_size: int) -> None:
    where = f"{self.name}: level {level}"
    if page.planarconfig != 1 and page.samplesperpixel > 1:
      raise RegionReadError(f"{where}: separate colour planes are not read "
                            "(planar configuration 2)")
    expected = int(np.prod(page.chunked))
    offsets, counts = len(page.dataoffsets), len(page.databytecounts)
    if offsets != expected or counts != expected:
      raise RegionReadError(
          f"{where}: the tile tables are incomplete ({offsets} offsets and "
          f"{counts} byte counts for {expected} tiles): the file is "
          "truncated or damaged")
    ends = np.asarray(page.dataoffsets, np.int64) + np.asarray(
        page.databytecounts, np.int64)
    if len(ends) and ends.max() > file_size:
      raise RegionReadError(
          f"{where}: the file is truncated (its tiles end at byte "
          f"{int(ends.max())}, the file has {file_size} bytes)")

  def _segment(self, level: int, index: int) -> np.ndarray:
    key = (level, index)
    if key in self._tiles:
      self._tiles.move_to_end(key)
      return self._tiles[key]
    page = self._pages[level]
    fh = self._tif.filehandle
    try:
      offset, count = page.dataoffsets[index], page.databytecounts[index]
      data = None
      if count:
        fh.seek(offset)
        data = fh.read(count)
      kwargs = ({"jpegtables": page.jpegtables}
                if getattr(page, "jpegtables", None) else {})
      segment = page.decode(data, index, **kwargs)[0]
    except Exception as err:
      th, tw = page.chunks[:2]
      nx = page.chunked[1]
      row, col = divmod(index, nx)
      raise RegionReadError(
          f"{self.name}: level {level}, tile {index} (rows "
          f"{row * th}:{(row + 1) * th}, cols {col * tw}:{(col + 1) * tw}) "
          f"fails to decode ({type(err).__name__}: {err})") from err
    if segment is None:
      raise RegionReadError(f"{self.name}: level {level}, tile {index} "
                            "decodes to nothing")
    segment = _to_uint8(segment.reshape(segment.shape[-3:]), self.name)
    self.decoded_pixels += segment.shape[0] * segment.shape[1]
    self._tiles[key] = segment
    if len(self._tiles) > self._cache:
      self._tiles.popitem(last=False)
    return segment

  def _read(self, level, y0, y1, x0, x1):
    page = self._pages[level]
    th, tw = int(page.chunks[0]), int(page.chunks[1])
    nx = int(page.chunked[1]) if page.is_tiled else 1
    out = np.empty([y1 - y0, x1 - x0, self.channels], np.uint8)
    for ty in range(y0 // th, (y1 - 1) // th + 1):
      for tx in range(x0 // tw, (x1 - 1) // tw + 1):
        tile = self._segment(level, ty * nx + tx)
        a, b = max(y0, ty * th), min(y1, (ty + 1) * th)
        c, d = max(x0, tx * tw), min(x1, (tx + 1) * tw)
        out[a - y0:b - y0, c - x0:d - x0] = tile[
            a - ty * th:b - ty * th, c - tx * tw:d - tx * tw, :self.channels]
    return out

  def close(self):
    self._tif.close()


class OpenSlideSource(Source):
  """A slide OpenSlide reads (the ``slides`` extra)."""

  def __init__(self, path: str):
    super().__init__()
    self.name = path
    try:
      import openslide
    except ImportError as err:
      raise RegionReadError(
          f"{path}: reading this format needs OpenSlide: pip install "
          "'tnet-tf[slides]' (openslide-python, openslide-bin)") from err
    try:
      self._slide = openslide.OpenSlide(path)
    except Exception as err:
      raise RegionReadError(f"{path}: OpenSlide cannot open it ({err})"
                            ) from err
    self.level_shapes = [(h, w) for w, h in self._slide.level_dimensions]
    self.channels = 3
    _check_pyramid(self)

  def _read(self, level, y0, y1, x0, x1):
    fy, fx = self.downsample(level)
    try:
      rgba = np.asarray(self._slide.read_region(
          (int(round(x0 * fx)), int(round(y0 * fy))), level,
          (x1 - x0, y1 - y0)))
    except Exception as err:
      raise RegionReadError(f"{self.name}: level {level}, rows {y0}:{y1} "
                            f"cols {x0}:{x1} fails to read ({err})") from err
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    self.decoded_pixels += (y1 - y0) * (x1 - x0)
    return np.round(rgb).astype(np.uint8)

  def close(self):
    self._slide.close()


def _check_pyramid(source: Source) -> None:
  """Levels shrink, and each is the level-0 image at one scale (the two
  axes agree to a pixel)."""
  h, w = source.level_shapes[0]
  previous = None
  for level, (lh, lw) in enumerate(source.level_shapes):
    if min(lh, lw) < 1:
      raise RegionReadError(f"{source.name}: level {level} is empty")
    fy, fx = h / lh, w / lw
    # a level of side round(s / f) or floor(s / f): within one pixel
    if abs(h / fx - lh) > 1.0 + 1e-6 or abs(w / fy - lw) > 1.0 + 1e-6:
      raise RegionReadError(
          f"{source.name}: pyramid levels disagree: level {level} is "
          f"{lh}x{lw}, not level 0 ({h}x{w}) at one scale")
    if previous is not None and not (lh < previous[0] and lw < previous[1]):
      raise RegionReadError(
          f"{source.name}: pyramid levels disagree: level {level} "
          f"({lh}x{lw}) is not smaller than level {level - 1} "
          f"({previous[0]}x{previous[1]})")
    previous = (lh, lw)


def _check_level_content(source: Source, tolerance: float = 24.0,
                         window: int = 64) -> None:
  """The two coarsest levels show the same image: a central window of the
  coarsest (at most ``window`` px a side) against the same region of the
  next level reduced to its size differs by at most ``tolerance`` grey
  levels on average (a level of another image differs by far more)."""
  coarse = len(source.level_shapes) - 1
  ch, cw = source.level_shapes[coarse]
  fy, fx = (a / b for a, b in zip(source.level_shapes[coarse - 1],
                                  source.level_shapes[coarse]))
  ph, pw = min(window, ch), min(window, cw)
  y0, x0 = (ch - ph) // 2, (cw - pw) // 2
  small = source.read(coarse, y0, y0 + ph, x0, x0 + pw).astype(np.float32)
  fine_hw = source.level_shapes[coarse - 1]
  fine = source.read(coarse - 1, int(y0 * fy), min(int((y0 + ph) * fy),
                                                   fine_hw[0]),
                     int(x0 * fx), min(int((x0 + pw) * fx), fine_hw[1]))
  reduced = tf.image.resize(fine.astype(np.float32), [ph, pw],
                            method="area").numpy()
  diff = float(np.mean(np.abs(reduced - small)))
  if diff > tolerance:
    raise RegionReadError(
        f"{source.name}: pyramid levels disagree: level {coarse} differs "
        f"from level {coarse - 1} reduced to its size by {diff:.1f} grey "
        f"levels on average (at most {tolerance:g} expected)")


def _decode_whole(path: str, max_pixels: int) -> ArraySource:
  from PIL import Image
  try:
    with Image.open(path) as image:
      w, h = image.size
      if w * h > max_pixels:
        raise RegionReadError(
            f"{path}: {w}x{h} is too large to decode whole ({w * h / 1e6:.0f}"
            f" MP > {max_pixels / 1e6:.0f} MP); convert it to a tiled "
            "pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)")
      image.load()
      if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image).astype(np.uint16)
      elif image.mode not in ("L", "RGB"):
        pixels = np.asarray(image.convert("RGB"))
      else:
        pixels = np.asarray(image)
  except RegionReadError:
    raise
  except Exception as err:
    raise RegionReadError(f"{path}: cannot decode the image "
                          f"({type(err).__name__}: {err})") from err
  return ArraySource(pixels, path)


def open_source(path: str, max_pixels: int = MAX_PIXELS) -> Source:
  """The source of a file: TIFFs through tifffile, OpenSlide's formats
  through OpenSlide, other images decoded whole (up to ``max_pixels``)."""
  if not os.path.isfile(path):
    raise RegionReadError(f"{path}: no such file")
  ext = os.path.splitext(path)[1].lower()
  if ext in OPENSLIDE_EXTENSIONS:
    return OpenSlideSource(path)
  with open(path, "rb") as f:
    magic = f.read(4)
  if magic in _TIFF_MAGIC or ext in TIFF_EXTENSIONS:
    return TiffSource(path)
  return _decode_whole(path, max_pixels)


# --------------------------------------------------------- reading for TNet
def overview_level(source: Source, r: int) -> int:
  """The coarsest level with at least ``r`` pixels on both sides (0 when
  even level 0 is smaller)."""
  best = 0
  for level, (h, w) in enumerate(source.level_shapes):
    if min(h, w) >= r:
      best = level
  return best


def region_level(source: Source, window_hw: Sequence[float], r: int) -> int:
  """The coarsest level at which a level-0 window still spans ``r`` pixels
  on both axes."""
  best = 0
  for level in range(len(source.level_shapes)):
    fy, fx = source.downsample(level)
    if window_hw[0] / fy >= r and window_hw[1] / fx >= r:
      best = level
  return best


def _reduced(source: Source, level: int, r: int) -> np.ndarray:
  """A level larger than ``MAX_PIXELS``, box-reduced in bands of rows by
  the largest integer factor that keeps ``r`` pixels (bounded memory)."""
  h, w = source.level_shapes[level]
  factor = max(1, min(h, w) // r)
  rows = []
  band = factor * max(1, 2 ** 22 // (w * factor))
  for y in range(0, (h // factor) * factor, band):
    y1 = min(y + band, (h // factor) * factor)
    pixels = source.read(level, y, y1, 0, (w // factor) * factor)
    pixels = pixels.reshape((y1 - y) // factor, factor, w // factor, factor,
                            -1).astype(np.float32).mean(axis=(1, 3))
    rows.append(pixels)
  return np.concatenate(rows, axis=0)


class SlideTable:
  """Files read region by region, by index: each opened on first use, at
  most ``open_files`` open at once (with their tile caches: memory stays
  bounded however many and however large the files). ``canvas`` is the
  largest level-0 size: training batches read every file on it (smaller
  files at its top left, the rest padding)."""

  def __init__(self, paths: Sequence[str], max_pixels: int = MAX_PIXELS,
               open_files: int = 16):
    self.paths = list(paths)
    self.max_pixels = max_pixels
    self.open_files = max(1, open_files)
    self._open = collections.OrderedDict()
    shapes, channels = [], set()
    for i in range(len(self.paths)):  # headers only
      source = self[i]
      shapes.append(tuple(source.level_shapes[0]))
      channels.add(source.channels)
    self._init(shapes, channels)

  @classmethod
  def of(cls, sources: Sequence[Source]) -> "SlideTable":
    """A table of sources already open (kept open)."""
    table = cls.__new__(cls)
    table.paths = [s.name for s in sources]
    table.max_pixels = MAX_PIXELS
    table.open_files = len(sources)
    table._open = collections.OrderedDict(enumerate(sources))
    table._init([tuple(s.level_shapes[0]) for s in sources],
                {s.channels for s in sources})
    return table

  def _init(self, shapes, channels) -> None:
    if not shapes:
      raise ValueError("a table of regions needs at least one file")
    self.shapes = shapes
    self.canvas = (max(h for h, _ in shapes), max(w for _, w in shapes))
    self.channels = channels.pop() if len(channels) == 1 else 3

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> Source:
    index = int(index)
    if index in self._open:
      self._open.move_to_end(index)
      return self._open[index]
    source = open_source(self.paths[index], self.max_pixels)
    self._open[index] = source
    if len(self._open) > self.open_files:
      self._open.popitem(last=False)[1].close()
    return source

  @property
  def decoded_pixels(self) -> int:
    return sum(s.decoded_pixels for s in self._open.values())

  def close(self) -> None:
    for source in self._open.values():
      source.close()
    self._open.clear()


class Regions(sources.ImageSource):
  """A batch of images read lazily by TNet (see the module): ``sources``
  (a list, each read whole-canvas) or a ``SlideTable`` with ``ids`` (int
  ``[B]``, a tensor in a training graph). ``shape`` is ``[B, H, W, C]`` as
  a dense batch on the table's canvas would have it."""

  host_reads = True

  def __init__(self, sources, ids=None, max_pixels: int = MAX_PIXELS):
    if isinstance(sources, SlideTable):
      self.table = sources
    else:
      if not sources:
        raise ValueError("Regions needs at least one source")
      sizes = {tuple(s.level_shapes[0]) for s in sources}
      if len(sizes) > 1:
        raise ValueError(f"a batch of regions needs sources of one size, "
                         f"got {sorted(sizes)}")
      self.table = SlideTable.of(list(sources))
      self.table.max_pixels = max_pixels
    self.ids = (np.arange(len(self.table), dtype=np.int32) if ids is None
                else ids)
    self.channels = self.table.channels
    h, w = self.table.canvas
    batch = (len(self.ids) if isinstance(self.ids, np.ndarray)
             else self.ids.shape[0])
    self.shape = tf.TensorShape([batch, h, w, self.channels])

  @property
  def sources(self) -> list:
    return [self.table[i] for i in np.asarray(self.ids)]

  @property
  def batch(self):
    return (len(self.ids) if isinstance(self.ids, np.ndarray)
            else tf.shape(self.ids)[0])

  def image_hw(self) -> tuple:
    return int(self.shape[1]), int(self.shape[2])

  @property
  def decoded_pixels(self) -> int:
    return self.table.decoded_pixels

  def _pixels(self, array: np.ndarray) -> np.ndarray:
    if array.shape[-1] != self.channels:
      array = np.repeat(array, self.channels, axis=-1)
    return array

  @staticmethod
  def _check(resampling) -> None:
    if not isinstance(resampling, resampling_lib.IntegerCells):
      raise ValueError(
          f"reading regions lazily needs resampling 'authors' or "
          f"'antialias', the model has {resampling.name!r}")

  def _overview(self, source: Source, r: int) -> np.ndarray:
    """The canvas at the coarsest level of ``source`` not smaller than
    ``r`` (the file at its top left)."""
    level = overview_level(source, r)
    h, w = source.level_shapes[level]
    if tuple(source.level_shapes[0]) != tuple(self.table.canvas):
      fy, fx = source.downsample(level)
      ch, cw = (int(round(c / f)) for c, f in zip(self.table.canvas,
                                                   (fy, fx)))
      if ch * cw > self.table.max_pixels:
        raise RegionReadError(f"{source.name}: no pyramid level small "
                              "enough for the overview of the canvas")
      return source.window(level, 0, ch, 0, cw, resampling_lib.PAD_VALUE)
    if h * w > self.table.max_pixels:
      return _reduced(source, level, r)
    return source.read(level, 0, h, 0, w)

  def whole(self, resampling, sampling, r: int) -> tf.Tensor:
    """Level 1 of every image: ``[B, r, r, C]`` float32."""
    self._check(resampling)

    def read(ids):
      return tf.concat([resampling.whole(sampling, tf.constant(
          self._pixels(self._overview(self.table[i], r))[None]), r)
                        for i in np.asarray(ids)], axis=0)

    if tf.executing_eagerly():  # errors reach the caller as raised
      return read(self.ids)
    out = tf.py_function(read, [self.ids], tf.float32)
    return tf.ensure_shape(out, [None, r, r, self.channels])

  def crops(self, resampling, sampling, boxes: tf.Tensor,
            box_image: tf.Tensor, r: int, depth: int,
            bounds=None) -> tf.Tensor:
    """The regions ``boxes`` (normalised ``[M, 4]`` of level ``depth``) of
    the images ``box_image`` at ``r×r``, float32 (as
    ``Resampling.crops``): each read from the coarsest level of its file
    that has ``r`` pixels across it (in a graph, on the host by a
    ``tf.py_function``)."""
    self._check(resampling)
    canvas = tuple(self.table.canvas)
    window = resampling.level_size(canvas, depth)
    starts = tf.round(boxes[:, :2] * tf.constant(canvas, tf.float32))
    image = tf.gather(tf.convert_to_tensor(self.ids, tf.int32),
                      tf.cast(box_image, tf.int32))
    inside = resampling.inside(canvas, depth)
    # what each region may read, in canvas pixels (beyond: the padding)
    bounds = (tf.zeros([tf.shape(boxes)[0], 0]) if inside or bounds is None
              else tf.round(bounds * tf.constant(canvas * 2, tf.float32)))

    def read(starts, image, bounds):
      out = []
      bounds = bounds.numpy()
      for j, ((sy, sx), i) in enumerate(zip(starts.numpy(), image.numpy())):
        source = self.table[i]
        level = region_level(source, window, r)
        fy, fx = source.downsample(level)
        length = ((window[0] / fy, window[1] / fx) if level
                  else tuple(window))
        # the window's pixels at ``level``, one more on each side for the
        # bilinear neighbours
        ly, lx = float(sy) / fy, float(sx) / fx
        y0, x0 = int(math.floor(ly)) - 1, int(math.floor(lx)) - 1
        size = [int(math.ceil(n)) + 3 for n in length]
        patch = self._pixels(source.window(
            level, y0, y0 + size[0], x0, x0 + size[1],
            resampling_lib.PAD_VALUE))
        bound = None
        if bounds.shape[1]:  # to the patch's pixels at ``level``
          bound = tf.constant(
              [bounds[j] / (fy, fx, fy, fx) - (y0, x0, y0, x0)], tf.float32)
        out.append(resampling.sample_window(
            sampling, tf.constant(patch[None]),
            tf.constant([[ly - y0, lx - x0]], tf.float32), length, r,
            inside=inside and level == 0 and (
                tuple(source.level_shapes[0]) == canvas), bounds=bound))
      if not out:
        return tf.zeros([0, r, r, self.channels])
      return tf.concat(out, axis=0)

    if tf.executing_eagerly():
      return read(starts, image, bounds)
    crops = tf.py_function(read, [starts, image, bounds], tf.float32)
    return tf.ensure_shape(crops, [None, r, r, self.channels])

  def close(self) -> None:
    self.table.close()


def reader(table: SlideTable):
  """A batch's input as TNet reads it when trained on ``table``: int
  indices ``[B]`` into it (what the dataset of slides yields) as
  ``Regions``; pixels (a trained model serving images) as they are."""
  def read(images):
    if getattr(images, "shape", None) is not None and len(
        images.shape) == 1:
      return Regions(table, images)
    return images
  return read
