"""A tiny fake NABirds manual dir in the real layout.

Real layout (nabirds.tar.gz): `nabirds/images.txt` (`<image_id UUID>
<4-digit class id>/<UUID without dashes>.jpg`), `image_class_labels.txt`,
`train_test_split.txt`, `bounding_boxes.txt` (`<image_id> <x> <y> <width>
<height>`, integers), `sizes.txt` (`<image_id> <width> <height>`),
`classes.txt` (every taxonomy node), `hierarchy.txt` (`<child> <parent>`),
`photographers.txt`, `parts/` and `images/<class>/<file>.jpg`.

The leaf ids and names are real NABirds visual categories; the inner nodes
of the taxonomy (22, 100-102, 200) are made up for the fake.
"""
import os
import uuid

import numpy as np

from fakes import cub
from fakes import images

FOLDER = "nabirds"
# class id: (name, parent id); 0 is the root.
TAXONOMY = {
    0: ("Birds", None),
    22: ("Perching Birds", 0),
    100: ("Finches, Euphonias, and Allies", 22),
    101: ("Thrushes and Allies", 22),
    102: ("Jays, Magpies, Crows, and Ravens", 22),
    200: ("American Goldfinch", 100),
    753: ("American Robin", 101),
    794: ("American Goldfinch (Breeding male)", 200),
    950: ("Blue Jay", 102),
    1001: ("American Goldfinch (Female/Nonbreeding male)", 200),
}
# The leaves; label i is the i-th (ascending class ids).
VISUAL_CATEGORIES = (753, 794, 950, 1001)
# split, class id, (width, height), box x y w h in pixels, and the
# hand-computed normalised (ymin, xmin, ymax, xmax), clipped to [0, 1].
IMAGES = (
    ("train", 753, (120, 90), (30, 45, 60, 45), (0.5, 0.25, 1.0, 0.75)),
    ("train", 753, (60, 100), (15, 10, 30, 80), (0.1, 0.25, 0.9, 0.75)),
    ("train", 794, (96, 64), (0, 16, 96, 32), (0.25, 0.0, 0.75, 1.0)),
    ("train", 950, (80, 80), (20, 20, 40, 40), (0.25, 0.25, 0.75, 0.75)),
    ("train", 1001, (50, 100), (10, 25, 50, 100), (0.25, 0.2, 1.0, 1.0)),
    ("test", 753, (100, 40), (25, 10, 50, 20), (0.25, 0.25, 0.75, 0.75)),
    ("test", 794, (72, 48), (9, 6, 54, 36), (0.125, 0.125, 0.875, 0.875)),
    ("test", 950, (64, 112), (16, 28, 32, 56), (0.25, 0.25, 0.75, 0.75)),
    ("test", 1001, (110, 70), (11, 7, 44, 28), (0.1, 0.1, 0.5, 0.5)),
)
CORRUPT_INDEX = 3  # The train Blue Jay.
PARTS = ("bill", "crown", "nape", "left eye", "right eye", "belly", "breast",
         "back", "tail", "left wing", "right wing")


def make_tree(root: str, corrupt: bool = True, nested: bool = True) -> dict:
  """Writes a fake NABirds under `root` (the manual dir).

  Args:
    root: the manual dir.
    corrupt: whether the train Blue Jay gets a valid header and a garbled
      body.
    nested: files under `root/nabirds/` as the archive extracts, else
      directly in `root`.

  Returns:
    {"manual_dir": root, "splits": {split: {file_name: example}},
     "corrupt_file": file name or None, "file_bytes": {file_name: bytes},
     "parents": {child class id: parent class id}} where file names are
    relative to the manual dir and an example is {"label": index in
    VISUAL_CATEGORIES, "class_name": classes.txt name, "bbox": (ymin, xmin,
    ymax, xmax), "size": (width, height)}.
  """
  rng = np.random.default_rng(2015)
  data_dir = os.path.join(root, FOLDER) if nested else root
  prefix = f"{FOLDER}/" if nested else ""
  tree = images.new_tree(root, ("train", "test"))
  rows = []  # (image id, split, class id, size, box, relative path)
  for index, (split, class_id, size, box, bbox) in enumerate(IMAGES):
    image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-nabirds/{index}"))
    relative = f"{class_id:04d}/{image_id.replace('-', '')}.jpg"
    example = {"label": VISUAL_CATEGORIES.index(class_id),
               "class_name": TAXONOMY[class_id][0], "bbox": bbox,
               "size": size}
    data = images.add_jpeg(tree, split, f"{prefix}images/{relative}", example,
                           rng, box, corrupt and index == CORRUPT_INDEX)
    images.write(os.path.join(data_dir, "images", relative), data)
    rows.append((image_id, split, class_id, size, box, relative))

  rows.sort()  # The real per-image files are sorted by image id.
  parents = {child: parent for child, (_, parent) in TAXONOMY.items()
             if parent is not None}
  tables = {
      "images.txt": [(r[0], r[5]) for r in rows],
      "image_class_labels.txt": [(r[0], r[2]) for r in rows],
      "train_test_split.txt": [(r[0], int(r[1] == "train")) for r in rows],
      "bounding_boxes.txt": [(r[0], *r[4]) for r in rows],
      "sizes.txt": [(r[0], *r[3]) for r in rows],
      "photographers.txt": [(r[0], "Fake Photographer") for r in rows],
      "classes.txt": [(i, name) for i, (name, _) in sorted(TAXONOMY.items())],
      "hierarchy.txt": sorted(parents.items()),
      "parts/parts.txt": list(enumerate(PARTS)),
      "parts/part_locs.txt": [(r[0], part, 0, 0, 0) for r in rows
                              for part in range(len(PARTS))],
  }
  os.makedirs(os.path.join(data_dir, "parts"), exist_ok=True)
  for name, table in tables.items():
    cub.write_lines(os.path.join(data_dir, name), table)
  return tree | {"parents": parents}
