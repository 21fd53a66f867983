"""A tiny fake fMoW-rgb manual dir in the release's real layout.

train/ and val/ hold `<category>/<category>_<id>/<category>_<id>_<n>_rgb.jpg`
with a `.json` of the same name; test/ holds `<seq>/<seq>_<n>_rgb.jpg` whose
labels sit in `test_gt/<category>/<category>_<id>/..._rgb.json`, joined by
`test_gt_mapping.json` (a list of {"input": test_gt folder, "output": test
folder}). Ground-truth JSONs list an ID -1 box first, as the released ones do.
"""
import json
import os

import numpy as np

from fakes import images

# Label indices in data_pipelines.fmow.CATEGORIES (alphabetical).
LABELS = {"airport": 0, "multi-unit_residential": 30, "zoo": 61}
CORRUPT_FILE = "train/zoo/zoo_1/zoo_1_1_rgb.jpg"
# Its box is only 2 px wide: kept by `full`, not croppable by `crop`.
TINY_BOX_FILE = ("val/multi-unit_residential/multi-unit_residential_4/"
                 "multi-unit_residential_4_0_rgb.jpg")

# (file name, category, (width, height), object box [x, y, w, h]).
_LABELLED = (
    ("train/airport/airport_0/airport_0_0_rgb.jpg", "airport", (120, 80),
     (30, 20, 48, 30)),
    ("train/airport/airport_0/airport_0_1_rgb.jpg", "airport", (100, 60),
     (-4, 10, 50, 40)),  # Sticks out on the left: clipped.
    ("train/multi-unit_residential/multi-unit_residential_3/"
     "multi-unit_residential_3_0_rgb.jpg", "multi-unit_residential", (64, 96),
     (8, 8, 4, 5)),
    ("train/zoo/zoo_1/zoo_1_0_rgb.jpg", "zoo", (90, 110), (10, 10, 70, 90)),
    (CORRUPT_FILE, "zoo", (70, 50), (5, 5, 20, 20)),
    ("val/airport/airport_5/airport_5_0_rgb.jpg", "airport", (48, 40),
     (12, 8, 24, 20)),
    ("val/zoo/zoo_2/zoo_2_0_rgb.jpg", "zoo", (80, 44), (20, 4, 40, 30)),
    (TINY_BOX_FILE, "multi-unit_residential", (56, 72), (10, 12, 2, 30)),
)
# (test image, its ground-truth JSON, category, (width, height), box).
_TEST = (
    ("test/0000001/0000001_0_rgb.jpg",
     "test_gt/multi-unit_residential/multi-unit_residential_7/"
     "multi-unit_residential_7_0_rgb.json", "multi-unit_residential",
     (104, 64), (40, 20, 30, 20)),
    ("test/0000001/0000001_1_rgb.jpg",
     "test_gt/multi-unit_residential/multi-unit_residential_7/"
     "multi-unit_residential_7_1_rgb.json", "multi-unit_residential",
     (96, 58), (38, 18, 30, 20)),
    ("test/0000002/0000002_0_rgb.jpg",
     "test_gt/airport/airport_9/airport_9_0_rgb.json", "airport", (40, 100),
     (5, 30, 30, 50)),
)
_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def _metadata(file_name: str, size: tuple[int, int], boxes: list) -> dict:
  """The fields of a real `_rgb.json` that matter, plus a few others."""
  width, height = size
  return {
      "img_filename": os.path.basename(file_name), "img_width": width,
      "img_height": height, "gsd": 0.5, "utm": "31T", "country_code": "FRA",
      "cloud_cover": 0, "timestamp": "2016-05-03T10:59:37Z",
      "scan_direction": "Forward", "bounding_boxes": boxes,
  }


def _bbox(box, size) -> tuple[float, float, float, float]:
  """(ymin, xmin, ymax, xmax) of a pixel [x, y, w, h], clipped to [0, 1]."""
  (x, y, w, h), (width, height) = box, size
  clip = lambda v: min(max(v, 0.0), 1.0)
  return (clip(y / height), clip(x / width), clip((y + h) / height),
          clip((x + w) / width))


def _write(root: str, file_name: str, data) -> None:
  """Writes image bytes, or anything else as JSON."""
  path = os.path.join(root, *file_name.split("/"))
  if isinstance(data, bytes):
    images.write(path, data)
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(data, f, indent=1)


def make_tree(root: str, corrupt: bool = True) -> dict:
  """Writes the fake fMoW-rgb release into `root` (the manual dir).

  Returns:
    {"manual_dir": root, "splits": {split: {file_name: example}},
     "corrupt_file": file name or None, "tiny_box_file": file name,
     "file_bytes": {file_name: bytes}}, splits being train, validation and
    test, an example {"label", "class_name", "bbox": normalised (ymin, xmin,
    ymax, xmax), "size": (width, height), "box": pixel [x, y, w, h]}, and
    file names relative to `root` as the `full` config stores them.
  """
  rng = np.random.default_rng(2018)
  tree = images.new_tree(root, _SPLITS.values())

  def add_image(file_name, category, size, box):
    example = {"label": LABELS[category], "class_name": category,
               "bbox": _bbox(box, size), "size": size, "box": box}
    _write(root, file_name, images.add_jpeg(
        tree, _SPLITS[file_name.split("/")[0]], file_name, example, rng, box,
        corrupt and file_name == CORRUPT_FILE))

  for index, (file_name, category, size, box) in enumerate(_LABELLED):
    add_image(file_name, category, size, box)
    boxes = [{"box": list(box), "category": category, "ID": 100 + index,
              "visible": "True"}]
    if file_name.startswith("train/airport/"):  # As in the ground truth.
      boxes.insert(0, {"box": [0, 0, *size], "category": category, "ID": -1,
                       "visible": "True"})
    elif file_name.startswith("val/airport/"):  # Another object first.
      boxes.insert(0, {"box": [0, 0, 10, 10], "category": "false_detection",
                       "ID": 7, "visible": "True"})
    elif file_name.startswith("val/zoo/"):  # A lone box may be no list.
      boxes = boxes[0]
    _write(root, file_name[:-len(".jpg")] + ".json",
           _metadata(file_name, size, boxes))
  # The other rendering of a train image, which the builder ignores.
  msrgb = "train/airport/airport_0/airport_0_0_msrgb.jpg"
  _write(root, msrgb, images.jpeg(rng, (60, 40), (10, 10, 20, 10)))
  _write(root, msrgb[:-len(".jpg")] + ".json",
         _metadata(msrgb, (60, 40), [{"box": [10, 10, 20, 10],
                                      "category": "airport", "ID": 100}]))

  mapping = {}
  for index, (file_name, gt_name, category, size, box) in enumerate(_TEST):
    add_image(file_name, category, size, box)
    # Competitors' test JSONs: no categories and noisy boxes.
    noisy = [box[0] + 1, box[1] + 1, box[2], box[3]]
    _write(root, file_name[:-len(".jpg")] + ".json",
           _metadata(file_name, size, [{"box": noisy, "ID": 200 + index}]))
    _write(root, gt_name, _metadata(gt_name, size, [
        {"box": [0, 0, *size], "category": category, "ID": -1},
        {"box": list(box), "category": category, "ID": 200 + index}]))
    mapping[os.path.dirname(gt_name)] = os.path.dirname(file_name)
  _write(root, "test_gt_mapping.json", [
      {"input": gt, "output": test} for gt, test in sorted(mapping.items())])
  return tree | {"tiny_box_file": TINY_BOX_FILE}
