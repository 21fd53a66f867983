"""Predict alone against Apache Beam's DirectRunner with 2 workers, on the
same mixed collection: files per second and peak memory per process.

  python -m benchmarks.predict_scale      # two recorded runs -> predict_scale.json

The collection (generated once into ``--collection_dir``, not timed):
``--slides`` pyramidal slides of ``--slide_px`` px a side with 512 px JPEG
tiles (as scanners write them), ``--photos`` photos (PNG and JPEG, 768×1024)
and the damaged copies of ``tnet_tf.tools.damage.mixed_collection`` (a
slide, a PNG and a JPEG, each broken in every way it knows). The model is
TNet-B0 (the fMoW stage-2 architecture, 10 classes, random weights: reads
and compute do not depend on them) written as a run directory.

Each command runs as a user runs it, in a fresh process with TensorFlow's
start-up: ``python -m tnet_tf.cli.predict`` and ``python -m
tnet_tf.cli.beam_predict ... -- --runner=DirectRunner
--direct_num_workers=2 --direct_running_mode=multi_processing``.
``files_per_s`` is the files over the command's wall time; the process
tree is sampled every 0.1 s and each process's peak resident memory
(VmHWM) kept: ``peak_rss_mb`` of the busiest process (for Beam, a worker,
each of which loads the model), ``peak_total_rss_mb`` the largest sum over
the tree at one sample. Rows are checked to be one per file in both.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import record  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("collection_dir", "runs/benchmark_predict",
                      "Where the collection and the model are kept.")
  flags.DEFINE_integer("slides", 6, "Good slides in the collection.")
  flags.DEFINE_integer("slide_px", 16384, "Their side in pixels.")
  flags.DEFINE_integer("photos", 40, "Photos (half PNG, half JPEG).")
  record.define_flags("benchmarks/predict_scale.json")
  flags.adopt_module_key_flags(record)


def collection() -> tuple[str, str, int]:
  """(run directory, list of paths, files): made once."""
  from PIL import Image
  from tnet_tf.data import slides
  from tnet_tf.tools import damage
  root = FLAGS.collection_dir
  listing = os.path.join(root, f"files_{FLAGS.slides}_{FLAGS.slide_px}_"
                         f"{FLAGS.photos}.txt")
  run_dir = os.path.join(root, "tnet_b0")
  if not os.path.isfile(os.path.join(run_dir, "classes.json")):
    make_run(run_dir)
  if not os.path.isfile(listing):
    start = time.perf_counter()
    paths = [p for p, _ in damage.mixed_collection(
        os.path.join(root, "mixed"))]
    folder = os.path.join(root, "slides")
    os.makedirs(folder, exist_ok=True)
    for i in range(FLAGS.slides):
      path = os.path.join(folder, f"slide_{FLAGS.slide_px}_{i}.tif")
      if not os.path.isfile(path):
        slides.write(path + ".part", slides.SlideSpec(
            size=FLAGS.slide_px, seed=i, label=i % 2, tile=512,
            min_level_px=512, compression="jpeg"))
        os.replace(path + ".part", path)
      paths.append(path)
    rng = np.random.default_rng(0)
    folder = os.path.join(root, "photos")
    os.makedirs(folder, exist_ok=True)
    for i in range(FLAGS.photos):
      path = os.path.join(folder, f"photo_{i}.{'png' if i % 2 else 'jpg'}")
      if not os.path.isfile(path):
        # smooth colour fields (compress as photos do), not noise
        field = rng.uniform(0, 255, [6, 8, 3]).astype(np.uint8)
        Image.fromarray(field).resize((1024, 768), Image.BICUBIC).save(path)
      paths.append(path)
    with open(listing, "w", encoding="utf-8") as f:
      f.write("\n".join(os.path.abspath(p) for p in paths) + "\n")
    print(f"collection of {len(paths)} files in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
  with open(listing, encoding="utf-8") as f:
    files = sum(1 for line in f if line.strip())
  return run_dir, listing, files


def make_run(run_dir: str) -> None:
  import tensorflow as tf
  from tnet_tf.config import DataConfig, Experiment, preset
  from tnet_tf.training import runs, tasks
  experiment = Experiment(model=preset("fmow_stage2", input_size=None,
                                       num_classes=10),
                          data=DataConfig(name="folder"))
  tf.random.set_seed(0)
  task = tasks.create("tnet", experiment.model, experiment.loss)
  task(tf.zeros([1, 896, 896, 3], tf.uint8), training=False)
  runs.write_run(run_dir, experiment, task, [f"c{i}" for i in range(10)])


def run_measured(command: list[str]) -> dict:
  """Wall time and peak memory of a command's process tree."""
  import psutil
  start = time.perf_counter()
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  peaks, total = {}, 0
  root = psutil.Process(process.pid)
  while process.poll() is None:
    try:
      tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
      break
    now = 0
    for p in tree:
      try:
        with open(f"/proc/{p.pid}/status", encoding="utf-8") as f:
          status = {l.split(":")[0]: l.split()[1] for l in f
                    if l.startswith(("VmHWM", "VmRSS"))}
        peaks[p.pid] = max(peaks.get(p.pid, 0), int(status["VmHWM"]))
        now += int(status["VmRSS"])
      except (OSError, KeyError):
        continue
    total = max(total, now)
    time.sleep(0.1)
  out, err = process.communicate()
  seconds = time.perf_counter() - start
  if process.returncode not in (0, 1):  # 1: some files failed, as expected
    raise RuntimeError(f"{command[2]} failed:\n{err[-3000:]}")
  return {"seconds": seconds, "processes": len(peaks),
          "peak_rss_mb": max(peaks.values()) / 1024,
          "peak_total_rss_mb": total / 1024, "stdout": out.strip()}


