"""Batch prediction on Apache Beam (``tnet_tf.inference.beam``).

  python -m tnet_tf.cli.beam_predict --model=RUN_DIR|SAVED_MODEL \\
      --output=DIR [--locations=2,1] [--batch_size=8] PATH... \\
      -- --runner=DirectRunner --direct_num_workers=2 \\
         --direct_running_mode=multi_processing

PATHs are files, folders, globs, lists (``.txt``) or remote globs
(``gs://bucket/slides/*.svs``). Arguments after ``--`` that start with
``--`` are Beam's pipeline options (the runner and its settings: README,
"Batch prediction on Apache Beam"). Every file gets a row; the pipeline
does not fail for a file. Prints the rows' count and the failed ones'.
"""
from __future__ import annotations

import logging as std_logging
import sys
import time
from typing import Sequence

from absl import app
from absl import flags

from tnet_tf.data import regions


def define_flags() -> None:
  flags.DEFINE_string("model", None, "A run directory or a SavedModel "
                      "(local or remote).")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint of a run directory (default: latest).")
  flags.DEFINE_list("locations", None,
                    "Cells attended per region at each level after the "
                    "first (default: the model's).")
  flags.DEFINE_string("output", None, "Output folder (local or remote).")
  flags.DEFINE_integer("batch_size", 8, "Files per RunInference batch.")
  flags.DEFINE_float("threshold", None, "Adaptive attention (as predict's "
                     "--threshold).")
  flags.DEFINE_integer("timeout_seconds", None,
                       "A batch that takes longer goes to the dead-letter "
                       "output (its files get error rows).")
  flags.DEFINE_integer("max_megapixels", regions.MAX_PIXELS // 2 ** 20,
                       "Largest image decoded whole.")


def main(argv: Sequence[str]) -> None:
  try:
    from tnet_tf.inference import beam as beam_lib
  except ImportError as err:  # the extra is not installed
    raise SystemExit(f"error: {err}") from None
  from apache_beam.options.pipeline_options import PipelineOptions
  import apache_beam as beam

  flags_ = flags.FLAGS
  if not flags_.model or not flags_.output:
    raise app.UsageError("--model and --output are required")
  beam_args = [a for a in argv[1:] if a.startswith("--")]
  paths = beam_lib.expand([a for a in argv[1:] if not a.startswith("--")])
  if not paths:
    raise app.UsageError("no PATH given (files, folders, globs or a .txt "
                         "list of paths)")
  handler = beam_lib.TNetModelHandler(
      flags_.model, flags_.checkpoint,
      None if flags_.locations is None else [int(k) for k in
                                             flags_.locations],
      flags_.batch_size, flags_.max_megapixels * 2 ** 20, flags_.threshold)
  if flags_.verbosity <= 0:  # Beam and its workers log every step at INFO
    std_logging.getLogger().setLevel(std_logging.WARNING)
    if not any(a.startswith("--default_sdk_harness_log_level")
               for a in beam_args):
      beam_args.append("--default_sdk_harness_log_level=WARNING")
  start = time.perf_counter()
  print(f"{len(paths)} files, Beam options: {' '.join(beam_args) or '-'}",
        file=sys.stderr)
  with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
    beam_lib.predict_pipeline(pipeline, paths, handler, flags_.output,
                              flags_.timeout_seconds)
  rows = beam_lib.read_rows(flags_.output)
  failed = sum(r["error"] is not None for r in rows)
  print(f"{len(rows)} images, {failed} failed, "
        f"{time.perf_counter() - start:.1f} s: {flags_.output}")
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
