"""TFDS builder `nabirds`: NABirds from a manually extracted archive.

NABirds (Van Horn et al., CVPR 2015): 48,562 photos of North American birds,
23,929 for training and 24,633 for testing, one box per bird. Images are
labelled with 555 "visual categories": the leaves of a 1,011-node taxonomy
(classes.txt names every node, hierarchy.txt links child to parent) that
split some species by sex, age or plumage.

Labels follow the loaders the NABirds results are reported with: the
distinct class ids of image_class_labels.txt in ascending order become
0..554. (The widely copied torchvision-style loader enumerates
`set(class_ids)`, which for these small integers is ascending order.) The
names are only known once classes.txt is read, so the ClassLabel is left
open in `_info` and named in `_split_generators`; TFDS stores the names in
`label.labels.txt` next to the records and restores them on load.
"""
import os
from typing import Iterable, Mapping

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from data_pipelines import birds_common

FOLDER = "nabirds"
HIERARCHY_FILE = "hierarchy.txt"
SIZES_FILE = "sizes.txt"
NUM_VISUAL_CATEGORIES = 555

_INSTRUCTIONS = f"""\
Request NABirds at https://dl.allaboutbirds.org/nabirds (Cornell Lab of
Ornithology; its terms of use apply), download nabirds.tar.gz and extract it
in the manual dir, giving <manual_dir>/{FOLDER}/ (pointing the manual dir at
{FOLDER}/ itself works too). Read are:
  {FOLDER}/images.txt              <image_id (UUID)> <class>/<file>.jpg
  {FOLDER}/image_class_labels.txt  <image_id> <class_id>
  {FOLDER}/train_test_split.txt    <image_id> <1 = train, 0 = test>
  {FOLDER}/bounding_boxes.txt      <image_id> <x> <y> <width> <height>
  {FOLDER}/sizes.txt               <image_id> <width> <height>
  {FOLDER}/classes.txt             <class_id> <name>  (1,011 taxonomy nodes)
  {FOLDER}/hierarchy.txt           <child class_id> <parent class_id>
  {FOLDER}/images/0295/<UUID without dashes>.jpg ... (555 class folders)
photographers.txt and parts/ are not needed."""

_CITATION = """\
@inproceedings{van2015building,
  title = {Building a bird recognition app and large scale dataset with
           citizen scientists: The fine print in fine-grained dataset
           collection},
  author = {Van Horn, Grant and Branson, Steve and Farrell, Ryan and
            Haber, Scott and Barry, Jessie and Ipeirotis, Panos and
            Perona, Pietro and Belongie, Serge},
  booktitle = {CVPR},
  year = {2015}
}"""


def parents(manual_dir: epath.PathLike) -> dict[int, int]:
  """hierarchy.txt as {child class id: parent class id}.

  The root of the taxonomy ("Birds", id 0) is nobody's child. `manual_dir` is
  the same dir the builder reads (holding nabirds/ or its contents).
  """
  root = birds_common.dataset_root(epath.Path(manual_dir), FOLDER)
  birds_common.check_files(root, (HIERARCHY_FILE,), _INSTRUCTIONS)
  return _read_parents(root)


def _read_parents(root: epath.Path) -> dict[int, int]:
  return birds_common.read_table(root / HIERARCHY_FILE, 1,
                                 lambda v: int(v[0]), key=int)


def _parse_size(values: list[str]) -> tuple[int, int]:
  width, height = int(values[0]), int(values[1])
  if width <= 0 or height <= 0:
    raise ValueError("width and height must be > 0")
  return width, height


def visual_categories(class_ids: Iterable[int],
                      parent_of: Mapping[int, int]) -> list[int]:
  """The distinct image class ids, ascending: label i is the i-th of them.

  On the real files they are exactly the 555 leaves of the hierarchy; a
  warning says so when they are not (another release, or a subset).
  """
  categories = sorted(set(class_ids))
  leaves = set(parent_of) - set(parent_of.values())
  not_leaves = set(categories) - leaves
  without_images = leaves - set(categories)
  if not_leaves or without_images:
    logging.warning(
        "NABirds: %d image class(es) are not leaves of %s (e.g. %s) and %d "
        "leaves have no image (e.g. %s); labels follow the image classes.",
        len(not_leaves), HIERARCHY_FILE, sorted(not_leaves)[:3],
        len(without_images), sorted(without_images)[:3])
  if len(categories) != NUM_VISUAL_CATEGORIES:
    logging.warning("NABirds: %d image classes, not the %d of the full "
                    "dataset.", len(categories), NUM_VISUAL_CATEGORIES)
  return categories


class Nabirds(tfds.core.GeneratorBasedBuilder):
  """NABirds with the official train/test split and bird boxes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Original JPEG bytes, 555 visual categories."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("NABirds: 48,562 photos of North American birds in 555 "
                     "visual categories, with one bounding box each."),
        # The label is named from classes.txt in _split_generators.
        features=birds_common.features(tfds.features.ClassLabel()),
        supervised_keys=("image", "label"),
        homepage="https://dl.allaboutbirds.org/nabirds",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual, root = birds_common.locate(
        dl_manager, FOLDER, (HIERARCHY_FILE, SIZES_FILE), _INSTRUCTIONS)
    records = birds_common.read_records(root)
    sizes = birds_common.read_table(root / SIZES_FILE, 2, _parse_size)
    birds_common.check_covers(root / SIZES_FILE, sizes,
                              (r.image_id for r in records))
    names = birds_common.read_class_names(root)
    birds_common.check_class_ids(root, records, names)
    categories = visual_categories((r.class_id for r in records),
                                   _read_parents(root))
    self.info.features["label"].names = _label_names(root, categories, names)
    labels = {class_id: i for i, class_id in enumerate(categories)}
    return {split: self._generate_examples(split_records, manual, root,
                                           labels, split, sizes)
            for split, split_records in
            birds_common.official_splits(records).items()}

  def _generate_examples(self, records, manual, root, labels, split, sizes):
    yield from birds_common.generate_examples(records, manual, root, labels,
                                              split, sizes)


def _label_names(root: epath.Path, categories: list[int],
                 names: Mapping[int, str]) -> list[str]:
  """classes.txt names of the categories; ClassLabel needs them distinct."""
  label_names = [names[class_id] for class_id in categories]
  seen = {}
  for class_id, name in zip(categories, label_names):
    if name in seen:
      raise ValueError(
          f"{os.fspath(root / birds_common.CLASSES_FILE)}: classes "
          f"{seen[name]} and {class_id} are both named {name!r}")
    seen[name] = class_id
  return label_names