def count_rows(pattern: str) -> int:
  rows = 0
  for path in glob.glob(pattern):
    with open(path, encoding="utf-8") as f:
      rows += sum(1 for line in f if line.strip())
  return rows


def measure() -> dict:
  run_dir, listing, files = collection()
  scratch = tempfile.mkdtemp(prefix="tnet_predict_scale_")
  try:
    out = os.path.join(scratch, "predict")
    alone = run_measured([sys.executable, "-m", "tnet_tf.cli.predict",
                          f"--model={run_dir}", f"--output={out}",
                          "--noresume", listing])
    alone["rows"] = count_rows(os.path.join(out, "predictions.jsonl"))
    out = os.path.join(scratch, "beam")
    beam = run_measured([sys.executable, "-m", "tnet_tf.cli.beam_predict",
                         f"--model={run_dir}", f"--output={out}", listing,
                         "--", "--runner=DirectRunner",
                         "--direct_num_workers=2",
                         "--direct_running_mode=multi_processing"])
    beam["rows"] = count_rows(os.path.join(out, "predictions*.jsonl"))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  for name, row in (("predict", alone), ("beam", beam)):
    if row["rows"] != files:
      raise RuntimeError(f"{name} wrote {row['rows']} rows for {files} "
                         "files")
    row["files_per_s"] = files / row["seconds"]
    print(f"{name:8s} {row['files_per_s']:6.2f} files/s  "
          f"{row['seconds']:6.1f} s  peak {row['peak_rss_mb']:6.0f} MB per "
          f"process, {row['peak_total_rss_mb']:6.0f} MB in all "
          f"({row['processes']} processes)", flush=True)
  return {"files": files, "predict": alone, "beam_direct_2_workers": beam,
          "beam_over_predict_files_per_s":
              beam["files_per_s"] / alone["files_per_s"]}


def table(rec: dict) -> str:
  lines = ["| command | files | files/s | s | peak RSS per process MB | "
           "peak RSS in all MB | processes |", "|---|---|---|---|---|---|---|"]
  for run in rec["runs"]:
    for name in ("predict", "beam_direct_2_workers"):
      row = run[name]
      lines.append(
          f"| {name} | {run['files']} | {row['files_per_s']:.2f} | "
          f"{row['seconds']:.1f} | {row['peak_rss_mb']:.0f} | "
          f"{row['peak_total_rss_mb']:.0f} | {row['processes']} |")
  return "\n".join(lines)


def main(argv):
  del argv
  collection()  # made before the timed runs
  status = record.guarded_by_flags(measure,
                                   ["beam_over_predict_files_per_s"])
  out = (FLAGS.out if status == 0 else
         os.path.splitext(FLAGS.out)[0] + ".disturbed.json")
  with open(out, encoding="utf-8") as f:
    print(table(json.load(f)))
  sys.exit(status)


if __name__ == "__main__":
  define_flags()
  app.run(main)
