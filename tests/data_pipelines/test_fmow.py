"""fmow_rgb (full and crop) prepared from the fake fMoW-rgb release."""
import contextlib
import io
import logging
import os
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from data_pipelines import fmow
import fakes
from fakes import fmow as fake_fmow

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


@contextlib.contextmanager
def _absl_messages():
  """Collects the messages logged through absl (INFO and up)."""
  messages = []
  handler = logging.Handler(logging.INFO)
  handler.emit = lambda record: messages.append(record.getMessage())
  logger = logging.getLogger("absl")
  level = logger.level
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  try:
    yield messages
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return fake_fmow.make_tree(str(tmp_path_factory.mktemp("fmow") / "manual"))


@pytest.fixture(scope="module")
def full(tree, tmp_path_factory):
  return fakes.prepare("fmow_rgb/full", tree["manual_dir"],
                       tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def crop(tree, tmp_path_factory):
  """The crop builder and the messages it logged while preparing."""
  with _absl_messages() as messages:
    builder = fakes.prepare("fmow_rgb/crop", tree["manual_dir"],
                            tmp_path_factory.mktemp("data"))
  return builder, messages


def _copy(tree, tmp_path):
  manual_dir = tmp_path / "manual"
  shutil.copytree(tree["manual_dir"], manual_dir)
  return manual_dir


def test_categories():
  assert len(fmow.CATEGORIES) == 62 == len(set(fmow.CATEGORIES))
  assert fmow.CATEGORIES == sorted(fmow.CATEGORIES)
  assert "false_detection" not in fmow.CATEGORIES
  for name, label in fake_fmow.LABELS.items():
    assert fmow.CATEGORIES.index(name) == label


def test_full_is_the_default_config_with_the_interface_features(full):
  assert tfds.builder_cls("fmow_rgb").BUILDER_CONFIGS[0].name == "full"
  assert set(full.info.features) == {"image", "label", "bbox", "file_name"}
  assert full.info.features["label"].names == fmow.CATEGORIES
  assert full.info.features["image"].encoding_format == "jpeg"


def test_full_split_sizes(tree, full):
  assert set(full.info.splits) == {"train", "validation", "test"}
  for split, expected in tree["splits"].items():
    assert full.info.splits[split].num_examples == len(expected), split
  assert [full.info.splits[s].num_examples
          for s in ("train", "validation", "test")] == [5, 3, 3]


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_full_labels_boxes_and_file_names(tree, full, split):
  records = fakes.records(full, split)
  expected = tree["splits"][split]
  assert set(records) == set(expected)
  int2str = full.info.features["label"].int2str
  for file_name, example in records.items():
    want = expected[file_name]
    assert example["label"] == want["label"], file_name
    assert int2str(example["label"]) == want["class_name"], file_name
    np.testing.assert_allclose(example["bbox"], want["bbox"], atol=1e-6,
                               err_msg=file_name)


def test_full_boxes_by_hand(full):
  # The box of the image's own category, skipping ID -1 and other
  # categories, clipped to the image; test boxes from test_gt/, not test/.
  expected = {
      ("train", "train/airport/airport_0/airport_0_0_rgb.jpg"):
          (20 / 80, 30 / 120, 50 / 80, 78 / 120),  # After an ID -1 box.
      ("train", "train/airport/airport_0/airport_0_1_rgb.jpg"):
          (10 / 60, 0.0, 50 / 60, 46 / 100),  # x = -4 clipped.
      ("validation", "val/airport/airport_5/airport_5_0_rgb.jpg"):
          (8 / 40, 12 / 48, 28 / 40, 36 / 48),  # After a false_detection.
      ("validation", "val/zoo/zoo_2/zoo_2_0_rgb.jpg"):
          (4 / 44, 20 / 80, 34 / 44, 60 / 80),  # A dict, not a list.
      ("test", "test/0000002/0000002_0_rgb.jpg"):
          (30 / 100, 5 / 40, 80 / 100, 35 / 40),
  }
  for (split, file_name), bbox in expected.items():
    np.testing.assert_allclose(fakes.records(full, split)[file_name]["bbox"],
                               bbox, atol=1e-6, err_msg=file_name)


def test_full_stores_file_bytes_unchanged(tree, full):
  for split in tree["splits"]:
    for file_name, example in fakes.records(full, split).items():
      assert example["image"] == tree["file_bytes"][file_name], file_name
  assert tree["corrupt_file"] in fakes.records(full, "train")


def test_fake_corrupt_file_has_header_but_no_decodable_body(tree):
  data = tree["file_bytes"][tree["corrupt_file"]]
  with Image.open(io.BytesIO(data)) as image:
    assert image.size == tree["splits"]["train"][tree["corrupt_file"]]["size"]
    with pytest.raises(OSError, match="truncated"):
      image.load()


def test_crop_split_sizes_skip_corrupt_and_tiny_box(tree, crop):
  builder, _ = crop
  sizes = {s: builder.info.splits[s].num_examples for s in builder.info.splits}
  assert sizes == {"train": 4, "validation": 2, "test": 3}
  assert tree["corrupt_file"] not in fakes.records(builder, "train")
  assert tree["tiny_box_file"] not in fakes.records(builder, "validation")


def test_crop_logs_the_skipped_corrupt_image(tree, crop):
  _, messages = crop
  assert "skipped 1 unreadable images in train" in messages
  assert "skipped 0 unreadable images in validation" in messages
  assert "skipped 0 unreadable images in test" in messages
  assert any(m.startswith(f"skipping {tree['corrupt_file']}: unreadable")
             for m in messages)
  assert ("skipped 1 images in validation without a croppable box of their "
          "category") in messages


def test_crop_records(tree, crop):
  builder, _ = crop
  for split, expected in tree["splits"].items():
    for file_name, example in fakes.records(builder, split).items():
      assert example["label"] == expected[file_name]["label"], file_name
      np.testing.assert_array_equal(example["bbox"], WHOLE_IMAGE)
      with Image.open(io.BytesIO(example["image"])) as decoded:
        assert decoded.format == "JPEG" and decoded.mode == "RGB"


def test_crop_regions_by_hand(tree, crop):
  # (left, top, right, bottom) of the baseline's context crop.
  expected = {
      # 48/120 = 0.4 wide -> margin 0.2: 4 px; 30/80 high -> 0.3: 4 px.
      "train/airport/airport_0/airport_0_0_rgb.jpg": (26, 16, 82, 54),
      # Under a tenth of the image -> margin 2: int(4) and int(5) px.
      "train/multi-unit_residential/multi-unit_residential_3/"
      "multi-unit_residential_3_0_rgb.jpg": (4, 3, 16, 18),
      # Over half the image -> margin 0.15: int(5.25) and int(6.75) px.
      "train/zoo/zoo_1/zoo_1_0_rgb.jpg": (5, 4, 85, 106),
      # 0.5 wide -> 0.15: 3 px, clipped at the left edge.
      "train/airport/airport_0/airport_0_1_rgb.jpg": (0, 7, 49, 53),
  }
  builder, _ = crop
  records = fakes.records(builder, "train")
  for file_name, region in expected.items():
    with Image.open(io.BytesIO(records[file_name]["image"])) as decoded:
      got = np.asarray(decoded, dtype=np.float32)
    with Image.open(os.path.join(tree["manual_dir"], file_name)) as source:
      want = np.asarray(source.crop(region), dtype=np.float32)
    assert got.shape == want.shape, file_name
    assert np.abs(got - want).mean() < 6, file_name  # JPEG re-encoding.


@pytest.mark.parametrize("box, size, region", [
    ((0, 0, 60, 60), (100, 100), (0, 0, 64, 64)),  # >= 0.5: 0.15
    ((20, 20, 45, 45), (100, 100), (16, 16, 69, 69)),  # [0.4, 0.5): 0.2
    ((20, 20, 35, 35), (100, 100), (15, 15, 60, 60)),  # [0.3, 0.4): 0.3
    ((20, 20, 25, 25), (100, 100), (14, 14, 51, 51)),  # [0.2, 0.3): 0.5
    ((20, 20, 15, 15), (100, 100), (13, 13, 42, 42)),  # [0.1, 0.2): 1
    ((20, 20, 8, 8), (100, 100), (12, 12, 36, 36)),  # < 0.1: 2
    ((20, 30, 8, 50), (100, 100), (12, 27, 36, 83)),  # Width, height apart.
    ((10, 10, 30, 30), (100, 50), (6, 8, 44, 42)),  # Each by its own side.
    ((90, 90, 20, 20), (100, 100), (85, 85, 100, 100)),  # Clipped.
])
def test_context_box(box, size, region):
  assert fmow.context_box(box, *size) == region


@pytest.mark.parametrize("box", [(5, 5, 2, 40), (5, 5, 40, 2),
                                 (120, 5, 10, 10)])
def test_context_box_rejects_thin_boxes_and_boxes_outside(box):
  assert fmow.context_box(box, 100, 100) is None


def test_object_box():
  boxes = [{"box": [0, 0, 9, 9], "category": "zoo", "ID": -1},
           {"box": [1, 2, 3, 4], "category": "park", "ID": 5},
           {"box": [5, 6, 7, 8], "category": "zoo", "ID": 6},
           {"box": [9, 9, 9, 9], "category": "zoo", "ID": 7}]
  assert fmow.object_box({"bounding_boxes": boxes}, "zoo", "f") == (5, 6, 7, 8)
  assert fmow.object_box({"bounding_boxes": boxes[1]}, "park", "f") == (
      1, 2, 3, 4)
  assert fmow.object_box({"bounding_boxes": boxes}, "dam", "f") is None
  with pytest.raises(ValueError, match="f: box"):
    fmow.object_box({"bounding_boxes": [{"box": [1, 2], "category": "dam"}]},
                    "dam", "f")
  with pytest.raises(ValueError, match="no 'bounding_boxes'"):
    fmow.object_box({}, "dam", "f")


def test_without_ground_truth_no_test_split_and_unreadable_headers(
    tree, tmp_path):
  manual_dir = _copy(tree, tmp_path)
  os.remove(manual_dir / "test_gt_mapping.json")
  shutil.rmtree(manual_dir / "test_gt")
  broken = "val/zoo/zoo_2/zoo_2_0_rgb.jpg"
  (manual_dir / broken).write_bytes(b"not a jpeg")
  # The challenge's extra class (not one of the 62) is left out.
  shutil.copytree(manual_dir / "val/zoo",
                  manual_dir / "val/false_detection")
  with _absl_messages() as messages:
    builder = fakes.prepare("fmow_rgb/full", manual_dir, tmp_path / "data")
  assert set(builder.info.splits) == {"train", "validation"}
  assert set(fakes.records(builder, "validation")) == (
      set(tree["splits"]["validation"]) - {broken})
  assert any(m.startswith("no test split: ") and "test_gt_mapping.json" in m
             for m in messages)
  assert any(m.startswith(f"skipping {broken}: unreadable") for m in messages)
  assert "skipped 1 unreadable images in validation" in messages
  assert "skipped 0 unreadable images in train" in messages
  assert any(m.endswith("val/false_detection: not one of the 62 categories")
             for m in messages)


@pytest.mark.parametrize("removed, named", [
    ("train/zoo/zoo_1/zoo_1_0_rgb.json", "train/zoo/zoo_1/zoo_1_0_rgb.json"),
    ("val", "val"),
    ("test_gt/airport/airport_9/airport_9_0_rgb.json",
     "test_gt/airport/airport_9/airport_9_0_rgb.json"),
    ("test/0000001", "test/0000001"),
])
def test_missing_files_name_the_path_and_layout(tree, tmp_path, removed,
                                                named):
  manual_dir = _copy(tree, tmp_path)
  path = manual_dir / removed
  shutil.rmtree(path) if path.is_dir() else os.remove(path)
  with pytest.raises(FileNotFoundError) as error:
    fakes.prepare("fmow_rgb/full", manual_dir, tmp_path / "data")
  message = str(error.value)
  assert str(manual_dir / named) in message
  assert "val/<category>/<category>_<id>/" in message  # The expected layout.


def _garble_metadata(manual_dir):
  path = manual_dir / "val/zoo/zoo_2/zoo_2_0_rgb.json"
  path.write_text('{\n "img_width": 80,\n "img_height": 44,,\n}')
  return f"{path}, line 3: malformed JSON"


def _rename_category(manual_dir):
  os.rename(manual_dir / "val/zoo", manual_dir / "val/zoos")
  return f"{manual_dir / 'val/zoos'}: 'zoos' is not one of the 62"


def _garble_test_mapping(manual_dir):
  path = manual_dir / "test_gt_mapping.json"
  path.write_text('[{"input": "test_gt/airport/airport_9"}]')
  return f"{path}: entry 0 is"


@pytest.mark.parametrize(
    "damage", [_garble_metadata, _rename_category, _garble_test_mapping])
def test_malformed_input_is_a_value_error_naming_where(tree, tmp_path, damage):
  manual_dir = _copy(tree, tmp_path)
  message = damage(manual_dir)
  with pytest.raises(ValueError) as error:
    fakes.prepare("fmow_rgb/full", manual_dir, tmp_path / "data")
  assert str(error.value).startswith(message)


def test_absent_manual_dir(tmp_path):
  # The builder's own error, so TFDS directly: data_pipelines.build refuses
  # an absent manual dir before any builder runs.
  builder = tfds.builder("fmow_rgb/full", data_dir=str(tmp_path / "data"))
  config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "nowhere"))
  with fakes.no_network(), pytest.raises(FileNotFoundError,
                                         match="test_gt_mapping.json"):
    builder.download_and_prepare(download_config=config)


def test_fake_without_corruption_decodes_everywhere(tmp_path):
  tree = fake_fmow.make_tree(str(tmp_path / "manual"), corrupt=False)
  assert tree["corrupt_file"] is None
  for file_name, data in tree["file_bytes"].items():
    with Image.open(io.BytesIO(data)) as image:
      image.load()
