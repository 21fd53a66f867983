"""fMoW-rgb (Christie et al., CVPR 2018) as the TFDS dataset `fmow_rgb`.

Reads the raw release from the manual dir; never downloads. Two configs:
`full` keeps every temporal view as stored, with its object's box; `crop` is
the paper's "EN-B0 on bbox crops" input: the box plus the fMoW baseline's
size-dependent context margin, re-encoded as JPEG. Layout facts come from
github.com/fMoW/dataset (README), fMoW/baseline (dataFunctions.py) and the
TNet authors' Tpap/TNet (fMoW/crop_fMoW.py, fMoW/match_test_gt.py).
"""
import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Iterator, Sequence

from absl import logging
from PIL import Image
import tensorflow_datasets as tfds

# The 62 fMoW categories, alphabetical (the order of the fMoW/dataset
# README). The baseline's extra `false_detection` class is not one of them.
# The TNet authors' code moves impoverished_settlement from 25 to 42: remap
# labels before loading their released weights.
CATEGORIES: list[str] = [
    "airport", "airport_hangar", "airport_terminal", "amusement_park",
    "aquaculture", "archaeological_site", "barn", "border_checkpoint",
    "burial_site", "car_dealership", "construction_site", "crop_field", "dam",
    "debris_or_rubble", "educational_institution", "electric_substation",
    "factory_or_powerplant", "fire_station", "flooded_road", "fountain",
    "gas_station", "golf_course", "ground_transportation_station", "helipad",
    "hospital", "impoverished_settlement", "interchange", "lake_or_pond",
    "lighthouse", "military_facility", "multi-unit_residential",
    "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port",
    "prison", "race_track", "railway_bridge", "recreational_facility",
    "road_bridge", "runway", "shipyard", "shopping_mall",
    "single-unit_residential", "smokestack", "solar_farm", "space_facility",
    "stadium", "storage_tank", "surface_mine", "swimming_pool", "toll_booth",
    "tower", "tunnel_opening", "waste_disposal", "water_treatment_facility",
    "wind_farm", "zoo",
]

_IMAGE_SUFFIX = "_rgb.jpg"  # `_msrgb.jpg` files are the other rendering
_TEST_GT_MAPPING = "test_gt_mapping.json"
_FALSE_DETECTION = "false_detection"
_WHOLE_IMAGE = tfds.features.BBox(ymin=0.0, xmin=0.0, ymax=1.0, xmax=1.0)
# The largest fMoW image is 16288 x 16291 px; PIL refuses 2x its default.
_MAX_IMAGE_PIXELS = 16288 * 16291
_CROP_JPEG_QUALITY = 95
# fMoW baseline context: (box side / image side at least, total margin as a
# fraction of the box side); half the margin goes on each side.
_CONTEXT_MARGINS = ((0.5, 0.15), (0.4, 0.2), (0.3, 0.3), (0.2, 0.5),
                    (0.1, 1.0), (0.0, 2.0))
_MIN_CROP_SIDE = 3  # the baseline drops boxes 2 px wide or high
_PIL_ERRORS = (OSError, SyntaxError, ValueError,
               Image.DecompressionBombError)

_LAYOUT = """\
  train/<category>/<category>_<id>/<category>_<id>_<n>_rgb.jpg and .json
  val/<category>/<category>_<id>/<category>_<id>_<n>_rgb.jpg and .json
  test/<seq>/<seq>_<n>_rgb.jpg                       (optional, with:)
  test_gt/<category>/<category>_<id>/<category>_<id>_<n>_rgb.json
  test_gt_mapping.json"""


@dataclasses.dataclass(frozen=True)
class _Source:
  """One image to convert; `metadata_path` holds its label's box."""
  image_path: str
  metadata_path: str
  file_name: str
  category: str


def _read_json(path: str, expected: type[dict] | type[list]) -> dict | list:
  """Parses a JSON file; ValueError names the file and line."""
  with open(path) as f:
    try:
      value = json.load(f)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path}, line {error.lineno}: malformed JSON "
                       f"({error.msg})") from error
  if not isinstance(value, expected):
    kind = "an object" if expected is dict else "a list"
    raise ValueError(f"{path}, line 1: expected {kind}")
  return value


