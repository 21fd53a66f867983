"""Training on a folder of slides in bounded memory: the folder entry point
on generated pyramidal slides of two sizes (the same folder layout, the same
model), each run in a fresh process whose peak RSS is recorded.

  python -m benchmarks.slide_training     # -> slide_training.json

Per size: 8 training and 4 validation slides (``tnet_tf.data.slides``, 3
lesions a slide, disc or ring), the toy TNet at r = 64 (3×3 grid, cells
half the parent, 2 locations), ``--steps`` steps of batch 8, then the
evaluation; ``peak_rss_mb`` is the training process's peak resident memory
(TensorFlow included), ``seconds_per_step`` the training time over the
steps. A decoded batch of 8 slides of the larger size would need
``8 × side² × 3`` bytes before the first layer; the record states it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
SIZES = (4096, 32768)
# the folder entry point in this process, then its own peak RSS (KB)
CHILD = """
import resource, runpy, sys
sys.argv = ["tnet_tf.experiments.folder"] + sys.argv[2:]
try:
  runpy.run_module("tnet_tf.experiments.folder", run_name="__main__")
except SystemExit as exit_:
  if exit_.code:
    raise
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def define_flags() -> None:
  flags.DEFINE_list("sizes", [str(s) for s in SIZES], "Slide sides (px).")
  flags.DEFINE_integer("steps", 30, "Training steps per size.")
  flags.DEFINE_string("work_dir", "runs/benchmark_slide_training",
                      "Slides and runs are kept here.")
  flags.DEFINE_string("out", "benchmarks/slide_training.json",
                      "Results file.")


def make_folder(root: str, size: int) -> None:
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "tests"))
  from fakes import folder as fake_folder  # the tests' slide tree
  if not os.path.isdir(root):
    fake_folder.make_slide_tree(root + ".part", size=size, train=4, val=2,
                                lesion_px=size // 8)
    os.replace(root + ".part", root)


def main(argv):
  del argv
  rows = []
  for size in [int(s) for s in FLAGS.sizes]:
    root = os.path.join(FLAGS.work_dir, f"slides_{size}")
    make_folder(root, size)
    run_dir = os.path.join(FLAGS.work_dir, f"run_{size}")
    if os.path.isdir(run_dir):
      import shutil
      shutil.rmtree(run_dir)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "--", f"--data_dir={root}",
         f"--run_dir={run_dir}", "--preset=toy", f"--input_size={size}",
         "--base_resolution=64", "--eval_locations=0;2",
         f"--train_steps={FLAGS.steps}", "--batch_size=8",
         f"--log_every={FLAGS.steps}", "--eval_every=0", "--export=false"],
        capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    seconds = time.perf_counter() - start
    lines = [l for l in result.stdout.splitlines() if l.startswith("PEAK ")]
    if result.returncode or not lines:
      raise SystemExit(f"training on {root} failed:\n"
                       f"{result.stderr[-3000:]}")
    peak = float(lines[-1].split()[1])
    with open(os.path.join(run_dir, "summary.json")) as fh:
      summary = json.load(fh)
    rows.append({
        "side_px": size, "gigapixels_per_slide": size * size / 1e9,
        "slides": 12, "steps": summary["step"],
        "seconds_per_step": summary["train_seconds"] / summary["step"],
        "process_seconds": seconds, "peak_rss_mb": peak / 1024,
        "decoded_batch_would_need_gb": 8 * size * size * 3 / 1e9})
    print(f"{size:>6} px slides: peak RSS {peak / 1024:.0f} MB, "
          f"{rows[-1]['seconds_per_step']:.3f} s/step", flush=True)
  record = {"command": "python -m benchmarks.slide_training " +
                       " ".join(sys.argv[1:]), "sizes": rows}
  with open(FLAGS.out, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
