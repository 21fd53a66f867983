"""The `cub2011` builder on a fake CUB-200-2011 tree."""
import functools
import os
import re

import pytest
import tensorflow_datasets as tfds

from data_pipelines import cub
import fakes
from fakes import birds_checks
from fakes import cub as fake_cub

INSTRUCTIONS = "Download CUB_200_2011.tgz"


_fake = functools.partial(birds_checks.fresh_tree, fake_cub)
_prepare_fails = functools.partial(birds_checks.prepare_fails, "cub2011")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  return fakes.make_and_prepare("cub2011", fake_cub,
                                tmp_path_factory.mktemp("cub"))


def test_examples_match_the_tree(prepared):
  birds_checks.check_examples(*prepared)


def test_corrupt_file_is_stored_unchanged(prepared):
  birds_checks.check_corrupt_file(*prepared)


def test_file_names_are_relative_to_the_manual_dir(prepared):
  tree, builder = prepared
  file_name = ("CUB_200_2011/images/002.Laysan_Albatross/"
               "Laysan_Albatross_0001_545.jpg")
  assert file_name in fakes.records(builder, "train")
  assert os.path.exists(os.path.join(tree["manual_dir"], file_name))


def test_class_names_are_the_200_cub_folders(prepared):
  _, builder = prepared
  label = builder.info.features["label"]
  assert label.num_classes == 200
  assert label.names[0] == "001.Black_footed_Albatross"
  assert label.names[140] == "141.Artic_Tern"  # The dataset's spelling.
  assert label.names[199] == "200.Common_Yellowthroat"
  for class_id, name in enumerate(label.names, start=1):
    assert name.startswith(f"{class_id:03d}.")
  reloaded = tfds.builder("cub2011", data_dir=os.path.dirname(
      os.path.dirname(builder.data_dir)))
  assert reloaded.info.features["label"].names == list(cub.CLASS_NAMES)


def test_manual_dir_may_be_the_cub_folder_itself(tmp_path):
  tree, _ = _fake(tmp_path, corrupt=False, nested=False)
  builder = fakes.prepare("cub2011", tree["manual_dir"],
                          str(tmp_path / "data"))
  assert all(name.startswith("images/") for split in tree["splits"]
             for name in tree["splits"][split])
  birds_checks.check_examples(tree, builder)


def test_unreadable_header_is_skipped_and_counted(tmp_path, caplog):
  tree, _ = _fake(tmp_path, corrupt=False)
  birds_checks.check_skips_unreadable_header("cub2011", tree, tmp_path, caplog)


@pytest.mark.parametrize("name", [
    "images.txt", "image_class_labels.txt", "train_test_split.txt",
    "bounding_boxes.txt", "classes.txt", "images"])
def test_missing_metadata_file_or_images_folder(tmp_path, name):
  tree, data_dir = _fake(tmp_path)
  birds_checks.check_missing("cub2011", tree, os.path.join(data_dir, name),
                             tmp_path, INSTRUCTIONS)


def test_empty_manual_dir(tmp_path):
  birds_checks.check_empty_manual_dir("cub2011", tmp_path, INSTRUCTIONS)


def test_missing_image_file(tmp_path):
  tree, _ = _fake(tmp_path)
  missing = sorted(tree["splits"]["test"])[0]
  os.remove(os.path.join(tree["manual_dir"], missing))
  _prepare_fails(tree, tmp_path,
                 re.escape(missing) + " does not exist but is listed in",
                 FileNotFoundError)


@pytest.mark.parametrize("name, line, match", [
    ("train_test_split.txt", "2 yes", "is_training_image must be 0 or 1"),
    ("bounding_boxes.txt", "2 1.0 2.0 -4.0 5.0", "must be >= 0"),
    ("bounding_boxes.txt", "2 1.0 2.0 4.0", "expected an id and 4"),
    ("bounding_boxes.txt", "2 nan 2.0 4.0 5.0", "must be finite"),
    ("image_class_labels.txt", "2 albatross", "invalid literal"),
    ("images.txt", "1 001.Black_footed_Albatross/x.jpg", "appears twice"),
])
def test_malformed_metadata_names_file_and_line(tmp_path, name, line, match):
  tree, data_dir = _fake(tmp_path)
  path = os.path.join(data_dir, name)
  birds_checks.edit_lines(path, lambda lines: [lines[0], line, *lines[2:]])
  error = _prepare_fails(tree, tmp_path, match)
  assert f"{path}, line 2" in str(error)


def test_classes_txt_of_another_release_is_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  path = os.path.join(data_dir, "classes.txt")
  birds_checks.edit_lines(path, lambda lines: [
      "2 002.Laysan_albatross" if line.startswith("2 ") else line
      for line in lines])
  error = _prepare_fails(tree, tmp_path, "not a CUB-200-2011")
  assert path in str(error)


def test_image_without_a_box_is_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  path = os.path.join(data_dir, "bounding_boxes.txt")
  birds_checks.edit_lines(path, lambda lines: lines[:-1])
  _prepare_fails(tree, tmp_path,
                 re.escape(f"{path} has no line for 1 image"))


def test_unknown_class_id_is_an_error(tmp_path):
  tree, data_dir = _fake(tmp_path)
  birds_checks.edit_lines(os.path.join(data_dir, "image_class_labels.txt"),
                          lambda lines: ["1 201", *lines[1:]])
  _prepare_fails(tree, tmp_path, "image 1 has class id 201")
