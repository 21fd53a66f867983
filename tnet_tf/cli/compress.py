"""Compresses a trained TNet (``tnet_tf.tools.compress``): pruning,
quantisation-aware training or post-training int8, one run each.

  python -m tnet_tf.cli.compress --method=prune,ptq_int8 \\
      --init_checkpoint=RUN_DIR --run_dir=runs/compressed [training flags]

Each method's run directory gets its weights, a SavedModel and a ``.tflite``
file; one JSON line per method is printed.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from tnet_tf.cli import runner
from tnet_tf.config import Experiment
from tnet_tf.tools import compress
from tnet_tf.training import runs
from tnet_tf.training import tasks

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_list("method", None, f"Compression methods, one run each: "
                    f"{', '.join(compress.METHODS)}.", **d)
  flags.DEFINE_float("sparsity", 0.5, "prune: final fraction of zero "
                     "weights.", **d)
  flags.DEFINE_float("pruning_end", 0.6,
                     "prune: fraction of the fine-tuning steps after which "
                     "the target sparsity is reached (polynomial from 0).",
                     **d)
  flags.DEFINE_integer("pruning_frequency", 10,
                       "prune: steps between mask updates.", **d)
  flags.DEFINE_integer("calibration_examples", 64,
                       "int8: training images for the representative "
                       "dataset.", **d)


def parse(fv: flags.FlagValues) -> tuple[list[str], Options, Experiment,
                                         str]:
  """Methods, options, the fine-tuning experiment and the output root."""
  methods = compress.check_methods(fv.method or [])
  options = compress.Options(fv.sparsity, fv.pruning_end, fv.pruning_frequency,
                    fv.calibration_examples)
  if not fv.init_checkpoint:
    raise ValueError("--init_checkpoint (the trained TNet: a run "
                     "directory or a checkpoint) is required")
  flagged, root = runner.experiment_and_run_dir(fv)
  experiment = compress.source_experiment(fv.init_checkpoint, flagged)
  tasks.require_tnet(runs.load(fv.init_checkpoint).task, "compression")
  return methods, options, experiment, root


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    methods, options, experiment, root = parse(FLAGS)
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  except FileNotFoundError as err:
    raise SystemExit(f"error: {err}") from None
  try:
    for method in methods:
      out = compress.compress(method, experiment, os.path.join(root, method),
                     FLAGS.init_checkpoint, options)
      print(json.dumps({"method": method, "tflite": out["tflite"],
                        "saved_model": out["saved_model"]}))
  except (ValueError, FileNotFoundError) as err:
    logging.error("%s", err)
    raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
  runner.run(None, main, define_flags)
