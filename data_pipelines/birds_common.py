"""Reading the metadata files shared by CUB-200-2011 and NABirds.

Both datasets ship the same family of space-separated text files, one line
per image or per class, next to an `images/` folder:

  images.txt              <image_id> <path under images/>
  image_class_labels.txt  <image_id> <class_id>
  train_test_split.txt    <image_id> <is_training_image: 1 or 0>
  bounding_boxes.txt      <image_id> <x> <y> <width> <height>  (pixels)
  classes.txt             <class_id> <class name, may contain spaces>

CUB numbers its images 1..11788, NABirds names them by UUID; ids stay
strings here. The builders differ only in how class ids become labels and
where image sizes come from, so example generation lives here too.
"""
import dataclasses
import math
import os
from typing import (Callable, Iterable, Iterator, Mapping, Optional,
                    Sequence, TypeVar)

from absl import logging
from etils import epath
from PIL import Image
import tensorflow_datasets as tfds

IMAGES_DIR = "images"
IMAGES_FILE = "images.txt"
LABELS_FILE = "image_class_labels.txt"
SPLIT_FILE = "train_test_split.txt"
BOXES_FILE = "bounding_boxes.txt"
CLASSES_FILE = "classes.txt"
COMMON_FILES = (IMAGES_FILE, LABELS_FILE, SPLIT_FILE, BOXES_FILE,
                CLASSES_FILE)

K = TypeVar("K")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  """One line of images.txt joined with the other per-image files."""
  image_id: str
  path: str  # Relative to images/, as written in images.txt.
  class_id: int
  is_train: bool
  box: tuple[float, float, float, float]  # x, y, width, height in pixels.


