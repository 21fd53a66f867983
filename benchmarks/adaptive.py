"""Adaptive attention against fixed k, recorded: accuracy and mean locations
once (they do not depend on the machine), the batch-1 and batch-8 times of
every case in turns on the same images, repeated on an idle machine
(``record.guarded``).

  python -m benchmarks.adaptive --benchmark=synthetic
  python -m benchmarks.adaptive --benchmark=megapixel_mnist

Each needs the benchmark's trained run (``python -m
tnet_tf.experiments.synthetic`` — what ``make demo`` trains — and ``python
-m tnet_tf.experiments.megapixel_mnist``). Writes the record
``benchmarks/adaptive_<benchmark>.json`` (every run, the load, the spread of
the time ratios) and, when no run was disturbed,
``experiments/<benchmark>/adaptive.json`` (``--rows_out``) — the rows of
``tnet_tf.inference.adaptive`` with the runs' mean times — and its plot.
"""
from __future__ import annotations

import copy
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import record  # noqa: E402
from tnet_tf.cli import adaptive as adaptive_cli  # noqa: E402
from tnet_tf.inference import adaptive  # noqa: E402

FLAGS = flags.FLAGS

# the benchmark's run, its largest k (the run's own locations), the
# thresholds, and a halting module fitted afresh (the record's own)
PRESETS = {
    "synthetic": {"run_dir": "runs/synthetic/tnet", "max_locations": 12,
                  "thresholds": "0.5,0.7,0.8,0.9,0.95,0.99",
                  "learned_thresholds": "0.8,0.9,0.93,0.95,0.97,0.99",
                  "fit_halting": "true"},
    "megapixel_mnist": {"run_dir": "runs/megapixel_mnist/tnet",
                        "max_locations": 6,
                        "thresholds": "0.3,0.4,0.5,0.7,0.9",
                        "learned_thresholds": "0.7,0.8,0.85,0.9,0.95",
                        "fit_halting": "true"},
}


def define_flags() -> None:
  flags.DEFINE_enum("benchmark", None, sorted(PRESETS), "Which benchmark "
                    "(sets --run_dir, --max_locations and the thresholds "
                    "unless given).")
  adaptive_cli.define_flags()
  flags.DEFINE_string("rows_out", None, "The rows with the mean times "
                      "(default experiments/<benchmark>/adaptive.json).")
  record.define_flags("benchmarks/adaptive.json")
  flags.adopt_module_key_flags(record)
  flags.adopt_module_key_flags(adaptive_cli)


def apply_preset() -> str:
  name = FLAGS.benchmark
  for key, value in PRESETS[name].items():
    if not FLAGS[key].present:
      FLAGS[key].parse(value)
  if not FLAGS["out"].present:
    FLAGS.out = f"benchmarks/adaptive_{name}.json"
  return name


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.benchmark:
    raise app.UsageError("--benchmark is required")
  name = apply_preset()
  if not os.path.isdir(FLAGS.run_dir):
    raise SystemExit(f"error: {FLAGS.run_dir} not found: train it first "
                     f"(python -m tnet_tf.experiments.{name})")
  setup = adaptive_cli.Setup()
  rows = setup.evaluate()
  adaptive.print_rows(rows)
  timed = []

  def measure() -> dict:
    mine = copy.deepcopy(rows)
    adaptive.timings(setup.network, setup.images, mine, setup.k,
                     FLAGS.repeats, setup.schedule, setup.halting)
    timed.append(mine)
    adaptive.print_rows(mine)
    result = adaptive.summary(mine, setup.k)
    out = {"ms_per_image": [r["ms_per_image"] for r in mine],
           "ms_per_image_b8": [r["ms_per_image_b8"] for r in mine],
           "summary": result}
    for rule, s in result["rules"].items():
      if s.get("time_fraction_b1") is not None:
        out[f"time_fraction_b1_{rule}"] = s["time_fraction_b1"]
    print(json.dumps(result), flush=True)
    return out

  keys = [f"time_fraction_b1_{rule}" for rule in setup.thresholds]
  status = record.guarded_by_flags(measure, keys)
  if status == 0:
    for i, row in enumerate(rows):
      for key in ("ms_per_image", "ms_per_image_b8"):
        row[key] = float(np.mean([t[i][key] for t in timed]))
    path = FLAGS.rows_out or os.path.join("experiments", name,
                                          "adaptive.json")
    adaptive.write(rows, path, setup.title)
    print(json.dumps(adaptive.summary(rows, setup.k)))
    print(f"wrote {path}")
  sys.exit(status)


if __name__ == "__main__":
  define_flags()
  app.run(main)
