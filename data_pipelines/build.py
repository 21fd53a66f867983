"""Prepares a paper dataset from manually placed raw files into TFDS records.

  python -m data_pipelines.build --dataset=fmow_rgb --manual_dir=RAW \
      --data_dir=~/tensorflow_datasets

Then train with ``--data_dir`` pointing at the same TFDS data dir.
"""
from __future__ import annotations

import importlib
import os
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

# TFDS name → the module registering its builder (None: TFDS's own)
BUILDERS = {
    "imagenet2012": "data_pipelines.imagenet",
    "fmow_rgb": "data_pipelines.fmow",
    "fmow_rgb/full": "data_pipelines.fmow",
    "fmow_rgb/crop": "data_pipelines.fmow",
    "cub2011": "data_pipelines.cub",
    "nabirds": "data_pipelines.nabirds",
}

def build(dataset: str, manual_dir: str, data_dir: str):
  """Prepares ``dataset``; returns the TFDS builder."""
  import tensorflow_datasets as tfds  # local: slow import
  if dataset not in BUILDERS:
    raise ValueError(f"unknown dataset {dataset!r}; known: "
                     f"{sorted(BUILDERS)}")
  manual_dir = os.path.expanduser(manual_dir)
  data_dir = os.path.expanduser(data_dir)
  if not os.path.isdir(manual_dir):
    raise FileNotFoundError(f"--manual_dir={manual_dir} is not a directory")
  module = importlib.import_module(BUILDERS[dataset])
  if dataset == "imagenet2012":  # TFDS would build without a missing tar
    module.check_manual_dir(manual_dir)
  builder = tfds.builder(dataset, data_dir=data_dir, try_gcs=False)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _define_flags() -> None:
  """CLI flags, defined only when run as a program (the library can be
  imported next to the experiment runner, which has a --dataset too)."""
  flags.DEFINE_enum("dataset", None, sorted(BUILDERS), "Dataset to prepare.")
  flags.DEFINE_string("manual_dir", None,
                      "Directory holding the raw files (see "
                      "data_pipelines/README.md for each layout).")
  flags.DEFINE_string("data_dir", os.path.join("~", "tensorflow_datasets"),
                      "TFDS data dir to write the records into.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.dataset or not FLAGS.manual_dir:
    raise app.UsageError("--dataset and --manual_dir are required")
  start = time.time()
  try:
    builder = build(FLAGS.dataset, FLAGS.manual_dir, FLAGS.data_dir)
  except (FileNotFoundError, ValueError) as err:
    raise SystemExit(f"error: {err}") from None
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  logging.info("prepared %s in %s (%.0f s): %s", builder.info.full_name,
               builder.data_dir, time.time() - start, splits)
  print(f"{builder.info.full_name}: {splits} in {builder.data_dir}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
