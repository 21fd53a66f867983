"""The paper's datasets, read from TFDS-prepared records.

ImageNet-2012 comes from TFDS's own ``imagenet2012`` builder; fMoW-rgb,
CUB-200-2011 and NABirds from the builders in ``data_pipelines/``. Prepare
them once with ``python -m data_pipelines.build`` (see
data_pipelines/README.md); ``--data_dir`` then points at the TFDS data dir.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Optional

import tensorflow as tf

from tnet_tf.config import DataConfig
from tnet_tf.data import augment
from tnet_tf.data import pipeline


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
  """One of the paper's datasets: its TFDS name and default augmentation."""
  tfds_name: str
  num_classes: int
  augmentation: str
  module: Optional[str] = None  # data_pipelines module registering it
  build_name: str = ""  # --dataset of ``python -m data_pipelines.build``


DATASETS = {
    "imagenet": TfdsDataset("imagenet2012", 1000, "imagenet",
                            build_name="imagenet2012"),
    "fmow": TfdsDataset("fmow_rgb/full", 62, "imagenet",
                        "data_pipelines.fmow", "fmow_rgb"),
    "fmow_crop": TfdsDataset("fmow_rgb/crop", 62, "imagenet",
                             "data_pipelines.fmow", "fmow_rgb/crop"),
    "cub": TfdsDataset("cub2011", 200, "birds", "data_pipelines.cub",
                       "cub2011"),
    "nabirds": TfdsDataset("nabirds", 555, "birds", "data_pipelines.nabirds",
                           "nabirds"),
}


def builder(name: str, data_dir: Optional[str]):
  """The prepared TFDS builder of ``name``, or a clear error."""
  import tensorflow_datasets as tfds  # local: slow import
  spec = DATASETS[name]
  if spec.module:
    importlib.import_module(spec.module)  # registers the builder
  if not data_dir:
    raise ValueError(f"--dataset={name} needs --data_dir: the TFDS data "
                     "directory it was prepared into")
  result = tfds.builder(spec.tfds_name, data_dir=data_dir, try_gcs=False)
  if not result.is_prepared():
    raise FileNotFoundError(
        f"dataset {spec.tfds_name!r} is not prepared in {data_dir} (looked "
        f"for {result.data_dir}); prepare it once with: python -m "
        f"data_pipelines.build --dataset={spec.build_name} "
        f"--manual_dir=<raw files> --data_dir={data_dir}")
  return result


def dataset(name: str, split: str, cfg: DataConfig, training: bool,
            seed: int, counter: Optional[pipeline.SkipCounter] = None
            ) -> tf.data.Dataset:
  """Unbatched ``(uint8 image [H, W, 3], int32 label)`` at ``image_size``;
  ``seed`` seeds file order, shuffling and augmentation."""
  import tensorflow_datasets as tfds  # local: slow import
  tfds_builder = builder(name, cfg.data_dir)
  total = _split_examples(tfds_builder, split)
  records = tfds_builder.as_dataset(
      split=split, shuffle_files=training,
      decoders={"image": tfds.decode.SkipDecoding()},
      read_config=tfds.ReadConfig(shuffle_seed=seed,
                                  try_autocache=False))
  has_box = "bbox" in tfds_builder.info.features
  whole = tf.constant([0.0, 0.0, 1.0, 1.0])

  def raw(example):
    box = example["bbox"] if has_box else whole
    return example["image"], box, tf.cast(example["label"], tf.int32)

  size = tuple(cfg.image_size)
  options = dict(cfg.options)
  aug = augment.augment_config(
      options.pop("augmentation", DATASETS[name].augmentation), **options)

  def decoder(record, seed):
    encoded, box, label = record
    if training:
      return augment.train_image(encoded, box, size, aug, seed), label
    return augment.eval_image(encoded, size, aug.antialias), label

  return pipeline.build_pipeline(
      records.map(raw), decoder, name=split, training=training,
      seed=seed, shuffle_buffer=cfg.shuffle_buffer, total=total,
      counter=counter)


def split_size(name: str, cfg: DataConfig, split: str) -> int:
  return _split_examples(builder(name, cfg.data_dir), split)


def _split_examples(tfds_builder, split: str) -> int:
  try:
    return tfds_builder.info.splits[split].num_examples
  except (KeyError, ValueError) as err:
    raise ValueError(
        f"split {split!r} is not in {tfds_builder.name}: available "
        f"{sorted(tfds_builder.info.splits)} (slices like 'train[:90%]' "
        "work too)") from err


def info(name: str, cfg: DataConfig) -> dict:
  tfds_builder = builder(name, cfg.data_dir)
  label = tfds_builder.info.features["label"]
  return {"tfds_name": tfds_builder.info.full_name,
          "classes": list(label.names),
          "splits": {k: v.num_examples
                     for k, v in tfds_builder.info.splits.items()}}
