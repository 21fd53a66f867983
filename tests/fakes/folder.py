"""A user's image folder: class subdirectories, mixed sizes and formats."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from fakes import images

FORMATS = ("jpg", "png", "tif", "bmp")


def _image(rng, label: int, height: int, width: int) -> np.ndarray:
  """A class-coloured image (class 0 reddish, 1 greenish, 2 bluish)."""
  image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
  image[..., label % 3] += 150
  return image


def make_tree(root: str, classes=("cat", "dog"), per_class: int = 6,
              val: bool = True, corrupt: bool = True,
              sixteen_bit: bool = True) -> dict:
  """Writes ``root/train/<class>/`` (and ``root/val/<class>/``) images of
  mixed sizes and formats; returns the expected counts and file names."""
  rng = np.random.default_rng(0)
  expected = {"classes": sorted(classes), "train": 0, "validation": 0}
  splits = [("train", per_class)] + ([("val", 2)] if val else [])
  for split, count in splits:
    for label, name in enumerate(sorted(classes)):
      folder = os.path.join(root, split, name)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        ext = FORMATS[(i + label) % len(FORMATS)]
        height, width = int(rng.integers(40, 160)), int(rng.integers(40, 160))
        path = os.path.join(folder, f"{name}_{i:03d}.{ext}")
        Image.fromarray(_image(rng, label, height, width)).save(path)
        expected["train" if split == "train" else "validation"] += 1
  if sixteen_bit:  # a 16-bit grey TIFF, as from a microscope or a satellite
    path = os.path.join(root, "train", sorted(classes)[0], "deep.tif")
    Image.fromarray(
        rng.integers(0, 65535, (70, 90)).astype(np.uint16)).save(path)
    expected["train"] += 1
    expected["sixteen_bit"] = path
  with open(os.path.join(root, "train", "README.txt"), "w") as fh:
    fh.write("not an image folder\n")  # ignored: not a directory of images
  with open(os.path.join(root, "train", sorted(classes)[-1], "notes.txt"),
            "w") as fh:
    fh.write("ignored: not an image\n")
  if corrupt:
    name = sorted(classes)[0]
    good = os.path.join(root, "train", name, f"{name}_000.jpg")
    with open(good, "rb") as fh:
      data = fh.read()
    # a valid header with a garbled body: passes the scan, fails to decode
    bad = os.path.join(root, "train", name, "truncated.jpg")
    images.write(bad, images.corrupt_jpeg(data))
    # not an image at all: fails the scan
    junk = os.path.join(root, "train", name, "junk.png")
    with open(junk, "wb") as fh:
      fh.write(b"this is not a PNG file")
    expected.update(truncated=bad, junk=junk)
    expected["train"] += 1  # the truncated file passes the scan
  return expected


def make_slide_tree(root: str, size: int = 2048, train: int = 4,
                    val: int = 2, lesion_px: int = 256) -> dict:
  """``root/{train,val}/{disc,ring}/<i>.tif``: generated pyramidal slides
  (``tnet_tf.data.slides``) whose lesions are discs or rings; returns
  ``{split: [(path, label)]}``."""
  from tnet_tf.data import slides
  out, seed = {}, 0
  for split, count in (("train", train), ("val", val)):
    out[split] = []
    for label, name in enumerate(slides.CLASSES):
      folder = os.path.join(root, split, name)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        path = os.path.join(folder, f"{i}.tif")
        while True:  # a seed whose tissue has room for the lesions
          seed += 1
          try:
            slides.write(path, slides.SlideSpec(
                size=size, label=label, lesions=3, lesion_px=lesion_px,
                min_level_px=256, seed=seed))
            break
          except ValueError:
            continue
        out[split].append((path, label))
  return out
