"""Datasets by name: ``build(split, cfg, training) → tf.data`` of (image,
label). Each dataset is a ``Source`` in ``SOURCES`` (generated here, an
image folder, or TensorFlow Datasets); the generated ones go through the
one pipeline of ``pipeline.py``."""
from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from tnet_tf.config import DataConfig
from tnet_tf.data import folder
from tnet_tf.data import megapixel_digits
from tnet_tf.data import megapixel_mnist
from tnet_tf.data import pipeline
from tnet_tf.data import small_object
from tnet_tf.data import tfds_source
from tnet_tf.data import toy


def _toy(split: str, cfg: DataConfig) -> tf.data.Dataset:
  return toy.dataset(split, size=cfg.image_size[0],
                     num_examples=cfg.num_examples or None, seed=cfg.seed)


def megapixel_config(cfg: DataConfig) -> megapixel_digits.MegapixelDigitsConfig:
  """The generator's config: canvas from ``image_size``, rest from options."""
  return megapixel_digits.MegapixelDigitsConfig(
      canvas_size=cfg.image_size[0], seed=cfg.seed, **cfg.options)


def _megapixel(split: str, cfg: DataConfig) -> tf.data.Dataset:
  return megapixel_digits.dataset(split, megapixel_config(cfg), cfg.data_dir)


def mnist_config(cfg: DataConfig) -> megapixel_mnist.MegapixelMNISTConfig:
  """Megapixel MNIST's config: canvas from ``image_size``, rest from
  options."""
  return megapixel_mnist.MegapixelMNISTConfig(
      canvas_size=cfg.image_size[0], seed=cfg.seed, **cfg.options)


def _mnist(split: str, cfg: DataConfig):
  return megapixel_mnist.layouts(split, mnist_config(cfg), cfg.data_dir)


def small_object_config(cfg: DataConfig) -> small_object.SmallObjectConfig:
  return small_object.SmallObjectConfig(
      canvas_size=cfg.image_size[0], seed=cfg.seed, **cfg.options)


def _small_object(split: str, cfg: DataConfig) -> tf.data.Dataset:
  return small_object.dataset(split, small_object_config(cfg))


class Source:
  """A dataset behind the one interface ``build`` and the run records use.

  ``examples`` gives decoded ``(image, label)`` examples of a split
  (shuffled, repeated and augmented when ``training``); the rest describe
  the dataset for a config. ``slide_table`` is the table of files TNet
  reads region by region, for sources that yield indices into one.
  """
  channels = 3

  def examples(self, split: str, cfg: DataConfig, training: bool, seed: int,
               counter: Optional[pipeline.SkipCounter]) -> tf.data.Dataset:
    raise NotImplementedError

  def num_classes(self, cfg: DataConfig) -> int:
    raise NotImplementedError

  def split_size(self, cfg: DataConfig, split: str) -> int:
    raise NotImplementedError

  def info(self, cfg: DataConfig) -> dict:
    return {"classes": [str(i) for i in range(self.num_classes(cfg))]}

  def slide_table(self, cfg: DataConfig):
    del cfg
    return None


class Generated(Source):
  """A dataset made here: ``records(split, cfg)`` gives decoded examples, or
  ``(layouts, decoder(training))`` when it draws them from layouts."""

  def __init__(self, records: Callable, classes: Callable[[DataConfig], int],
               size: Callable[[DataConfig, str], int], channels: int):
    self.records, self.classes, self.size = records, classes, size
    self.channels = channels

  def examples(self, split, cfg, training, seed, counter):
    records = self.records(split, cfg)
    decoder = lambda record, _: record  # already decoded examples
    if isinstance(records, tuple):  # (layouts, a decoder that draws them)
      records, decoder = records[0], records[1](training)
    return pipeline.build_pipeline(
        records, decoder, name=split, training=training, seed=seed,
        shuffle_buffer=cfg.shuffle_buffer, cache=bool(cfg.resize_to),
        counter=counter)

  def num_classes(self, cfg):
    return self.classes(cfg)

  def split_size(self, cfg, split):
    return self.size(cfg, split)


