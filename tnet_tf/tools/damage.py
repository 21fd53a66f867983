"""Damaged copies of image files, to check that a reader survives them.

``damage(path, folder)`` writes copies of a TIFF (tiled or pyramidal), PNG
or JPEG broken in the ways files break in practice: cut short at many
points (the header, inside the first IFD, inside the tile tables, inside
the tile data, one byte short) and with bytes changed (the magic number, a
tag's value, a tile offset past the end, tile data overwritten, an IFD
offset pointing nowhere). It returns ``[(copy's path, what was done)]``.
Where the damage lands is read from the file's own structure (tifffile for
TIFF), so it hits the part it names in any file.

  python -m tnet_tf.cli.damage --output=DIR FILE...
"""
from __future__ import annotations

import os
import struct
from typing import Callable, Sequence

import numpy as np

Damage = Callable[[bytes], bytes]


def _cut(at: int) -> Damage:
  return lambda data: data[:max(0, min(at, len(data) - 1))]


def _put(at: int, new: bytes) -> Damage:
  def change(data: bytes) -> bytes:
    at_ = min(at, len(data) - len(new))
    return data[:at_] + new + data[at_ + len(new):]
  return change


def _noise(at: int, length: int, seed: int = 0) -> Damage:
  rng = np.random.default_rng(seed)
  return _put(at, rng.integers(0, 256, length, np.uint8).tobytes())


