"""Classifies new images and slides with a trained TNet
(``tnet_tf.inference.predict``).

  python -m tnet_tf.cli.predict --model=RUN_DIR|SAVED_MODEL [--locations=2,1]
      [--output=predictions] [--overlays] [--batch_size=8] PATH...

Every file gets a row (an error row if anything fails for it), written as
it is done; the same command again skips the files answered
(``--noresume``, ``--retry_failed``). The exit status is 1 if any failed.
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app
from absl import flags

from tnet_tf.data import regions
from tnet_tf.inference import predict


def define_flags() -> None:
  """Defined when run as a command (not on import: commands share names)."""
  flags.DEFINE_string("model", None, "A run directory or a SavedModel.")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint of a run directory (default: latest).")
  flags.DEFINE_list("locations", None,
                    "Cells attended per region at each level after the "
                    "first (default: the model's).")
  flags.DEFINE_string("output", "predictions", "Output directory.")
  flags.DEFINE_integer("batch_size", 8, "Images per batch (same-size "
                       "images that fit in memory are batched).")
  flags.DEFINE_bool("overlays", False, "Draw the boxes on each image.")
  flags.DEFINE_float("threshold", None,
                     "Adaptive attention (two-level TNets): each image stops "
                     "once its top class probability (or the run's fitted "
                     "halting score, tnet_tf.cli.adaptive) reaches this, after "
                     "at most --locations cells (default: the cells the "
                     "halting module was fitted for); rows give "
                     "num_locations.")
  flags.DEFINE_bool("resume", True,
                    "Keep the rows already in --output and skip their files "
                    "(--noresume: start the output over).")
  flags.DEFINE_bool("retry_failed", False,
                    "With --resume, predict the files of error rows again.")
  flags.DEFINE_integer("max_megapixels", regions.MAX_PIXELS // 2 ** 20,
                       "Largest image decoded whole; larger TIFFs are read "
                       "region by region, larger JPEG/PNG files fail.")


def main(argv: Sequence[str]) -> None:
  flags_ = flags.FLAGS
  if not flags_.model:
    raise app.UsageError("--model is required (a run directory or a "
                         "SavedModel)")
  paths = predict.expand_paths(argv[1:])
  if not paths:
    raise app.UsageError("no PATH given (files, folders, globs or a .txt "
                         "list of paths)")
  try:
    model = predict.load_model(flags_.model, flags_.checkpoint)
  except (FileNotFoundError, ValueError, OSError) as err:
    raise SystemExit(f"error: {err}") from None
  default = (model.adaptive_locations if flags_.threshold is not None
             else model.default_locations)
  locations = (default if flags_.locations is None
               else [int(k) for k in flags_.locations])
  if flags_.threshold is not None and not model.adaptive:
    raise app.UsageError("--threshold needs a two-level TNet without "
                         "feature weighting (a SavedModel with the "
                         "serve_adaptive signature)")
  try:
    summary = predict.run(model, paths, locations, flags_.output,
                          flags_.batch_size, flags_.overlays,
                          flags_.max_megapixels * 2 ** 20,
                          threshold=flags_.threshold, resume=flags_.resume,
                          retry_failed=flags_.retry_failed)
  except ValueError as err:  # the output holds rows of other settings
    raise SystemExit(f"error: {err}") from None
  skipped = (f" ({summary['skipped']} answered before, skipped)"
             if summary["skipped"] else "")
  print(f"{summary['images']} images, {summary['failed']} failed, "
        f"{summary['seconds']:.1f} s{skipped}: {summary['csv']}, "
        f"{summary['jsonl']}")
  if summary["failed"]:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
