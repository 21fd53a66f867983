"""TFDS's own `imagenet2012` builder on a fake ILSVRC-2012 manual dir."""
import io
import os
import shutil
import tarfile

from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils
from tensorflow_datasets.datasets.imagenet2012 import (
    imagenet2012_dataset_builder as tfds_imagenet)

from data_pipelines import imagenet
import fakes
from fakes import imagenet as fake_imagenet


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  return fakes.make_and_prepare("imagenet2012", fake_imagenet,
                                tmp_path_factory.mktemp("imagenet"))


def test_split_sizes(prepared):
  tree, builder = prepared
  assert set(builder.info.splits) == {"train", "validation"}
  for split, expected in tree["splits"].items():
    assert builder.info.splits[split].num_examples == len(expected)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_file_names_and_labels(prepared, split):
  tree, builder = prepared
  records = fakes.records(builder, split)
  expected = tree["splits"][split]
  assert set(records) == set(expected)
  int2str = builder.info.features["label"].int2str
  for file_name, example in records.items():
    assert example["label"] == expected[file_name]["label"], file_name
    assert int2str(example["label"]) == expected[file_name]["class_name"], (
        file_name)


def test_fake_val_tar_is_out_of_order(prepared):
  # So the label check above holds only because TFDS sorts the names: line i
  # of its validation_labels.txt belongs to ILSVRC2012_val_<i>.JPEG.
  tree, _ = prepared
  val_tar = os.path.join(tree["manual_dir"], fake_imagenet.VAL_TAR)
  with tarfile.open(val_tar) as tar:
    names = tar.getnames()
  assert names != sorted(names)
  second = tree["splits"]["validation"]["ILSVRC2012_val_00000002.JPEG"]
  assert second["class_name"] == "n09193705"


def test_image_bytes_stored_unchanged(prepared):
  # Also shows that _fix_image (CMYK/PNG re-encoding) leaves our files alone.
  tree, builder = prepared
  fixed = set(tfds_imagenet.CMYK_IMAGES) | set(tfds_imagenet.PNG_IMAGES)
  for split in tree["splits"]:
    for file_name, example in fakes.records(builder, split).items():
      assert file_name not in fixed
      assert example["image"] == tree["file_bytes"][file_name], file_name
  assert tree["corrupt_file"] in tree["splits"]["train"]


def test_records_carry_no_bounding_box(prepared):
  # The input pipeline then crops around the whole image.
  _, builder = prepared
  assert set(builder.info.features) == {"image", "label", "file_name"}


def test_fake_corrupt_file_has_header_but_no_decodable_body(tmp_path):
  tree = fake_imagenet.make_tree(str(tmp_path / "a"))
  corrupt = tree["file_bytes"][tree["corrupt_file"]]
  expected_size = tree["splits"]["train"][tree["corrupt_file"]]["size"]
  assert Image.open(io.BytesIO(corrupt)).size == expected_size
  with pytest.raises(tf.errors.InvalidArgumentError):
    tf.io.decode_jpeg(corrupt)
  clean = fake_imagenet.make_tree(str(tmp_path / "b"), corrupt=False)
  assert clean["corrupt_file"] is None
  tf.io.decode_jpeg(clean["file_bytes"][tree["corrupt_file"]])


def test_check_manual_dir_accepts_complete_dir(prepared):
  tree, _ = prepared
  imagenet.check_manual_dir(tree["manual_dir"])


@pytest.mark.parametrize("missing", [
    ("ILSVRC2012_img_train.tar",),
    ("ILSVRC2012_img_val.tar",),
    ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
])
def test_check_manual_dir_names_missing_tars(prepared, tmp_path, missing):
  tree, _ = prepared
  manual_dir = tmp_path / "manual"
  shutil.copytree(tree["manual_dir"], manual_dir)
  for name in missing:
    os.remove(manual_dir / name)
  with pytest.raises(FileNotFoundError) as error:
    imagenet.check_manual_dir(manual_dir)
  message = str(error.value)
  assert str(manual_dir) in message
  assert "is missing " + " and ".join(missing) in message
  assert "n01440764_<k>.JPEG" in message  # The expected layout.


def test_check_manual_dir_on_absent_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar"):
    imagenet.check_manual_dir(tmp_path / "nowhere")


def test_tfds_without_the_check_builds_no_train_split(prepared, tmp_path,
                                                      monkeypatch):
  # Why check_manual_dir exists: TFDS only logs a warning for a missing
  # train tar and prepares a dataset without it. So TFDS directly, not
  # fakes.prepare (data_pipelines.build runs the check first).
  tree, _ = prepared
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  shutil.copy(os.path.join(tree["manual_dir"], fake_imagenet.VAL_TAR),
              manual_dir)
  monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", True)
  builder = tfds.builder("imagenet2012", data_dir=str(tmp_path / "data"))
  config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  with fakes.no_network():
    builder.download_and_prepare(download_config=config)
  assert set(builder.info.splits) == {"validation"}