def object_box(metadata: dict, category: str,
               path: str) -> tuple[float, float, float, float] | None:
  """[x, y, w, h] of the first box of `category`, or None if none.

  Boxes with ID -1 are skipped: the released ground truth lists one per
  image first (as the TNet authors' code does, which skips them too).
  """
  boxes = metadata.get("bounding_boxes")
  if boxes is None:
    raise ValueError(f"{path}: metadata has no 'bounding_boxes'")
  for entry in [boxes] if isinstance(boxes, dict) else boxes:
    if not isinstance(entry, dict):
      raise ValueError(f"{path}: a bounding box is {entry!r}, not an object")
    if entry.get("category") != category or entry.get("ID") == -1:
      continue
    box = entry.get("box")
    if (not isinstance(box, list) or len(box) != 4
        or not all(isinstance(v, (int, float)) for v in box)
        or box[2] < 0 or box[3] < 0):
      raise ValueError(f"{path}: box {box!r} is not [x, y, width, height]")
    return tuple(box)
  return None


def normalized_box(box: Sequence[float], width: float,
                   height: float) -> tfds.features.BBox:
  """[x, y, w, h] in pixels -> BBox in [0, 1] (clipped to the image)."""
  x, y, w, h = box
  clip = lambda v: min(max(float(v), 0.0), 1.0)
  return tfds.features.BBox(ymin=clip(y / height), xmin=clip(x / width),
                            ymax=clip((y + h) / height),
                            xmax=clip((x + w) / width))


def _context_margin(ratio: float) -> float:
  return next(margin for lowest, margin in _CONTEXT_MARGINS if ratio >= lowest)


def context_box(box: Sequence[float], width: int,
                height: int) -> tuple[int, int, int, int] | None:
  """The baseline's crop (left, top, right, bottom) around [x, y, w, h].

  Each side gains int(side * margin / 2) px, margin growing as the box
  shrinks relative to the image (0.15 above half the image ... 2 below a
  tenth), clipped to the image. Width ratios use the image width as in
  Tpap/TNet crop_fMoW.py (fMoW/baseline divides by the height by mistake).
  None for boxes 2 px or thinner and for crops outside the image.
  """
  x, y, w, h = box
  if w < _MIN_CROP_SIDE or h < _MIN_CROP_SIDE:
    return None
  dx = int(w * _context_margin(w / width) / 2)
  dy = int(h * _context_margin(h / height) / 2)
  left, top = max(int(x - dx), 0), max(int(y - dy), 0)
  right, bottom = min(int(x + w + dx), width), min(int(y + h + dy), height)
  if left >= right or top >= bottom:
    return None
  return left, top, right, bottom


def _missing(path: str, what: str) -> FileNotFoundError:
  return FileNotFoundError(
      f"{path} not found ({what}). The fMoW-rgb manual dir must contain:\n"
      f"{_LAYOUT}")


_CATEGORY_SET = frozenset(CATEGORIES)


def _check_category(category: str, where: str) -> None:
  if category not in _CATEGORY_SET:
    raise ValueError(f"{where}: {category!r} is not one of the 62 fMoW "
                     "categories (fmow.CATEGORIES)")


def _sequence_sources(root: str, image_dir: str, category: str,
                      metadata_dir: str,
                      rename: tuple[str, str] = ("", "")) -> list[_Source]:
  """The `*_rgb.jpg` images of one sequence folder, each with its JSON.

  The JSON of `<old><rest>_rgb.jpg` is `<new><rest>_rgb.json` in
  `metadata_dir`, (old, new) = `rename`: test/ names files after the
  sequence, test_gt/ after the category instance.
  """
  old, new = rename
  sources = []
  for name in sorted(os.listdir(image_dir)):
    if not name.endswith(_IMAGE_SUFFIX):
      continue
    json_name = new + name[len(old):-len(".jpg")] + ".json"
    metadata_path = os.path.join(metadata_dir, json_name)
    if not os.path.isfile(metadata_path):
      raise _missing(metadata_path, f"the metadata of {name}")
    image_path = os.path.join(image_dir, name)
    file_name = os.path.relpath(image_path, root).replace(os.sep, "/")
    sources.append(_Source(image_path, metadata_path, file_name, category))
  return sources


