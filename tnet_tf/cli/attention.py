"""The attention records of a trained TNet (``tnet_tf.inference.attention``).

  python -m tnet_tf.cli.attention --run_dir=runs/synthetic/tnet --locations=5 \\
      [--split=test] [--threshold=0.9]

Writes ``attention.jsonl`` and ``attention.csv`` (one row per image: the
attended cells, their probabilities, the coverage of the image),
``attention_summary.json`` and ``attention.png`` under ``--out``
(default ``<run_dir>/attention``).
"""
from __future__ import annotations

import dataclasses
import json
import os

from absl import app
from absl import flags
from absl import logging

from tnet_tf import data as data_lib
from tnet_tf import visualize
from tnet_tf.inference import attention
from tnet_tf.model.adaptive import supports_adaptive
from tnet_tf.training import runs


def define_flags() -> None:
  """Defined when run as a command (not on import: commands share names)."""
  flags.DEFINE_string("run_dir", None, "Run directory of a trained TNet.")
  flags.DEFINE_string("checkpoint", None, "Checkpoint (default: latest).")
  flags.DEFINE_list("locations", None,
                    "Locations per level (default: the run's).")
  flags.DEFINE_string("split", None, "Split (default: the run's eval split).")
  flags.DEFINE_string("data_dir", None, "Data dir (default: the run's).")
  flags.DEFINE_integer("max_examples", 0, "At most this many images (0: all).")
  flags.DEFINE_integer("batch_size", 16, "Batch size.")
  flags.DEFINE_integer("pictures", 8, "Images drawn in attention.png.")
  flags.DEFINE_string("out", None, "Output dir (default <run_dir>/attention).")
  flags.DEFINE_float("threshold", None, "Adaptive attention (two-level "
                     "TNets): each image stops once its top probability, or "
                     "the run's fitted halting score, reaches this, after at "
                     "most --locations cells (default: the cells the halting "
                     "module was fitted for); rows say num_locations.")


def main(argv) -> None:
  """Writes the attention table, coverage and overlays of a run."""
  f = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not f.run_dir:
    raise app.UsageError("--run_dir is required")
  try:
    loaded = runs.load(f.run_dir, f.checkpoint)
    model = loaded.task
    if model.levels == 1:
      raise ValueError(f"{f.run_dir} holds a whole-image model: attention "
                       "needs a TNet (more than one level)")
    data_cfg = loaded.experiment.data
    if f.data_dir:
      data_cfg = dataclasses.replace(data_cfg, data_dir=f.data_dir)
    split = f.split or data_cfg.eval_split
    locations = (model.check_locations([int(k) for k in f.locations])
                 if f.locations else model.default_locations)
    dataset = data_lib.build(split, data_cfg).batch(f.batch_size)
    halting = None
    if f.threshold is not None:
      if not supports_adaptive(model.network):
        raise ValueError("--threshold needs a two-level TNet without "
                         "feature weighting")
      halting = runs.halting_of(loaded)
      if halting is not None and not f.locations:  # the cells it was fit for
        locations = (halting.max_locations,)
    rows = attention.collect(model, dataset, locations, f.max_examples,
                             loaded.class_names, f.threshold, halting)
  except (FileNotFoundError, ValueError) as err:
    raise SystemExit(f"error: {err}") from None
  out = f.out or os.path.join(f.run_dir, "attention")
  result = attention.write(rows, out)
  if f.pictures > 0:
    batch = next(iter(dataset.unbatch().batch(f.pictures).take(1)))[0]
    output = model(batch, training=False, locations=locations)
    records = visualize.overlay_records(output)
    if f.threshold is not None:  # the boxes each image read
      read = {i: r["num_locations"] + 1 for i, r in enumerate(rows)}
      records = [{**r, "boxes": r["boxes"][:read[i]],
                  "levels": r["levels"][:read[i]]}
                 for i, r in enumerate(records)]
    visualize.attention_grid(list(batch.numpy()), records,
                             os.path.join(out, "attention.png"))
  logging.info("wrote %s: %s", out, result)
  print(json.dumps(result))


if __name__ == "__main__":
  define_flags()
  app.run(main)
