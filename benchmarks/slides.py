"""TNet on slides that do not fit in memory: generated pyramidal TIFFs of
about 0.1, 1, 10 and 25 gigapixels, read region by region
(``tnet_tf.data.regions``) by TNet-B0 (the fMoW stage-2 architecture, random
weights: the reads and the compute do not depend on them) at [2, 1]
locations.

  python -m benchmarks.slides          # two recorded runs -> slides.json

Per slide, in a fresh process (so that its peak RSS is the slide's): the
model is built and warmed up on a small image read through
``tnet_tf.data.regions`` (tracing its backbone once), then the slide is opened
and classified ``--repeats`` times (each time a fresh reader: no tile
cache carries over); ``seconds`` is the median of open + traverse,
``peak_rss_mb`` the process's peak resident memory (TensorFlow and the
model included), ``pixels_read_fraction`` the pixels decoded (whole tiles,
any level) over the level-0 pixels. The slides are generated once into
``--slide_dir`` (not timed) and reused; their pyramids halve down to one
256 px tile, as vips writes pyramidal TIFFs.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import record  # noqa: E402

FLAGS = flags.FLAGS
SIZES = (10240, 31744, 100352, 160000)  # 0.10, 1.0, 10.1, 25.6 GP
LOCATIONS = (2, 1)
# pyramids down to one tile, as ``vips tiffsave --pyramid`` writes them
# (scanners' files end in a thumbnail of about 1,000 px and a label)
MIN_LEVEL = 256


def define_flags() -> None:
  flags.DEFINE_list("sizes", [str(s) for s in SIZES],
                    "Slide sides in pixels (multiples of 2^8 keep the "
                    "generator's tissue tiles cached).")
  flags.DEFINE_string("slide_dir", "runs/benchmark_slides",
                      "Where the generated slides are kept.")
  flags.DEFINE_integer("repeats", 3, "Timed reads per slide (median).")
  record.define_flags("benchmarks/slides.json")
  flags.adopt_module_key_flags(record)  # listed by --help
  flags.DEFINE_string("child", None, "Internal: measure one slide.")


def slide_path(size: int) -> str:
  from tnet_tf.data import slides
  os.makedirs(FLAGS.slide_dir, exist_ok=True)
  path = os.path.join(FLAGS.slide_dir, f"slide_{size}_min{MIN_LEVEL}.tif")
  if not os.path.exists(path):
    start = time.perf_counter()
    slides.write(path + ".part", slides.SlideSpec(
        size=size, seed=size, min_level_px=MIN_LEVEL))
    os.replace(path + ".part", path)
    print(f"generated {path} ({os.path.getsize(path) / 1e6:.0f} MB) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
  return path


def measure_one(path: str, repeats: int) -> dict:
  """In the child process: one slide, ``repeats`` timed reads."""
  import tensorflow as tf
  from tnet_tf.data import regions
  from tnet_tf.config import preset
  from tnet_tf.model.tnet import TNet
  tf.random.set_seed(0)
  model = TNet(preset("fmow_stage2", input_size=None))
  # warm up the path measured: an eager traversal read through regions
  model(regions.Regions([regions.ArraySource(
      np.zeros([896, 896, 3], np.uint8))]), locations=LOCATIONS)
  times, fraction, probs = [], None, None
  for _ in range(repeats):
    start = time.perf_counter()
    source = regions.open_source(path)
    out = model(regions.Regions([source]), locations=LOCATIONS)
    probs = tf.nn.softmax(out["logits"]).numpy()
    times.append(time.perf_counter() - start)
    h, w = source.level_shapes[0]
    fraction = source.decoded_pixels / (h * w)
    levels = len(source.level_shapes)
    source.close()
  return {"gigapixels": h * w / 1e9, "side_px": h,
          "pyramid_levels": levels, "seconds": float(np.median(times)),
          "seconds_all": times,
          "peak_rss_mb": resource.getrusage(
              resource.RUSAGE_SELF).ru_maxrss / 1024,
          "pixels_read_fraction": fraction,
          "file_mb": os.path.getsize(path) / 1e6,
          "top_probability": float(probs.max())}


def full_resolution_needs(side: int) -> dict:
  """What EfficientNet-B0 on the whole slide at full resolution would need:
  its MACs grow with the pixels (0.39 GMACs at 224², Tan & Le 2019), its
  input alone is 3 bytes a pixel, its first feature map (stride 2, 32
  channels, float32) 32 bytes a pixel."""
  pixels = side * side
  return {"gmacs": 0.39 * pixels / 224 ** 2, "input_gb": 3 * pixels / 1e9,
          "first_feature_map_gb": 32 * pixels / 1e9}


def measure() -> dict:
  rows = []
  for size in [int(s) for s in FLAGS.sizes]:
    path = slide_path(size)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.slides", f"--child={path}",
         f"--repeats={FLAGS.repeats}"], capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode:
      raise RuntimeError(f"measuring {path} failed:\n"
                         f"{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["full_resolution_efficientnet_b0"] = full_resolution_needs(size)
    rows.append(row)
    print(f"{row['gigapixels']:7.2f} GP  {row['seconds']:6.2f} s  "
          f"{row['peak_rss_mb']:7.0f} MB  "
          f"{100 * row['pixels_read_fraction']:.4f}% read", flush=True)
  return {"slides": rows,
          "time_ratio_largest_over_smallest":
              rows[-1]["seconds"] / rows[0]["seconds"]}


def table(record_: dict) -> str:
  lines = ["| gigapixels | side px | s / slide | peak RSS MB | level-0 "
           "pixels read | EN-B0 full res: GMACs | its input | its first "
           "map |", "|---|---|---|---|---|---|---|---|"]
  for row in record_["slides"]:
    full = row["full_resolution_efficientnet_b0"]
    lines.append(
        f"| {row['gigapixels']:.2f} | {row['side_px']:,} | "
        f"{row['seconds']:.2f} | {row['peak_rss_mb']:.0f} | "
        f"{100 * row['pixels_read_fraction']:.4f}% | {full['gmacs']:,.0f} | "
        f"{full['input_gb']:.1f} GB | {full['first_feature_map_gb']:.0f} GB"
        " |")
  return "\n".join(lines)


def _merge(path: str) -> None:
  """The record's per-slide figures: the mean of the runs' seconds, the
  largest peak RSS and read fraction."""
  with open(path, encoding="utf-8") as f:
    rec = json.load(f)
  runs = [run["slides"] for run in rec["runs"]]
  slides = []
  for rows in zip(*runs):
    row = dict(rows[0])
    row["seconds"] = sum(r["seconds"] for r in rows) / len(rows)
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rows)
    row["pixels_read_fraction"] = max(r["pixels_read_fraction"]
                                      for r in rows)
    del row["seconds_all"]
    slides.append(row)
  rec = {"slides": slides, **rec}
  with open(path, "w", encoding="utf-8") as f:
    json.dump(rec, f, indent=1)
    f.write("\n")
  print(table(rec))


def main(argv):
  del argv
  if FLAGS.child:
    print(json.dumps(measure_one(FLAGS.child, FLAGS.repeats)))
    return
  for size in [int(s) for s in FLAGS.sizes]:
    slide_path(size)  # generated before the timed runs
  status = record.guarded_by_flags(measure,
                                   ["time_ratio_largest_over_smallest"])
  out = (FLAGS.out if status == 0 else
         os.path.splitext(FLAGS.out)[0] + ".disturbed.json")
  _merge(out)
  sys.exit(status)


if __name__ == "__main__":
  define_flags()
  app.run(main)