def _labelled_sources(root: str, folder: str) -> list[_Source]:
  """train/ or val/: <category>/<category>_<id>/<category>_<id>_<n>_rgb.*."""
  split_dir = os.path.join(root, folder)
  if not os.path.isdir(split_dir):
    raise _missing(split_dir, f"the {folder} images")
  sources = []
  for category in sorted(os.listdir(split_dir)):
    category_dir = os.path.join(split_dir, category)
    if not os.path.isdir(category_dir):
      continue
    if category == _FALSE_DETECTION:
      logging.warning("skipping %s: not one of the 62 categories",
                      category_dir)
      continue
    _check_category(category, category_dir)
    for sequence in sorted(os.listdir(category_dir)):
      sequence_dir = os.path.join(category_dir, sequence)
      if os.path.isdir(sequence_dir):
        sources.extend(
            _sequence_sources(root, sequence_dir, category, sequence_dir))
  return sources


def _test_sources(root: str) -> list[_Source] | None:
  """test/<seq>/ images labelled through test_gt_mapping.json, or None.

  Each mapping entry is {"input": "test_gt/<category>/<category>_<id>",
  "output": "test/<seq>"} (Tpap/TNet match_test_gt.py).
  """
  mapping_path = os.path.join(root, _TEST_GT_MAPPING)
  if not os.path.isfile(mapping_path):
    logging.warning(
        "no test split: %s not found. The test labels are in test_gt/ and "
        "test_gt_mapping.json from groundtruth.tar.bz2 of the fMoW-rgb "
        "release.", mapping_path)
    return None
  for folder in ("test", "test_gt"):
    if not os.path.isdir(os.path.join(root, folder)):
      raise _missing(os.path.join(root, folder),
                     f"{_TEST_GT_MAPPING} refers to it")
  entries = _read_json(mapping_path, list)
  sources = []
  for index, entry in enumerate(entries):
    try:
      gt_parts = entry["input"].split("/")
      test_parts = entry["output"].split("/")
    except (TypeError, KeyError, AttributeError) as error:
      raise ValueError(f"{mapping_path}: entry {index} is {entry!r}, not "
                       '{"input": ..., "output": ...}') from error
    if len(gt_parts) != 3 or len(test_parts) != 2:
      raise ValueError(f"{mapping_path}: entry {index} is {entry!r}, not "
                       '{"input": "test_gt/<category>/<category>_<id>", '
                       '"output": "test/<seq>"}')
    category = gt_parts[1]
    _check_category(category, f"{mapping_path}: entry {index}")
    gt_dir = os.path.join(root, *gt_parts)
    test_dir = os.path.join(root, *test_parts)
    for path in (gt_dir, test_dir):
      if not os.path.isdir(path):
        raise _missing(path, f"entry {index} of {_TEST_GT_MAPPING}")
    sources.extend(_sequence_sources(root, test_dir, category, gt_dir,
                                     rename=(test_parts[1], gt_parts[2])))
  return sorted(sources, key=lambda source: source.file_name)


def _image_size(metadata: dict, path: str) -> tuple[float, float]:
  try:
    width, height = float(metadata["img_width"]), float(metadata["img_height"])
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(f"{path}: metadata lacks a valid img_width and "
                     "img_height") from error
  if width <= 0 or height <= 0:
    raise ValueError(f"{path}: image size {width} x {height} is not positive")
  return width, height


class _UnreadableImage(Exception):
  """PIL could not read an image's header (or, when cropping, its body)."""


@contextlib.contextmanager
def _open_image(path: str) -> Iterator[Image.Image]:
  """Image.open (header only) turning PIL's errors into _UnreadableImage."""
  try:
    with Image.open(path) as image:
      yield image
  except _PIL_ERRORS as error:
    raise _UnreadableImage(str(error)) from error


def _full_features(source: _Source, metadata: dict,
                   box: Sequence[float] | None) -> dict:
  """The file as stored and its box normalised by the metadata's size."""
  bbox = _WHOLE_IMAGE
  if box is not None:
    bbox = normalized_box(box, *_image_size(metadata, source.metadata_path))
  with _open_image(source.image_path):
    pass  # A readable header suffices; bodies are checked when decoded.
  return {"image": source.image_path, "bbox": bbox}


