"""Fake JPEGs shared by the raw-dataset fakes (noise with a bright object,
and a corrupt copy), and the tree description their `make_tree` returns."""
import io
import os
from typing import Iterable

import numpy as np
from PIL import Image


def jpeg(rng: np.random.Generator, size: tuple[int, int],
         box: tuple[float, float, float, float]) -> bytes:
  """A JPEG (PIL, quality 90) of dark noise with a bright object filling the
  pixel box (x, y, width, height), which is rounded and may stick out."""
  width, height = size
  x, y, w, h = (int(round(v)) for v in box)
  pixels = rng.integers(0, 100, size=(height, width, 3), dtype=np.uint8)
  pixels[max(y, 0):y + h, max(x, 0):x + w] += np.uint8(140)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="JPEG", quality=90)
  return out.getvalue()


def corrupt_jpeg(data: bytes) -> bytes:
  """A valid header whose body does not decode: the headers up to the scan
  are kept (PIL still reads the size), the scan is cut to a third and
  replaced by junk without 0xFF, so no marker ends it (TF's decoders fail,
  PIL's load reports it truncated)."""
  scan = data.index(b"\xff\xda")
  scan_data = scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big")
  junk = bytes(range(0x10, 0xF0)) * 2
  return data[:scan_data] + junk[:(len(data) - scan_data) // 3]


def write(path: str, data: bytes) -> None:
  """Writes `data` to `path`, making its folder."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def new_tree(manual_dir: str, splits: Iterable[str]) -> dict:
  """A fake tree's description before any image: {"manual_dir",
  "splits": {split: {file_name: example}}, "corrupt_file": file name or
  None, "file_bytes": {file_name: bytes}}."""
  return {"manual_dir": manual_dir, "splits": {split: {} for split in splits},
          "corrupt_file": None, "file_bytes": {}}


def add_jpeg(tree: dict, split: str, file_name: str, example: dict,
             rng: np.random.Generator, box: tuple[float, float, float, float],
             corrupt: bool = False) -> bytes:
  """Makes the JPEG of `example` (of its "size", showing the pixel `box`),
  corrupt if asked, and records it in `tree` (see new_tree) as `file_name`
  of `split`; returns its bytes, for the caller to write."""
  data = jpeg(rng, example["size"], box)
  if corrupt:
    data = corrupt_jpeg(data)
    tree["corrupt_file"] = file_name
  tree["file_bytes"][file_name] = data
  tree["splits"][split][file_name] = example
  return data
