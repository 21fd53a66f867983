"""The paper datasets end to end: fake raw tree → TFDS → input pipeline."""
import collections

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import data as data_lib
from tnet_tf.config import DataConfig
from tnet_tf.data import pipeline

SIZE = (48, 40)
TRAIN_SPLIT = {"imagenet": "train", "fmow": "train", "fmow_crop": "train",
               "cub": "train", "nabirds": "train"}


def _cfg(paper_datasets, name, **changes):
  return DataConfig(name=name, data_dir=paper_datasets[name]["data_dir"],
                    image_size=SIZE, **changes)


@pytest.mark.parametrize("name", ["imagenet", "fmow", "cub", "nabirds"])
def test_evaluation_pass_skips_and_counts_the_corrupt_image(paper_datasets,
                                                            name):
  tree = paper_datasets[name]
  cfg = _cfg(paper_datasets, name)
  expected = tree["splits"]["train"]
  assert data_lib.split_size(cfg, "train") == len(expected)
  labels = []
  counter = pipeline.SkipCounter("train")
  for image, label in data_lib.build("train", cfg, training=False,
                                     counter=counter):
    assert image.shape == (*SIZE, 3) and image.dtype == tf.uint8
    labels.append(int(label))
  good = [e["label"] for f, e in expected.items() if f != tree["corrupt_file"]]
  assert collections.Counter(labels) == collections.Counter(good)
  assert counter.skipped == 1  # the one corrupt JPEG


def test_fmow_crop_variant_drops_the_corrupt_image_at_build_time(
    paper_datasets):
  cfg = _cfg(paper_datasets, "fmow_crop")
  size = data_lib.split_size(cfg, "train")
  assert size == len(paper_datasets["fmow"]["splits"]["train"]) - 1
  counter = pipeline.SkipCounter("train")
  images = list(data_lib.build("train", cfg, training=False,
                               counter=counter))
  assert len(images) == size and counter.skipped == 0


@pytest.mark.parametrize("name", ["imagenet", "fmow", "cub", "nabirds"])
def test_training_stream_never_ends_and_is_seeded(paper_datasets, name):
  cfg = _cfg(paper_datasets, name)
  n = len(paper_datasets[name]["splits"]["train"])

  counter = pipeline.SkipCounter("train")

  def first(seed, count):
    ds = data_lib.build("train", cfg, training=True, seed=seed,
                        counter=counter)
    return [(image.numpy(), int(label)) for image, label in ds.take(count)]

  stream = first(3, 3 * n)  # three epochs through a corrupt image
  assert len(stream) == 3 * n
  assert counter.skipped >= 2
  assert all(image.shape == (*SIZE, 3) for image, _ in stream)
  again = first(3, 6)
  assert all(np.array_equal(a[0], b[0]) and a[1] == b[1]
             for a, b in zip(stream[:6], again))
  other = first(4, 6)
  assert not all(np.array_equal(a[0], b[0])
                 for a, b in zip(stream[:6], other))


def test_class_counts_and_info(paper_datasets):
  assert data_lib.num_classes(_cfg(paper_datasets, "imagenet")) == 1000
  assert data_lib.num_classes(_cfg(paper_datasets, "fmow")) == 62
  assert data_lib.num_classes(_cfg(paper_datasets, "cub")) == 200
  assert data_lib.num_classes(_cfg(paper_datasets, "nabirds")) == 555
  info = data_lib.info(_cfg(paper_datasets, "fmow"))
  assert info["classes"][0] == "airport" and len(info["classes"]) == 62
  assert info["splits"]["test"] == 3


def test_unprepared_dataset_names_the_build_command(tmp_path):
  cfg = DataConfig(name="cub", data_dir=str(tmp_path), image_size=SIZE)
  with pytest.raises(FileNotFoundError, match="data_pipelines.build "
                     "--dataset=cub2011"):
    data_lib.build("train", cfg, training=True)


def test_unknown_split_lists_the_available_ones(paper_datasets):
  with pytest.raises(ValueError, match="available .*'test', 'train'"):
    data_lib.build("validation", _cfg(paper_datasets, "cub"))
