"""What stepping cell by cell costs when a cell is expensive: TNet-B0 (the
fMoW architecture, EfficientNet-B0 at 224² per cell, two levels, K = 6 of
a 3×3 grid of 896² images), ``call_adaptive`` (``tnet_tf.model.adaptive``)
made to stop every image after n cells against the fixed-k model at k = n
and k = K, batch 1 and 8, timed in turns (``record.guarded``: idle
machine, two runs).

  python -m benchmarks.adaptive_cost

The stop is forced by a halting module whose score is a step in the cells
read (accuracy plays no part: the weights are untrained), so the adaptive
call does exactly n steps of one cell. The recorded ratios:
``adaptive_over_fixed_K_b1_n<n>`` (what adaptive attention saves when
images stop after n cells) and ``adaptive_over_fixed_n_b1_n<n>`` (what the
stepping costs over reading the same n cells in one call).
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
from tnet_tf.model.adaptive import call_adaptive  # noqa: E402
from tnet_tf.model.layers import halting as halting_lib  # noqa: E402
from tnet_tf.model.tnet import TNet  # noqa: E402

FLAGS = flags.FLAGS
SIZE, K = 896, 6


def define_flags() -> None:
  flags.DEFINE_integer("repeats", 3, "Timed rounds per case (median).")
  flags.DEFINE_integer("images", 4, "Images timed at batch 1 (and one "
                       "batch of 8).")
  record.define_flags("benchmarks/adaptive_cost.json")
  flags.adopt_module_key_flags(record)


def stop_after(n: int) -> halting_lib.HaltingModule:
  """A halting module scoring ≥ 0.5 exactly once ``n`` cells are read."""
  module = halting_lib.HaltingModule(hidden=1, max_locations=K)
  kernel = np.zeros([len(halting_lib.FEATURES), 1], np.float32)
  kernel[halting_lib.FEATURES.index("read"), 0] = 1.0  # read / K
  module.hidden.set_weights([kernel, np.zeros([1], np.float32)])
  module.out.set_weights([np.full([1, 1], 100.0, np.float32),
                          np.full([1], -100.0 * (n - 0.5) / K, np.float32)])
  return module


def measure() -> dict:
  tf.random.set_seed(0)
  model = TNet(preset("fmow_stage2", input_size=None, levels=2,
                      locations=(K,)))
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (max(FLAGS.images, 8), SIZE, SIZE, 3),
                        np.uint8)
  counts = (0, 1, 2, 3, 4, K)
  out = {}
  for batch in (1, 8):
    chunks = ([tf.constant(images[i:i + 1]) for i in range(FLAGS.images)]
              if batch == 1 else [tf.constant(images[:8])])
    per = len(chunks) * batch
    cases = {}
    for n in counts:
      fixed = tf.function(lambda x, n=n: model(
          x, training=False, locations=[n])["logits"])
      cases[f"fixed_{n}"] = (lambda xs, f=fixed: [f(x) for x in xs],
                             chunks, per)
      halting = stop_after(n)
      adaptive = tf.function(lambda x, h=halting: call_adaptive(
          model, x, 0.5, K, rule="learned", halting=h)["logits"])
      read = call_adaptive(model, chunks[0], 0.5, K, rule="learned",
                           halting=halting)["num_locations"].numpy()
      assert (read == n).all(), (n, read)
      cases[f"adaptive_{n}"] = (lambda xs, f=adaptive: [f(x) for x in xs],
                                chunks, per)
    times = cost.time_interleaved(cases, 1, FLAGS.repeats)
    ms = {name: float(np.median(t)) for name, t in times.items()}
    for n in counts:
      out[f"fixed_ms_b{batch}_n{n}"] = ms[f"fixed_{n}"]
      out[f"adaptive_ms_b{batch}_n{n}"] = ms[f"adaptive_{n}"]
      out[f"adaptive_over_fixed_K_b{batch}_n{n}"] = (
          ms[f"adaptive_{n}"] / ms[f"fixed_{K}"])
      out[f"adaptive_over_fixed_n_b{batch}_n{n}"] = (
          ms[f"adaptive_{n}"] / ms[f"fixed_{n}"])
  print(f"{'n':>3} {'fixed b1':>9} {'adapt b1':>9} {'/fixed K':>9} "
        f"{'fixed b8':>9} {'adapt b8':>9} {'/fixed K':>9}")
  for n in counts:
    print(f"{n:>3} {out[f'fixed_ms_b1_n{n}']:9.1f} "
          f"{out[f'adaptive_ms_b1_n{n}']:9.1f} "
          f"{out[f'adaptive_over_fixed_K_b1_n{n}']:9.2f} "
          f"{out[f'fixed_ms_b8_n{n}']:9.1f} "
          f"{out[f'adaptive_ms_b8_n{n}']:9.1f} "
          f"{out[f'adaptive_over_fixed_K_b8_n{n}']:9.2f}", flush=True)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  keys = [f"adaptive_over_fixed_K_b1_n{n}" for n in (2, 3, 4)]
  sys.exit(record.guarded_by_flags(measure, keys))


if __name__ == "__main__":
  define_flags()
  app.run(main)