def features(label: tfds.features.ClassLabel) -> tfds.features.FeaturesDict:
  """The features of both bird builders (the interface of data_pipelines)."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(encoding_format="jpeg"),
      "label": label,
      "bbox": tfds.features.BBoxFeature(),
      "file_name": tfds.features.Text(),
  })


def locate(dl_manager: tfds.download.DownloadManager, folder: str,
           names: Sequence[str],
           instructions: str) -> tuple[epath.Path, epath.Path]:
  """(manual dir, dataset root) once the root holds the common files,
  `names` and images/.

  The root is `<manual dir>/<folder>` when the archive was extracted there,
  else the manual dir itself (users point it at either).

  Raises:
    FileNotFoundError: naming the missing dir or file, with `instructions`.
  """
  try:
    manual = dl_manager.manual_dir
  except AssertionError as e:  # TFDS's error for a missing or empty dir.
    raise FileNotFoundError(str(e)) from e
  root = dataset_root(manual, folder)
  check_files(root, COMMON_FILES + tuple(names) + (IMAGES_DIR,), instructions)
  return manual, root


def dataset_root(manual: epath.Path, folder: str) -> epath.Path:
  """`<manual>/<folder>` if that is a dir, else `manual`."""
  nested = manual / folder
  return nested if nested.is_dir() else manual


def check_files(root: epath.Path, names: Sequence[str],
                instructions: str) -> None:
  """Raises FileNotFoundError naming the first of `names` missing in root."""
  for name in names:
    path = root / name
    if not path.exists():
      raise FileNotFoundError(
          f"{os.fspath(path)} does not exist. The manual dir must contain:\n"
          f"{instructions}")


def read_table(path: epath.Path, num_values: int,
               parse: Callable[[list[str]], T],
               key: Callable[[str], K] = str) -> dict[K, T]:
  """Parses `<id> <value 1> ... <value num_values>` lines into {id: T}.

  The last value takes the rest of the line, so class names may contain
  spaces (and a line with too many numbers fails to parse). Blank lines are
  skipped.

  Raises:
    ValueError: naming the file and line of a short line, a duplicated id,
      or an id or values that `key` or `parse` reject with ValueError.
  """
  table = {}
  with path.open() as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split(None, num_values)
      if not fields:
        continue
      where = f"{os.fspath(path)}, line {line_number}"
      if len(fields) != num_values + 1:
        raise ValueError(f"{where}: expected an id and {num_values} "
                         f"value(s), got {line.strip()!r}")
      try:
        item_id = key(fields[0])
        value = parse([field.strip() for field in fields[1:]])
      except ValueError as e:
        raise ValueError(f"{where}: {e} in {line.strip()!r}") from e
      if item_id in table:
        raise ValueError(f"{where}: id {fields[0]} appears twice")
      table[item_id] = value
  return table


def check_covers(path: epath.Path, table: Mapping[str, object],
                 image_ids: Iterable[str]) -> None:
  """Raises ValueError naming `path` if it lacks a line for an image."""
  missing = [image_id for image_id in image_ids if image_id not in table]
  if missing:
    raise ValueError(
        f"{os.fspath(path)} has no line for {len(missing)} image(s) of "
        f"{IMAGES_FILE}, e.g. image id {missing[0]}")


def _parse_bool(values: list[str]) -> bool:
  if values[0] not in ("0", "1"):
    raise ValueError("is_training_image must be 0 or 1")
  return values[0] == "1"


def _parse_box(values: list[str]) -> tuple[float, float, float, float]:
  x, y, width, height = box = tuple(float(v) for v in values)
  if not all(math.isfinite(v) for v in box):
    raise ValueError("box values must be finite")
  if width < 0 or height < 0:
    raise ValueError("box width and height must be >= 0")
  return x, y, width, height


def read_class_names(root: epath.Path) -> dict[int, str]:
  """classes.txt as {class_id: name}."""
  return read_table(root / CLASSES_FILE, 1, lambda v: v[0], key=int)


def read_records(root: epath.Path) -> list[ImageRecord]:
  """Joins images.txt with the label, split and box files, in images.txt
  order.

  Raises:
    ValueError: a malformed line, or an image missing from one of the files.
  """
  paths = read_table(root / IMAGES_FILE, 1, lambda v: v[0])
  tables = {
      LABELS_FILE: read_table(root / LABELS_FILE, 1, lambda v: int(v[0])),
      SPLIT_FILE: read_table(root / SPLIT_FILE, 1, _parse_bool),
      BOXES_FILE: read_table(root / BOXES_FILE, 4, _parse_box),
  }
  for name, table in tables.items():
    check_covers(root / name, table, paths)
  return [
      ImageRecord(image_id=image_id, path=path,
                  class_id=tables[LABELS_FILE][image_id],
                  is_train=tables[SPLIT_FILE][image_id],
                  box=tables[BOXES_FILE][image_id])
      for image_id, path in paths.items()
  ]


def check_class_ids(root: epath.Path, records: Sequence[ImageRecord],
                    known: Mapping[int, object]) -> None:
  """Raises ValueError naming image_class_labels.txt for an unknown class."""
  for record in records:
    if record.class_id not in known:
      raise ValueError(
          f"{os.fspath(root / LABELS_FILE)}: image {record.image_id} has "
          f"class id {record.class_id}, which is not a known class")


def official_splits(
    records: Sequence[ImageRecord]) -> dict[str, list[ImageRecord]]:
  """{"train": ..., "test": ...} by train_test_split.txt."""
  return {split: [r for r in records if r.is_train == (split == "train")]
          for split in ("train", "test")}


def header_size(path: epath.Path) -> Optional[tuple[int, int]]:
  """(width, height) from the image header only; None if unreadable."""
  try:
    with Image.open(os.fspath(path)) as image:  # Lazy: reads the header.
      return image.size
  except (OSError, SyntaxError, ValueError):
    return None


def normalized_bbox(box: tuple[float, float, float, float], width: int,
                    height: int) -> tfds.features.BBox:
  """Pixel (x, y, w, h) → (ymin, xmin, ymax, xmax) in [0, 1], clipped."""
  x, y, w, h = box

  def clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)

  return tfds.features.BBox(ymin=clip(y / height), xmin=clip(x / width),
                            ymax=clip((y + h) / height),
                            xmax=clip((x + w) / width))


def generate_examples(
    records: Sequence[ImageRecord], manual: epath.Path, root: epath.Path,
    labels: Mapping[int, int], split: str,
    sizes: Optional[Mapping[str, tuple[int, int]]] = None,
) -> Iterator[tuple[str, dict]]:
  """Yields (file name, example) for `records`; keys are the file names.

  Args:
    records: the images of one split.
    manual: the manual dir; file names are relative to it.
    root: the folder holding the metadata files and images/.
    labels: class id → label index.
    split: split name, for the log line.
    sizes: image id → (width, height) for box normalisation; from the image
      header when None.

  Image bytes are stored as they are. A file whose header PIL cannot read is
  skipped with a warning; one line at the end counts them.
  """
  skipped = 0
  for record in records:
    path = root / IMAGES_DIR / record.path
    if not path.exists():
      raise FileNotFoundError(
          f"{os.fspath(path)} does not exist but is listed in "
          f"{os.fspath(root / IMAGES_FILE)} (image id {record.image_id})")
    size = header_size(path)
    if size is None:
      logging.warning("Skipping %s: its image header cannot be read.",
                      os.fspath(path))
      skipped += 1
      continue
    width, height = sizes[record.image_id] if sizes is not None else size
    file_name = os.fspath(path.relative_to(manual))
    yield file_name, {
        "image": path,
        "label": labels[record.class_id],
        "bbox": normalized_bbox(record.box, width, height),
        "file_name": file_name,
    }
  log = logging.warning if skipped else logging.info
  log("skipped %d unreadable images in %s", skipped, split)
