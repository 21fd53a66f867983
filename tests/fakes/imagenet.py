"""A tiny fake ILSVRC-2012 manual dir for TFDS's own `imagenet2012` builder.

Real layout: `ILSVRC2012_img_train.tar` holds one tar per synset
(`n01440764.tar`, ...), each holding `n01440764_<k>.JPEG`;
`ILSVRC2012_img_val.tar` holds flat `ILSVRC2012_val_<8 digits>.JPEG` whose
labels TFDS takes from its bundled `validation_labels.txt` (line i is the
i-th validation file in sorted order).
"""
import importlib.util
import io
import os
import tarfile

import numpy as np

from fakes import images

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"

# The first three synsets of TFDS's labels.txt; real ILSVRC-2012 file names.
TRAIN_FILES = {
    "n01440764": ("n01440764_10026.JPEG", "n01440764_10027.JPEG",
                  "n01440764_10029.JPEG"),
    "n01443537": ("n01443537_10007.JPEG", "n01443537_10014.JPEG"),
    "n01484850": ("n01484850_10016.JPEG", "n01484850_17294.JPEG"),
}
CORRUPT_FILE = "n01443537_10014.JPEG"
NUM_VALIDATION = 6
# Written out of sorted order: TFDS must sort the names to match its labels.
_VAL_TAR_ORDER = (3, 1, 6, 2, 5, 4)
WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


def _tfds_imagenet_file(name: str) -> str:
  """Path of a file bundled with TFDS's imagenet2012 (without importing it)."""
  spec = importlib.util.find_spec("tensorflow_datasets")
  root = list(spec.submodule_search_locations)[0]
  return os.path.join(root, "datasets", "imagenet2012", name)


def _read_lines(name: str) -> list[str]:
  with open(_tfds_imagenet_file(name)) as f:
    return f.read().split()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
  """An uncompressed tar of (name, bytes), with fixed metadata."""
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      info.mode = 0o644
      tar.addfile(info, io.BytesIO(data))
  return out.getvalue()


def _example(synset: str, synsets: list[str], size: tuple[int, int]) -> dict:
  return {"label": synsets.index(synset), "class_name": synset,
          "bbox": WHOLE_IMAGE, "size": size}


def make_tree(root: str, corrupt: bool = True) -> dict:
  """Writes the two ILSVRC-2012 tars into `root` (the manual dir).

  Returns:
    {"manual_dir": root, "splits": {split: {file_name: example}},
     "corrupt_file": name or None, "file_bytes": {file_name: bytes}} where an
    example is {"label": index in labels.txt, "class_name": synset,
    "bbox": the whole image (ImageNet records carry no box),
    "size": (width, height)}. File names are as TFDS stores them (no folder).
  """
  rng = np.random.default_rng(2012)
  synsets = _read_lines("labels.txt")
  val_names = [f"ILSVRC2012_val_{i:08d}.JPEG"
               for i in range(1, NUM_VALIDATION + 1)]
  val_synsets = _read_lines("validation_labels.txt")[:NUM_VALIDATION]
  files = [("train", name, synset)
           for synset, names in TRAIN_FILES.items() for name in names]
  files += [("validation", name, synset)
            for name, synset in zip(val_names, val_synsets)]

  tree = images.new_tree(root, ("train", "validation"))
  for index, (split, file_name, synset) in enumerate(files):
    height, width = 40 + 6 * index, 120 - 5 * index  # 40-112, 120-60 px
    middle = (width // 3, height // 4, width // 3, height // 4)
    images.add_jpeg(tree, split, file_name,
                    _example(synset, synsets, (width, height)), rng, middle,
                    corrupt and file_name == CORRUPT_FILE)
  file_bytes = tree["file_bytes"]

  synset_tars = [(f"{synset}.tar", _tar([(n, file_bytes[n]) for n in names]))
                 for synset, names in TRAIN_FILES.items()]
  val_members = [(val_names[i - 1], file_bytes[val_names[i - 1]])
                 for i in _VAL_TAR_ORDER]
  os.makedirs(root, exist_ok=True)
  for tar_name, members in ((TRAIN_TAR, synset_tars), (VAL_TAR, val_members)):
    with open(os.path.join(root, tar_name), "wb") as f:
      f.write(_tar(members))
  return tree
