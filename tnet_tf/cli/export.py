"""Exports a trained run as a serving SavedModel (``tnet_tf.inference.export``).

  python -m tnet_tf.cli.export --run_dir=runs/fmow/tnet_stage2 [--output=DIR]

With a fitted halting module in the run (``python -m tnet_tf.cli.adaptive``),
``serve_adaptive`` stops by its score.
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from tnet_tf import data as data_lib
from tnet_tf.inference import export
from tnet_tf.training import runs

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined when run as a command (not on import: commands share names)."""
  flags.DEFINE_string("run_dir", None, "Run directory to export.")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint to export (default: the run's latest).")
  flags.DEFINE_string("output", None,
                      "SavedModel directory (default <run_dir>/saved_model).")
  flags.DEFINE_list("locations", None,
                    "Default locations per level recorded in the metadata "
                    "(default: the run's).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.run_dir:
    raise app.UsageError("--run_dir is required")
  try:
    loaded = runs.load(FLAGS.run_dir, FLAGS.checkpoint)
    halting = runs.halting_of(loaded)
  except (FileNotFoundError, ValueError) as err:
    raise SystemExit(f"error: {err}") from None
  output = FLAGS.output or os.path.join(FLAGS.run_dir, "saved_model")
  locations = ([int(k) for k in FLAGS.locations]
               if FLAGS.locations is not None else None)
  export.export_saved_model(loaded.task, output, loaded.class_names,
                            data_lib.channels(loaded.experiment.data),
                            locations, halting)
  logging.info("exported %s (from %s%s)", output, loaded.checkpoint,
               ", with its halting module" if halting is not None else "")
  print(output)


if __name__ == "__main__":
  define_flags()
  app.run(main)
