"""The cost of the three resamplings (``tnet_tf.model.resampling``): TNet-B0 (the
fMoW stage-2 architecture) at 896², [2, 1] locations, batch 1 and 8, the
three models timed in turns in one process (TensorFlow, as the SavedModel
serves).

  python -m benchmarks.resampling        # two recorded runs
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import record  # noqa: E402
from tnet_tf.model import cost  # noqa: E402
from tnet_tf.config import preset  # noqa: E402
from tnet_tf.model.tnet import TNet  # noqa: E402
from tnet_tf.model.resampling import RESAMPLINGS  # noqa: E402

FLAGS = flags.FLAGS
SIZE, LOCATIONS = 896, (2, 1)


def define_flags() -> None:
  flags.DEFINE_integer("repeats", 9, "Timed rounds per case (median).")
  record.define_flags("benchmarks/resampling.json")
  flags.adopt_module_key_flags(record)  # listed by --help


def measure() -> dict:
  tf.random.set_seed(0)
  models = {name: TNet(preset("fmow_stage2", input_size=None,
                              resampling=name)) for name in RESAMPLINGS}
  out = {}
  for batch in (1, 8):
    images = tf.constant(np.random.default_rng(0).integers(
        0, 256, (batch, SIZE, SIZE, 3), np.uint8))
    cases = {name: (tf.function(lambda x, m=m: m(
        x, training=False, locations=LOCATIONS)["logits"]), images, batch)
             for name, m in models.items()}
    times = cost.time_interleaved(cases, 2, FLAGS.repeats)
    for name, t in times.items():
      out[f"{name}_ms_b{batch}"] = float(np.median(t))
    for name in RESAMPLINGS:
      out[f"{name}_over_align_corners_b{batch}"] = (
          out[f"{name}_ms_b{batch}"] / out[f"align_corners_ms_b{batch}"])
  print(out, flush=True)
  return out


def main(argv):
  del argv
  # the ratios must agree between the runs; the times are in each run
  keys = [f"{n}_over_align_corners_b{b}" for n in RESAMPLINGS
          if n != "align_corners" for b in (1, 8)]
  sys.exit(record.guarded_by_flags(measure, keys))


if __name__ == "__main__":
  define_flags()
  app.run(main)