class Folder(Source):
  """Your own images (or slides), one folder per class (``folder.py``)."""

  def examples(self, split, cfg, training, seed, counter):
    return folder.dataset(split, cfg, training, seed, counter)

  def num_classes(self, cfg):
    return len(folder.info(cfg)["classes"])

  def split_size(self, cfg, split):
    return len(folder.files(cfg, split))

  def info(self, cfg):
    return folder.info(cfg)

  def slide_table(self, cfg):
    return folder.slide_table(cfg)


class Tfds(Source):
  """A dataset prepared with TensorFlow Datasets (``tfds_source.py``)."""

  def __init__(self, name: str):
    self.name = name

  def examples(self, split, cfg, training, seed, counter):
    return tfds_source.dataset(self.name, split, cfg, training, seed, counter)

  def num_classes(self, cfg):
    return tfds_source.DATASETS[self.name].num_classes

  def split_size(self, cfg, split):
    return tfds_source.split_size(self.name, cfg, split)

  def info(self, cfg):
    return tfds_source.info(self.name, cfg)


SOURCES: dict[str, Source] = {
    "toy": Generated(_toy, lambda cfg: toy.NUM_CLASSES,
                     lambda cfg, split: int(_toy(split, cfg).cardinality()),
                     channels=3),
    "megapixel_digits": Generated(
        _megapixel, lambda cfg: megapixel_digits.NUM_CLASSES,
        lambda cfg, split: megapixel_config(cfg).examples(split), channels=1),
    "megapixel_mnist": Generated(
        _mnist, lambda cfg: megapixel_mnist.NUM_CLASSES,
        lambda cfg, split: mnist_config(cfg).examples(split), channels=1),
    # the class count is known before the canvas size is
    "small_object": Generated(
        _small_object, lambda cfg: int(cfg.options.get("num_classes", 4)),
        lambda cfg, split: small_object_config(cfg).examples(split),
        channels=1),
    "folder": Folder(),
    **{name: Tfds(name) for name in tfds_source.DATASETS},
}
DATASETS = sorted(SOURCES)


def source(name: str) -> Source:
  if name not in SOURCES:
    raise ValueError(f"unknown dataset {name!r}; known: {DATASETS}")
  return SOURCES[name]


def build(split: str, cfg: DataConfig, training: bool = False,
          seed: Optional[int] = None, rgb: bool = False,
          counter: Optional[pipeline.SkipCounter] = None) -> tf.data.Dataset:
  """Unbatched ``(image, label)`` examples of ``split`` of ``cfg.name``.

  Training examples are shuffled, repeated and augmented; ``seed`` (default
  ``cfg.seed``) seeds both. ``rgb`` turns grey images into 3 channels;
  ``cfg.resize_to`` resizes whole images (area-averaged), e.g. for a
  downscaled baseline. ``counter`` counts the images that fail to decode.
  """
  data = source(cfg.name)
  if (rgb or cfg.resize_to) and data.slide_table(cfg) is not None:
    raise ValueError(f"{cfg.data_dir} holds slides, read region by region "
                     "by TNet: they cannot be resized whole for a "
                     "full-image baseline")
  ds = data.examples(split, cfg, training,
                     cfg.seed if seed is None else seed, counter)

  def prepare(image, label):
    if rgb and image.shape[-1] == 1:
      image = tf.image.grayscale_to_rgb(image)
    if cfg.resize_to:
      image = tf.image.resize(image, cfg.resize_to, method="area")
    return image, label

  if rgb or cfg.resize_to:
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
  return ds


def slide_table(cfg: DataConfig):
  """The files TNet reads region by region for ``cfg`` (a
  ``tnet_tf.data.regions.SlideTable``: the dataset yields indices into it), or
  None for datasets of decoded images."""
  return source(cfg.name).slide_table(cfg)


def num_classes(cfg: DataConfig) -> int:
  return source(cfg.name).num_classes(cfg)


def channels(cfg: DataConfig) -> int:
  """Channels of the images a dataset yields (before any ``rgb``)."""
  return source(cfg.name).channels


def split_size(cfg: DataConfig, split: str) -> int:
  """Examples in ``split`` (for epochs → steps)."""
  return source(cfg.name).split_size(cfg, split)


def info(cfg: DataConfig) -> dict:
  """What a run records about its data: classes, split sizes."""
  return source(cfg.name).info(cfg)

