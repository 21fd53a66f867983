"""Datasets by name: ``build(split, cfg, training) → tf.data`` of (image,
label), through the one pipeline of ``pipeline.py``."""
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


# generated datasets: (source, classes, channels); a source gives decoded
# examples, or (records, decoder(training)) when it draws them from layouts
GENERATED: dict[str, tuple[Callable[[str, DataConfig], tf.data.Dataset], int,
                           int]]
GENERATED = {"toy": (_toy, toy.NUM_CLASSES, 3),
             "megapixel_digits": (_megapixel, megapixel_digits.NUM_CLASSES,
                                  1),
             "megapixel_mnist": (_mnist, megapixel_mnist.NUM_CLASSES, 1),
             "small_object": (_small_object, 4, 1)}
DATASETS = sorted([*GENERATED, *tfds_source.DATASETS, "folder"])


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {DATASETS}")


def build(split: str, cfg: DataConfig, training: bool = False,
          seed: Optional[int] = None, rgb: bool = False,
          counter: Optional[pipeline.SkipCounter] = None) -> tf.data.Dataset:
  """Unbatched ``(image, label)`` examples of ``split`` of ``cfg.name``.

  Training examples are shuffled, repeated and augmented; ``seed`` (default
  ``cfg.seed``) seeds both. ``rgb`` turns grey images into 3 channels;
  ``cfg.resize_to`` resizes whole images (area-averaged), e.g. for a
  downscaled baseline. ``counter`` counts the images that fail to decode.
  """
  check_name(cfg.name)
  seed = cfg.seed if seed is None else seed
  if cfg.name in GENERATED:
    records = GENERATED[cfg.name][0](split, cfg)
    decoder = lambda record, _: record  # already decoded examples
    if isinstance(records, tuple):  # (layouts, a decoder that draws them)
      records, decoder = records[0], records[1](training)
    ds = pipeline.build_pipeline(
        records, decoder, name=split, training=training,
        seed=seed, shuffle_buffer=cfg.shuffle_buffer,
        cache=bool(cfg.resize_to), counter=counter)
  elif cfg.name == "folder":
    ds = folder.dataset(split, cfg, training, seed, counter)
    if (rgb or cfg.resize_to) and slide_table(cfg) is not None:
      raise ValueError(f"{cfg.data_dir} holds slides, read region by region "
                       "by TNet: they cannot be resized whole for a "
                       "full-image baseline")
  else:
    ds = tfds_source.dataset(cfg.name, split, cfg, training, seed, counter)

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
  return folder.slide_table(cfg) if cfg.name == "folder" else None


def num_classes(cfg: DataConfig) -> int:
  check_name(cfg.name)
  if cfg.name == "small_object":  # (before the canvas size is known)
    return int(cfg.options.get("num_classes", 4))
  if cfg.name in GENERATED:
    return GENERATED[cfg.name][1]
  if cfg.name == "folder":
    return len(folder.info(cfg)["classes"])
  return tfds_source.DATASETS[cfg.name].num_classes


def channels(cfg: DataConfig) -> int:
  """Channels of the images a dataset yields (before any ``rgb``)."""
  check_name(cfg.name)
  return GENERATED[cfg.name][2] if cfg.name in GENERATED else 3


def split_size(cfg: DataConfig, split: str) -> int:
  """Examples in ``split`` (for epochs → steps)."""
  check_name(cfg.name)
  if cfg.name == "toy":
    return int(_toy(split, cfg).cardinality())
  if cfg.name == "megapixel_digits":
    return megapixel_config(cfg).examples(split)
  if cfg.name == "megapixel_mnist":
    return mnist_config(cfg).examples(split)
  if cfg.name == "small_object":
    return small_object_config(cfg).examples(split)
  if cfg.name == "folder":
    return len(folder.files(cfg, split))
  return tfds_source.split_size(cfg.name, cfg, split)


def info(cfg: DataConfig) -> dict:
  """What a run records about its data: classes, split sizes."""
  if cfg.name == "folder":
    return folder.info(cfg)
  if cfg.name in tfds_source.DATASETS:
    return tfds_source.info(cfg.name, cfg)
  return {"classes": [str(i) for i in range(num_classes(cfg))]}
