"""Cost profiler: GMACs (the paper's "FLOPs") and parameters.

``python -m tnet_tf.cli.profile`` (``make profile``) prints the paper's rows (Tables 1–2) next to
what this implementation costs; ``--json`` prints a JSON list instead.
MACs are counted on the traced graph of one image: every Conv2D,
DepthwiseConv2dNative, MatMul and BatchMatMul that actually runs.
"""
from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.model import baselines
from tnet_tf.model.cost import count_macs
from tnet_tf.config import preset
from tnet_tf.model.inputs import total_locations
from tnet_tf.model.tnet import TNet


def tnet_rows(config_name: str, input_size: Sequence[int],
              locations_list: Sequence[Sequence[int]],
              paper: Optional[dict] = None, **overrides) -> list[dict]:
  """One row per locations setting of a TNet preset at ``input_size``."""
  cfg = preset(config_name, input_size=tuple(input_size), **overrides)
  model = TNet(cfg)
  params = model.count_params()
  rows = []
  for locs in locations_list:
    locs = [int(k) for k in locs]
    macs = count_macs(lambda x, l=tuple(locs): model(
        x, training=False, locations=l)["logits"],
                      [1, *input_size, 3], tf.uint8)
    row = {"config": config_name, "input_size": list(input_size),
           "locations": locs, "total_locations": total_locations(locs),
           "gmacs": macs / 1e9, "params_m": params / 1e6}
    if paper and tuple(locs) in paper:
      row["paper_gmacs"] = paper[tuple(locs)]
    rows.append(row)
  return rows


def baseline_row(backbone: str, input_size: Sequence[int], num_classes: int,
                 paper_gmacs: Optional[float] = None,
                 paper_params_m: Optional[float] = None) -> dict:
  model = baselines.build_classifier(backbone, num_classes, input_size)
  macs = count_macs(lambda x: model(x, training=False), [1, *input_size, 3])
  row = {"config": backbone, "input_size": list(input_size), "locations": [],
         "total_locations": 0, "gmacs": macs / 1e9,
         "params_m": model.count_params() / 1e6, "num_classes": num_classes}
  if paper_gmacs is not None:
    row["paper_gmacs"] = paper_gmacs
  if paper_params_m is not None:
    row["paper_params_m"] = paper_params_m
  return row


# The paper's numbers (Tables 1–2), keyed by locations per level.
PAPER_IMAGENET = {(): 1.82, (1,): 3.63, (2,): 5.43, (3,): 7.24, (5,): 10.84}
PAPER_FMOW_448 = {(): 0.39, (1,): 0.77, (2,): 1.16, (3,): 1.55}
PAPER_FMOW_896 = {(2, 1): 1.94, (3, 1): 2.71}
PAPER_EFFICIENTNET = {224: 0.39, 448: 1.54, 896: 6.18}
CONFIGS = ("imagenet", "fmow", "bagnet77", "efficientnet-b0")


def paper_rows(configs: Sequence[str] = CONFIGS,
               baseline_sizes: Optional[Sequence[int]] = None) -> list[dict]:
  """The rows of the paper's cost tables for the named configurations."""
  rows = []
  for name in configs:
    if name == "imagenet":
      rows += tnet_rows("imagenet", (224, 224), [[], [1], [2], [3], [5]],
                        PAPER_IMAGENET)
    elif name == "fmow":
      # stage 1 (2 levels) at 448², stage 2 (3 levels) at 896²
      rows += tnet_rows("fmow", (448, 448), [[], [1], [2], [3]],
                        PAPER_FMOW_448)
      rows += tnet_rows("fmow_stage2", (896, 896), [[2, 1], [3, 1]],
                        PAPER_FMOW_896)
    elif name == "bagnet77":
      for size in baseline_sizes or (224,):
        rows.append(baseline_row("bagnet77", (size, size), 1000,
                                 18.42 if size == 224 else None, 20.55))
    elif name.startswith("efficientnet-"):
      for size in baseline_sizes or (224, 448, 896):
        is_b0 = name == "efficientnet-b0"
        rows.append(baseline_row(
            name, (size, size), 62,
            PAPER_EFFICIENTNET.get(size) if is_b0 else None,
            4.13 if is_b0 else None))
    else:
      raise ValueError(f"unknown configuration {name!r}; known: "
                       f"{list(CONFIGS)} or efficientnet-b0..b7")
  for row in rows:
    if row["config"] == "fmow_stage2":
      row["config"] = "fmow"
  return rows


def format_table(rows: Sequence[dict]) -> str:
  header = (f"{'config':<16} {'input':>9} {'locations':<10} {'GMACs':>7} "
            f"{'paper':>7} {'diff':>7} {'params (M)':>10}")
  lines = [header, "-" * len(header)]
  for row in rows:
    paper = row.get("paper_gmacs")
    diff = (f"{100 * (row['gmacs'] / paper - 1):+.1f}%" if paper else "")
    size = "x".join(str(s) for s in row["input_size"])
    lines.append(
        f"{row['config']:<16} {size:>9} {str(row['locations']):<10} "
        f"{row['gmacs']:>7.2f} {paper if paper else '':>7} {diff:>7} "
        f"{row['params_m']:>10.2f}")
  return "\n".join(lines)


_MEMORY_CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
args = json.loads(sys.argv[1])
if args["saved_model"]:
  serve = tf.saved_model.load(args["saved_model"]).signatures[
      "serving_default"]
  images = tf.constant(np.load(args["images"]))
  if args["resize"]:  # the downscaled model reads the canvas resized
    images = tf.cast(tf.round(tf.image.resize(
        tf.cast(images, tf.float32), [args["resize"]] * 2, "area")), tf.uint8)
  inputs = {"images": images}
  if args["locations"] is not None:
    inputs["locations"] = tf.constant(args["locations"], tf.int32)
  for _ in range(3):
    serve(**inputs)["probabilities"].numpy()
with open("/proc/self/status") as f:
  kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
print("PEAK", kb / 1024.0)
"""


def peak_memory_mb(saved_model: Optional[str], images: np.ndarray,
                   locations: Optional[Sequence[int]] = None,
                   resize: int = 0) -> float:
  """Peak resident memory (VmHWM, MB) of a fresh process that loads a
  SavedModel and classifies ``images`` with it three times (TensorFlow
  alone: no project code). ``saved_model=None`` measures the floor: the
  same process without a model."""
  import os
  import subprocess
  import sys
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "images.npy")
    np.save(path, images)
    args = json.dumps({"saved_model": saved_model, "images": path,
                       "locations": (None if locations is None
                                     else [int(k) for k in locations]),
                       "resize": resize})
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, args], capture_output=True,
        text=True, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  if proc.returncode != 0 or "PEAK" not in proc.stdout:
    raise RuntimeError(f"memory measurement failed: {proc.stderr[-2000:]}")
  return float(proc.stdout.split("PEAK", 1)[1].split()[0])