def _tiff_damages(path: str, data: bytes) -> list[tuple[str, str, Damage]]:
  import tifffile
  with tifffile.TiffFile(path) as tif:
    page = tif.pages[0]
    big = tif.is_bigtiff
    order = tif.byteorder
    ifd = page.offset
    tags = page.tags
    table = tags.get(324) or tags.get(273)  # TileOffsets / StripOffsets
    counts = tags.get(325) or tags.get(279)
    width = tags[256]
    offsets = np.asarray(page.dataoffsets, np.int64)
    sizes = np.asarray(page.databytecounts, np.int64)
    subifds = tags.get(330)
    coarse = tif.series[0].levels[-1].pages[0]
    last = coarse.offset if coarse is not page else None
    coarse_tile = (int(coarse.dataoffsets[0]), int(coarse.databytecounts[0]))
  word = "Q" if big else "I"
  step = 8 if big else 4
  middle = len(offsets) // 2
  out = [
      ("cut_header", "cut to 6 bytes: inside the header", _cut(6)),
      ("cut_ifd", "cut inside the first IFD (its 3rd tag)",
       _cut(ifd + (8 if big else 2) + 2 * (20 if big else 12) + 5)),
      ("cut_offsets_table", "cut inside the tile offsets table",
       _cut(table.valueoffset + step * (len(offsets) // 3) + 1)),
      ("cut_counts_table", "cut inside the tile byte counts table",
       _cut(counts.valueoffset + step * (len(offsets) // 3) + 1)),
      ("cut_tile_data", "cut inside level 0's middle tile",
       _cut(int(offsets[middle] + sizes[middle] // 2))),
      ("cut_first_0.1pct", "cut to the first 0.1% of the bytes",
       _cut(max(len(data) // 1000, 16))),
      ("cut_half", "cut to half its bytes", _cut(len(data) // 2)),
      ("cut_last_byte", "one byte short", _cut(len(data) - 1)),
      ("bad_magic", "the byte-order mark changed", _put(0, b"XX")),
      ("bad_width", "level 0's width tag set to 1",
       _put(width.valueoffset, struct.pack(order + ("Q" if big else "H"),
                                           1))),
      ("offset_past_end", "a tile offset points past the end",
       _put(table.valueoffset + step * middle,
            struct.pack(order + word, len(data) + 4096))),
      ("tile_noise", "level 0's middle tile overwritten with noise",
       _noise(int(offsets[middle]) + 2, max(1, int(sizes[middle]) - 4))),
      ("tile_zeroed", "level 0's first tile zeroed",
       _put(int(offsets[0]), bytes(int(sizes[0])))),
      ("ifd_offset_nowhere", "the first IFD offset points past the end",
       _put(8 if big else 4, struct.pack(order + word, len(data) * 2))),
      ("ifd_noise", "the first IFD overwritten with noise",
       _noise(ifd, 64, seed=1)),
  ]
  if last is not None:  # the level every traversal reads first
    out.append(("coarse_tile_noise", "the coarsest level's first tile "
                "overwritten with noise",
                _noise(coarse_tile[0] + 2, max(1, coarse_tile[1] - 4), 2)))
  if subifds is not None:
    out.append(("subifd_nowhere", "the reduced levels' IFD offsets point "
                "past the end", _put(subifds.valueoffset, struct.pack(
                    order + word, len(data) * 3))))
  if last is not None and last != ifd:
    out.append(("cut_last_ifd", "cut inside the last level's IFD",
                _cut(last + 10)))
  return out


def _image_damages(data: bytes) -> list[tuple[str, str, Damage]]:
  n = len(data)
  return [
      ("cut_header", "cut to 10 bytes", _cut(10)),
      ("cut_quarter", "cut to a quarter of its bytes", _cut(n // 4)),
      ("cut_half", "cut to half its bytes", _cut(n // 2)),
      ("cut_last_byte", "one byte short", _cut(n - 1)),
      ("bad_magic", "the first bytes changed", _put(0, b"\x00\x00\x00\x00")),
      ("middle_noise", "a quarter of its bytes in the middle overwritten "
       "with noise", _noise(n // 3, max(1, n // 4))),
      ("empty", "no bytes", lambda data: b""),
  ]


def damages(path: str) -> list[tuple[str, str, Damage]]:
  """The ways ``path`` is damaged: ``[(name, what, function of bytes)]``."""
  with open(path, "rb") as f:
    data = f.read()
  if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
    return _tiff_damages(path, data)
  return _image_damages(data)


def damage(path: str, folder: str,
           only: Sequence[str] = ()) -> list[tuple[str, str]]:
  """Writes the damaged copies of ``path`` to ``folder`` (names
  ``<stem>.<damage><ext>``); returns ``[(copy's path, what was done)]``.
  ``only``: the damages of these names."""
  with open(path, "rb") as f:
    data = f.read()
  stem, ext = os.path.splitext(os.path.basename(path))
  os.makedirs(folder, exist_ok=True)
  out = []
  for name, what, change in damages(path):
    if only and name not in only:
      continue
    target = os.path.join(folder, f"{stem}.{name}{ext}")
    broken = change(data)
    if broken == data:
      raise ValueError(f"{path}: damage {name!r} changed nothing")
    with open(target, "wb") as f:
      f.write(broken)
    out.append((target, what))
  return out


def mixed_collection(folder: str, slide_px: int = 2048, seed: int = 0
                     ) -> list[tuple[str, str]]:
  """A folder of good and damaged files for predict and its tests: a
  generated pyramidal slide with JPEG tiles, a PNG and a JPEG image, and
  every damaged copy of each (``damage``). Returns ``[(path, what)]``,
  the good files' ``what`` being ``"good"``."""
  from PIL import Image
  from tnet_tf.data import slides
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  good = [os.path.join(folder, n) for n in ("slide.tif", "photo.png",
                                             "photo.jpg")]
  slides.write(good[0], slides.SlideSpec(
      size=slide_px, min_level_px=256, lesion_px=64, compression="jpeg",
      seed=seed))
  pixels = rng.integers(0, 256, [120, 100, 3], np.uint8)
  Image.fromarray(pixels).save(good[1])
  Image.fromarray(pixels).save(good[2], quality=95)
  out = [(path, "good") for path in good]
  for path in good:
    out += damage(path, os.path.join(folder, "damaged"))
  return out
