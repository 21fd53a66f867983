"""The `nabirds` builder on a fake NABirds tree."""
import functools
import logging
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import nabirds
import fakes
from fakes import birds_checks
from fakes import nabirds as fake_nabirds

INSTRUCTIONS = "download nabirds.tar.gz"


_fake = functools.partial(birds_checks.fresh_tree, fake_nabirds)
_prepare_fails = functools.partial(birds_checks.prepare_fails, "nabirds")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  return fakes.make_and_prepare("nabirds", fake_nabirds,
                                tmp_path_factory.mktemp("nabirds"))


def test_examples_match_the_tree(prepared):
  birds_checks.check_examples(*prepared)


def test_corrupt_file_is_stored_unchanged(prepared):
  birds_checks.check_corrupt_file(*prepared)


def test_file_names_follow_the_real_layout(prepared):
  # nabirds/images/<4-digit class>/<images.txt UUID without dashes>.jpg
  tree, builder = prepared
  pattern = re.compile(r"nabirds/images/(\d{4})/([0-9a-f]{32})\.jpg")
  for file_name, example in fakes.records(builder, "test").items():
    match = pattern.fullmatch(file_name)
    assert match, file_name
    class_id = fake_nabirds.VISUAL_CATEGORIES[example["label"]]
    assert int(match.group(1)) == class_id


def test_labels_are_ascending_leaf_ids_named_from_classes_txt(prepared):
  tree, builder = prepared
  label = builder.info.features["label"]
  leaves = sorted(set(tree["parents"]) - set(tree["parents"].values()))
  assert leaves == [753, 794, 950, 1001]
  assert label.names == [fake_nabirds.TAXONOMY[leaf][0] for leaf in leaves]
  reloaded = tfds.builder("nabirds", data_dir=os.path.dirname(
      os.path.dirname(builder.data_dir)))
  assert reloaded.info.features["label"].names == label.names


def test_parents_chain_from_a_leaf_to_the_root(prepared):
  tree, _ = prepared
  parent_of = nabirds.parents(tree["manual_dir"])
  assert parent_of == tree["parents"]
  chain = [1001]
  while chain[-1] in parent_of:
    chain.append(parent_of[chain[-1]])
  assert chain == [1001, 200, 100, 22, 0]  # Female goldfinch ... Birds.


def test_boxes_are_normalised_by_sizes_txt(tmp_path):
  # sizes.txt says every image is twice its real size: boxes halve. Also the
  # manual dir is nabirds/ itself here.
  tree, _ = _fake(tmp_path, corrupt=False, nested=False)
  birds_checks.edit_lines(
      os.path.join(tree["manual_dir"], "sizes.txt"), lambda ls: [
          f"{i} {2 * int(w)} {2 * int(h)}" for i, w, h in map(str.split, ls)])
  builder = fakes.prepare("nabirds", tree["manual_dir"],
                          str(tmp_path / "data"))
  test_images = {f"images/{class_id:04d}": (size, box)
                 for split, class_id, size, box, _ in fake_nabirds.IMAGES
                 if split == "test"}  # One per class.
  stored = fakes.records(builder, "test")
  assert len(stored) == len(test_images)
  for file_name, example in stored.items():
    (width, height), (x, y, w, h) = test_images[os.path.dirname(file_name)]
    expected = np.clip([y / (2 * height), x / (2 * width),
                        (y + h) / (2 * height), (x + w) / (2 * width)], 0, 1)
    np.testing.assert_allclose(example["bbox"], expected, atol=1e-6)


def test_unreadable_header_is_skipped_and_counted(tmp_path, caplog):
  tree, _ = _fake(tmp_path, corrupt=False)
  birds_checks.check_skips_unreadable_header("nabirds", tree, tmp_path, caplog)


def test_visual_categories_warn_unless_exactly_the_leaves(caplog):
  parent_of = {1: 0, 2: 1, 3: 1, 4: 0}  # Leaves 2, 3 and 4.
  with caplog.at_level(logging.WARNING):
    assert nabirds.visual_categories([3, 2, 4, 3], parent_of) == [2, 3, 4]
  assert [r.getMessage() for r in caplog.records] == [
      "NABirds: 3 image classes, not the 555 of the full dataset."]
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert nabirds.visual_categories([1, 2, 3], parent_of) == [1, 2, 3]
  assert ("1 image class(es) are not leaves of hierarchy.txt (e.g. [1]) and "
          "1 leaves have no image (e.g. [4])") in caplog.text


@pytest.mark.parametrize("name", [
    "images.txt", "image_class_labels.txt", "train_test_split.txt",
    "bounding_boxes.txt", "classes.txt", "hierarchy.txt", "sizes.txt",
    "images"])
def test_missing_metadata_file_or_images_folder(tmp_path, name):
  tree, data_dir = _fake(tmp_path)
  birds_checks.check_missing("nabirds", tree, os.path.join(data_dir, name),
                             tmp_path, INSTRUCTIONS)


def test_empty_manual_dir(tmp_path):
  birds_checks.check_empty_manual_dir("nabirds", tmp_path, INSTRUCTIONS)


def test_parents_needs_hierarchy_txt(tmp_path):
  tree, data_dir = _fake(tmp_path)
  os.remove(os.path.join(data_dir, "hierarchy.txt"))
  with pytest.raises(FileNotFoundError, match="hierarchy.txt does not"):
    nabirds.parents(tree["manual_dir"])


def test_photographers_and_parts_are_not_needed(tmp_path):
  tree, data_dir = _fake(tmp_path, corrupt=False)
  os.remove(os.path.join(data_dir, "photographers.txt"))
  shutil.rmtree(os.path.join(data_dir, "parts"))
  builder = fakes.prepare("nabirds", tree["manual_dir"],
                          str(tmp_path / "data"))
  assert builder.info.splits["test"].num_examples == 4


@pytest.mark.parametrize("name, edit, match", [
    ("sizes.txt", lambda v: f"{v[0]} 0 40", "must be > 0"),
    ("sizes.txt", lambda v: f"{v[0]} 40", "expected an id and 2"),
    ("bounding_boxes.txt", lambda v: f"{v[0]} 1 2 3 4 5", "could not convert"),
    ("hierarchy.txt", lambda v: f"{v[0]} birds", "invalid literal"),
    ("classes.txt", lambda v: f"x{v[0]} Birds", "invalid literal"),
])
def test_malformed_metadata_names_file_and_line(tmp_path, name, edit, match):
  tree, data_dir = _fake(tmp_path)
  path = os.path.join(data_dir, name)
  birds_checks.edit_lines(path, lambda lines: [
      lines[0], edit(lines[1].split()), *lines[2:]])
  assert f"{path}, line 2" in str(_prepare_fails(tree, tmp_path, match))


def test_image_without_a_size_is_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  path = os.path.join(data_dir, "sizes.txt")
  birds_checks.edit_lines(path, lambda lines: lines[1:])
  _prepare_fails(tree, tmp_path, re.escape(f"{path} has no line for 1 image"))


def test_class_missing_from_classes_txt_is_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  birds_checks.edit_lines(
      os.path.join(data_dir, "classes.txt"), lambda lines: [
          line for line in lines if not line.startswith("950 ")])
  _prepare_fails(tree, tmp_path, "class id 950, which is not a known class")


def test_duplicate_leaf_names_are_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  birds_checks.edit_lines(
      os.path.join(data_dir, "classes.txt"), lambda lines: [
          "950 American Robin" if line.startswith("950 ") else line
          for line in lines])
  _prepare_fails(tree, tmp_path, "classes 753 and 950 are both named")
