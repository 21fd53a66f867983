"""The compression table: every ``tnet_tf.tools.compress`` variant of a trained
TNet, measured side by side.

  python -m benchmarks.compression --init_checkpoint=runs/synthetic/tnet \\
      --run_dir=runs/synthetic/compress \\
      --method=prune,prune_2x4,ptq_int8,qat_int8 --train_steps=1500 \\
      --lr_schedule=cosine --learning_rate=5e-4 --checkpoint_every=500 \\
      --log_every=100 --table=experiments/synthetic/compression.json

Runs each method (``tnet_tf.tools.compress``) and measures it and the float model:
zipped ``.tflite`` size, non-zero parameters, accuracy in the TFLite
runtime at each evaluated locations setting, ms/image at batch 1 in the
TFLite runtime and in the SavedModel (taken in turns), and for the float
model the designs not taken (a select-TF crop; one file per locations
setting).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tnet_tf.cli import compress as compress_cli

from tnet_tf.tools import compress
from tnet_tf import data as data_lib
from tnet_tf.model import cost
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.inference import tflite
from tnet_tf.config import DataConfig
from tnet_tf.cli import runner
from tnet_tf.model.inputs import pad_locations, total_locations
from tnet_tf.model.tnet import TNet

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues) -> None:
  compress_cli.define_flags(fv)
  d = dict(flag_values=fv)
  flags.DEFINE_string("table", None, "Write the table of every variant "
                      "(and the float model) to this JSON file.", **d)
  flags.DEFINE_integer("timing_images", 16,
                       "Images timed one at a time (batch 1) for ms/image.",
                       **d)


def measure(variant: str, artifacts: dict, data_cfg: DataConfig,
            settings: Sequence[Sequence[int]], timing: Sequence[int],
            timing_images: int = 16, eval_examples: int = 0) -> dict:
  """One row of the table: size, non-zeros, runtime accuracy, speed."""
  with open(artifacts["tflite"], "rb") as fh:
    data = fh.read()
  run = tflite.Interpreter(data)
  evaluation = data_lib.build(data_cfg.eval_split, data_cfg)
  if eval_examples:
    evaluation = evaluation.take(eval_examples)
  accuracy = tflite.evaluate(run, evaluation.batch(64), settings)
  ms_tflite, ms_saved = timings(run, artifacts["saved_model"], timing,
                                data_cfg, timing_images)
  return {"variant": variant, "zipped_bytes": tflite.zipped_bytes(data),
          "tflite_bytes": len(data),
          "nonzero_params": compress.nonzero_parameters(artifacts["model"]),
          "accuracy": accuracy, "ms_tflite": ms_tflite,
          "ms_savedmodel": ms_saved,
          "timing_locations": total_locations(timing)}


def timings(run: tflite.Interpreter, saved_model: str,
            locations: Sequence[int], data_cfg: DataConfig,
            count: int) -> tuple[float, float]:
  """Median ms/image, batch 1, TFLite runtime vs SavedModel, in turns.

  The SavedModel runs through its restored signature, without the
  project's code.
  """
  images = compress.first_images(data_cfg, data_cfg.eval_split, count)
  serve = tf.saved_model.load(saved_model).signatures["serving_default"]
  levels = 1 + serve.structured_input_signature[1]["locations"].shape[0]
  counts = tf.constant(pad_locations(locations, levels), tf.int32)

  def on_tflite(batch):
    return [tf.constant(run(x, locations)) for x in batch]

  def on_saved_model(batch):
    return [serve(images=tf.constant(x), locations=counts)["probabilities"]
            for x in batch]

  times = cost.time_interleaved(
      {"tflite": (on_tflite, images, count),
       "saved_model": (on_saved_model, images, count)}, warmup=3, repeats=9)
  return (float(np.median(times["tflite"])),
          float(np.median(times["saved_model"])))


def alternatives(model: TNet, tflite_path: str, data_cfg: DataConfig,
                 locations: Sequence[int], count: int) -> dict:
  """The designs not taken, measured against the float file at
  ``tflite_path``: the crop as a select-TF (Flex) op, and one file per
  locations setting (static shapes) instead of locations as an input."""
  channels = data_lib.channels(data_cfg)
  input_hw = model.config.input_size or data_cfg.image_size
  select = tflite.convert(model, input_hw, channels, crop="select")
  images = compress.first_images(data_cfg, data_cfg.eval_split, count)
  try:
    tflite.Interpreter(select)(images[0], locations)
    select_error = None
  except RuntimeError as err:  # no Flex delegate in this runtime
    select_error = str(err).splitlines()[0][:200]
  fixed = tflite.Interpreter(tflite.convert(model, input_hw, channels,
                                            locations=locations))
  with open(tflite_path, "rb") as fh:
    chosen = tflite.Interpreter(fh.read())
  as_tensor = lambda fn: lambda batch: [tf.constant(fn(x)) for x in batch]
  times = cost.time_interleaved(
      {"input": (as_tensor(lambda x: chosen(x, locations)), images, count),
       "fixed": (as_tensor(fixed), images, count)}, warmup=3, repeats=9)
  return {
      "select_ops_crop": {"tflite_bytes": len(select),
                          "zipped_bytes": tflite.zipped_bytes(select),
                          "interpreter_error": select_error},
      "fixed_locations_file": {
          "locations": total_locations(locations),
          "ms_tflite": float(np.median(times["fixed"])),
          "ms_tflite_locations_input": float(np.median(times["input"]))}}


def float_row(experiment, root: str, options, settings, timing) -> dict:
  model = tasks.require_tnet(runs.load(FLAGS.init_checkpoint).task,
                             "the compression table")
  artifacts = {"model": model, **compress.write_artifacts(
      model, os.path.join(root, "float"), experiment.data, options,
      "float")}
  row = measure("float", artifacts, experiment.data, settings, timing,
                FLAGS.timing_images, experiment.eval_examples)
  row["alternatives"] = alternatives(model, artifacts["tflite"],
                                     experiment.data, timing,
                                     FLAGS.timing_images)
  return row


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    methods, options, experiment, root = compress_cli.parse(FLAGS)
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  except FileNotFoundError as err:
    raise SystemExit(f"error: {err}") from None
  settings = experiment.train.eval_locations or (
      experiment.model.locations,)
  timing = max(settings, key=total_locations)  # the best, on the benchmark
  rows = [float_row(experiment, root, options, settings, timing)]
  for method in methods:
    started = time.time()
    out = os.path.join(root, method)
    artifacts = compress.compress(method, experiment, out,
                                  FLAGS.init_checkpoint, options)
    variant = (f"prune_{round(100 * options.sparsity)}"
               if method == "prune" else method)
    row = measure(variant, artifacts, experiment.data, settings, timing,
                  FLAGS.timing_images, experiment.eval_examples)
    row["seconds"] = time.time() - started
    with open(os.path.join(out, "compression.json"), "w") as fh:
      json.dump(row, fh, indent=1)
    rows.append(row)
    print(json.dumps(row))
  if FLAGS.table:
    with open(FLAGS.table, "w") as fh:
      json.dump(rows, fh, indent=1)
    logging.info("wrote %s", FLAGS.table)
    print(f"wrote {FLAGS.table}; command: python -m benchmarks.compression "
          + " ".join(sys.argv[1:]))


if __name__ == "__main__":
  runner.run(None, main, define_flags)
