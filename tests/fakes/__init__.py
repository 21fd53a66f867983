"""Fake raw datasets in their real on-disk layouts, and their preparation
through TFDS with the network refused (the builders must never download)."""
from __future__ import annotations

import contextlib
import os
import socket
from unittest import mock

# --dataset of the runner → (TFDS name, fake module name)
DATASETS = {"imagenet": ("imagenet2012", "imagenet"),
            "fmow": ("fmow_rgb/full", "fmow"),
            "fmow_crop": ("fmow_rgb/crop", "fmow"),
            "cub": ("cub2011", "cub"),
            "nabirds": ("nabirds", "nabirds")}


def _refuse_network(*args, **kwargs):
  raise AssertionError(f"network access attempted: {args}")


@contextlib.contextmanager
def no_network():
  with mock.patch.object(socket.socket, "connect", _refuse_network), \
      mock.patch.object(socket, "getaddrinfo", _refuse_network):
    yield


def prepare(tfds_name: str, manual_dir: str, data_dir: str):
  """``python -m data_pipelines.build`` in-process, offline."""
  from data_pipelines import build  # local: keeps the fakes import light
  with no_network():
    return build.build(tfds_name, manual_dir, data_dir)


def make_and_prepare(tfds_name: str, fake, root) -> tuple[dict, object]:
  """Writes ``fake.make_tree(root/manual)`` (``fake`` a module of this
  package) and prepares it into ``root/data``; returns the tree and the
  TFDS builder."""
  tree = fake.make_tree(os.path.join(root, "manual"))
  return tree, prepare(tfds_name, tree["manual_dir"],
                       os.path.join(root, "data"))


def records(builder, split: str) -> dict:
  """{file_name: example} of a prepared split, read back as NumPy with the
  image bytes undecoded (as stored)."""
  import tensorflow_datasets as tfds  # local: slow import
  dataset = builder.as_dataset(
      split=split, decoders={"image": tfds.decode.SkipDecoding()})
  return {example["file_name"].decode(): example
          for example in tfds.as_numpy(dataset)}


def prepare_all(root: str, names=tuple(DATASETS)) -> dict:
  """Writes every fake raw tree under ``root/raw`` and prepares it into the
  TFDS data dir ``root/tfds``; returns {dataset: fake tree description}."""
  import importlib
  data_dir = os.path.join(root, "tfds")
  trees = {}
  for name in names:
    tfds_name, module = DATASETS[name]
    manual = os.path.join(root, "raw", module)
    if module not in trees:
      trees[module] = importlib.import_module(f"fakes.{module}").make_tree(
          manual)
    prepare(tfds_name, manual, data_dir)
  return {name: trees[DATASETS[name][1]] | {"data_dir": data_dir}
          for name in names}
