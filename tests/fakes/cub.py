"""A tiny fake CUB-200-2011 manual dir in the real layout.

Real layout (CUB_200_2011.tgz): `CUB_200_2011/images.txt`
(`<image_id> <class folder>/<file>.jpg`, ids 1.. in path order),
`image_class_labels.txt`, `train_test_split.txt`, `bounding_boxes.txt`
(`<image_id> <x> <y> <width> <height>`, floats), `classes.txt` and
`images/<class folder>/<Species>_<4 digits>_<number>.jpg`. The file names
below are real CUB file names.

The text-file writer here is shared with the NABirds fake, whose metadata
files have the same format.
"""
import os
from typing import Iterable

import numpy as np

from fakes import images

FOLDER = "CUB_200_2011"
CLASSES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross",
           200: "200.Common_Yellowthroat"}
# split, class id, file, (width, height), box x y w h in pixels, and the
# hand-computed normalised (ymin, xmin, ymax, xmax), clipped to [0, 1].
IMAGES = (
    ("train", 1, "Black_Footed_Albatross_0046_18.jpg", (120, 80),
     (30.0, 20.0, 60.0, 40.0), (0.25, 0.25, 0.75, 0.75)),
    ("test", 1, "Black_Footed_Albatross_0001_796111.jpg", (64, 48),
     (8.0, 6.0, 40.0, 30.0), (0.125, 0.125, 0.75, 0.75)),
    ("train", 2, "Laysan_Albatross_0001_545.jpg", (100, 50),
     (10.5, 5.0, 100.0, 60.0), (0.1, 0.105, 1.0, 1.0)),
    ("test", 2, "Laysan_Albatross_0085_564.jpg", (40, 100),
     (0.0, 25.0, 40.0, 50.0), (0.25, 0.0, 0.75, 1.0)),
    ("train", 200, "Common_Yellowthroat_0003_190521.jpg", (80, 120),
     (20.0, 30.0, 40.0, 60.0), (0.25, 0.25, 0.75, 0.75)),
    ("test", 200, "Common_Yellowthroat_0055_190967.jpg", (90, 60),
     (45.0, 15.0, 45.0, 45.0), (0.25, 0.5, 1.0, 1.0)),
    ("train", 200, "Common_Yellowthroat_0010_190572.jpg", (50, 40),
     (5.0, 4.0, 20.0, 8.0), (0.1, 0.1, 0.3, 0.5)),
)
CORRUPT_FILE = "Common_Yellowthroat_0003_190521.jpg"


def write_lines(path: str, rows: Iterable[Iterable[object]]) -> None:
  """Writes space-separated rows, one per line, as the datasets do."""
  with open(path, "w") as f:
    f.writelines(" ".join(str(v) for v in row) + "\n" for row in rows)


def make_tree(root: str, corrupt: bool = True, nested: bool = True) -> dict:
  """Writes a fake CUB-200-2011 under `root` (the manual dir).

  Args:
    root: the manual dir.
    corrupt: whether CORRUPT_FILE (train) gets a valid header and a garbled
      body.
    nested: files under `root/CUB_200_2011/` as the archive extracts, else
      directly in `root`.

  Returns:
    {"manual_dir": root, "splits": {split: {file_name: example}},
     "corrupt_file": file name or None, "file_bytes": {file_name: bytes}}
    where file names are relative to the manual dir and an example is
    {"label": class id - 1, "class_name": class folder, "bbox": (ymin, xmin,
    ymax, xmax), "size": (width, height)}.
  """
  rng = np.random.default_rng(2011)
  data_dir = os.path.join(root, FOLDER) if nested else root
  prefix = f"{FOLDER}/" if nested else ""
  # Real image ids number the images in path order.
  rows = sorted(IMAGES, key=lambda row: (CLASSES[row[1]], row[2]))
  tree = images.new_tree(root, ("train", "test"))
  for split, class_id, name, size, box, bbox in rows:
    relative = f"{CLASSES[class_id]}/{name}"
    example = {"label": class_id - 1, "class_name": CLASSES[class_id],
               "bbox": bbox, "size": size}
    data = images.add_jpeg(tree, split, f"{prefix}images/{relative}", example,
                           rng, box, corrupt and name == CORRUPT_FILE)
    images.write(os.path.join(data_dir, "images", relative), data)

  numbered = list(enumerate(rows, start=1))
  tables = {
      "images.txt": [(i, f"{CLASSES[r[1]]}/{r[2]}") for i, r in numbered],
      "image_class_labels.txt": [(i, r[1]) for i, r in numbered],
      "train_test_split.txt": [(i, int(r[0] == "train")) for i, r in numbered],
      "bounding_boxes.txt": [(i, *r[4]) for i, r in numbered],
      "classes.txt": sorted(CLASSES.items()),
  }
  for name, table in tables.items():
    write_lines(os.path.join(data_dir, name), table)
  return tree