def _crop_features(source: _Source, metadata: dict,
                   box: Sequence[float] | None) -> dict | None:
  """The context crop, decoded and re-encoded; None without a usable box."""
  del metadata  # The decoded size is the truth for cropping.
  with _open_image(source.image_path) as image:
    region = None if box is None else context_box(box, *image.size)
    if region is None:
      return None
    crop = image.crop(region)  # Decodes the whole image.
  if crop.mode != "RGB":
    crop = crop.convert("RGB")
  out = io.BytesIO()
  crop.save(out, format="JPEG", quality=_CROP_JPEG_QUALITY)
  return {"image": out.getvalue(), "bbox": _WHOLE_IMAGE}


@dataclasses.dataclass(eq=False)
class FmowRgbConfig(tfds.core.BuilderConfig):
  """`crop`: store the box crop (decoded and re-encoded at build time)."""
  crop: bool = False


class FmowRgb(tfds.core.GeneratorBasedBuilder):
  """fMoW-rgb: 62 categories of satellite images, one example per image."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      FmowRgbConfig(
          name="full",
          description="Every temporal view as stored; bbox = the object."),
      FmowRgbConfig(
          name="crop", crop=True,
          description="The object's box with the fMoW baseline's context "
          "margin, re-encoded as JPEG (quality 95); bbox = whole image."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download fMoW-rgb (JPEG, ~200 GB) from
s3://spacenet-dataset/Hosted-Datasets/fmow/fmow-rgb/ with the AWS CLI (see
https://github.com/fMoW/dataset) and extract groundtruth.tar.bz2 from the same
folder next to it, so that the manual dir contains:
{_LAYOUT}
`_msrgb` files and seq/ are ignored. Without test_gt_mapping.json no test split
is built.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=CATEGORIES),
            "bbox": tfds.features.BBoxFeature(),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/fMoW/dataset",
        citation="""\
@inproceedings{fmow2018,
  title={Functional Map of the World},
  author={Christie, Gordon and Fendley, Neil and Wilson, James and
          Mukherjee, Ryan},
  booktitle={CVPR},
  year={2018}
}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      root = os.fspath(dl_manager.manual_dir)
    except AssertionError as error:  # TFDS's "does not exist or is empty".
      raise FileNotFoundError(str(error)) from error
    sources = {"train": _labelled_sources(root, "train"),
               "validation": _labelled_sources(root, "val")}
    test = _test_sources(root)
    if test is not None:
      sources["test"] = test
    return {split: self._generate_examples(split_sources, split)
            for split, split_sources in sources.items()}

  def _generate_examples(self, sources: list[_Source],
                         split: str) -> Iterator[tuple[str, dict]]:
    """Yields (file name, example); skips and counts unreadable images."""
    if (Image.MAX_IMAGE_PIXELS is not None
        and Image.MAX_IMAGE_PIXELS < _MAX_IMAGE_PIXELS):
      Image.MAX_IMAGE_PIXELS = _MAX_IMAGE_PIXELS
    crop = self.builder_config.crop
    features_of = _crop_features if crop else _full_features
    unreadable = without_box = 0
    for source in sources:
      metadata = _read_json(source.metadata_path, dict)
      box = object_box(metadata, source.category, source.metadata_path)
      try:
        features = features_of(source, metadata, box)
      except _UnreadableImage as error:
        logging.warning("skipping %s: unreadable image (%s)",
                        source.file_name, error)
        unreadable += 1
        continue
      without_box += box is None or features is None
      if features is not None:
        yield source.file_name, dict(features, label=source.category,
                                     file_name=source.file_name)
    log = logging.warning if unreadable else logging.info
    log("skipped %d unreadable images in %s", unreadable, split)
    if without_box and crop:
      logging.warning("skipped %d images in %s without a croppable box of "
                      "their category", without_box, split)
    elif without_box:
      logging.warning("%d images in %s have no box of their category: "
                      "bbox = whole image", without_box, split)
