"""The main job: TNet against two baselines on the built-in megapixel digits.

``python -m tnet_tf.experiments.synthetic`` (what ``make demo`` runs)
generates the canvases if they are not cached, trains TNet and the same
backbone on the canvas downscaled to the base resolution and on the full
canvas, evaluates TNet at several numbers of locations and writes into
``--run_dir``: ``results.json`` / ``results.md`` (accuracy, GMACs, ms/image
measured here), ``tradeoff.png`` (accuracy vs. GMACs, the paper's Fig. 1b),
``attention.png`` (attended regions per level, Fig. 1c), TensorBoard logs of
each run and a SavedModel of TNet.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tnet_tf import profile
from tnet_tf import visualize
from tnet_tf.data import megapixel_config
from tnet_tf.data import megapixel_digits
from tnet_tf.experiments import runner
from tnet_tf.export import export_saved_model
from tnet_tf.layers import grid
from tnet_tf.model import TNet

flags.DEFINE_integer("baseline_steps", 2000,
                     "Training steps of the downscaled baseline.")
flags.DEFINE_integer("full_resolution_steps", 800,
                     "Training steps of the full-resolution baseline.")
flags.DEFINE_integer("digit_size", 32, "Digit side on the canvas (px).")
flags.DEFINE_enum("texture", None, list(megapixel_digits.TEXTURES),
                  "Texture photo behind the digits.")
flags.DEFINE_integer("train_examples", 8000, "Training canvases.")
flags.DEFINE_integer("test_examples", 1000, "Test canvases.")
flags.DEFINE_integer("overlay_examples", 8, "Canvases in attention.png.")
flags.DEFINE_integer("timing_batch", 16, "Batch size of the ms/image timing.")
FLAGS = flags.FLAGS

DEFAULTS = {
    "preset": "synthetic", "dataset": "megapixel_digits",
    "run_dir": "runs/synthetic", "train_steps": 2500, "batch_size": 32,
    "checkpoint_every": 500, "log_every": 50, "learning_rate": 1e-3,
    "eval_locations": "0;1;2;3;5;8;12", "selection": "greedy",
    "eval_split": "test",
    "lambda_c": 0.3, "lambda_r": 0.3, "lambda_f": 0.5,
}


def _contains(regions: np.ndarray, digits: np.ndarray) -> np.ndarray:
  """[R, D]: at least half of digit d's box lies inside region r."""
  y0 = np.maximum(regions[:, None, 0], digits[None, :, 0])
  x0 = np.maximum(regions[:, None, 1], digits[None, :, 1])
  y1 = np.minimum(regions[:, None, 2], digits[None, :, 2])
  x1 = np.minimum(regions[:, None, 3], digits[None, :, 3])
  inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
  area = (digits[:, 2] - digits[:, 0]) * (digits[:, 3] - digits[:, 1])
  return inter >= 0.5 * area[None, :]


def all_regions(size: int, grid_size: int, cell_fraction: float,
                levels: int) -> list[np.ndarray]:
  """Every candidate region of levels 2..levels, in pixels."""
  cells = grid.cell_boxes(grid_size, cell_fraction)
  parents = np.array([[0.0, 0.0, 1.0, 1.0]])
  out = []
  for _ in range(levels - 1):
    parents = grid.child_boxes(
        tf.constant(parents[:, None, :]), tf.constant(cells[None])).numpy()
    parents = parents.reshape(-1, 4)
    out.append(parents * size)
  return out


def localization(model: TNet, dataset, locations, num_target: int) -> dict:
  """Share of attended regions holding a target digit, vs. random choice."""
  cfg = model.config
  hits = {}
  chance = {}
  counts = {}
  fn = tf.function(lambda x: model(x, training=False, locations=locations))
  candidates = {}  # canvas size -> every candidate region of every level
  for batch in dataset:
    out = fn(batch["image"])
    size = int(batch["image"].shape[1])
    boxes, levels = out["boxes"].numpy(), out["levels"].numpy()
    targets = batch["boxes"].numpy()[:, :num_target]
    if size not in candidates:
      candidates[size] = all_regions(size, cfg.grid_size, cfg.cell_fraction,
                                     int(levels.max()))
    for i in range(len(boxes)):
      for level in range(2, int(levels.max()) + 1):
        sel = boxes[i][levels == level]
        hit = _contains(sel, targets[i]).any(axis=1)
        rand = _contains(candidates[size][level - 2],
                         targets[i]).any(axis=1)
        hits[level] = hits.get(level, 0.0) + hit.sum()
        chance[level] = chance.get(level, 0.0) + rand.mean() * len(sel)
        counts[level] = counts.get(level, 0) + len(sel)
  total = sum(counts.values())
  return {"rate": sum(hits.values()) / total,
          "chance": sum(chance.values()) / total,
          "locations": list(locations),
          "per_level": {str(l): {"rate": hits[l] / counts[l],
                                 "chance": chance[l] / counts[l],
                                 "regions": counts[l]} for l in counts}}


def _timing_inputs(data_cfg, n):
  mcfg = megapixel_config(data_cfg)
  ds = megapixel_digits.dataset("test", mcfg, data_cfg.data_dir)
  return next(iter(ds.batch(n)))[0]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    model_cfg, loss_cfg, train_cfg, data_cfg, _ = runner.configs_from_flags()
    data_cfg = dataclasses.replace(
        data_cfg, options={
            "digit_size": FLAGS.digit_size, "texture": FLAGS.texture,
            "train_examples": FLAGS.train_examples,
            "test_examples": FLAGS.test_examples})
    mcfg = megapixel_config(data_cfg)
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  root = train_cfg.run_dir
  size = mcfg.canvas_size
  r = model_cfg.base_resolution
  logging.info("Megapixel digits: %d px canvases, %d px digits (%.1f px in "
               "the %d px downscaled view)", size, mcfg.digit_size,
               mcfg.digit_size * r / size, r)
  megapixel_digits.prepare(mcfg, data_cfg.data_dir, ("train", "test"))
  started = time.time()

  def train(name, kind, model, steps, data):
    logging.info("=== %s: %d steps ===", name, steps)
    cfg = dataclasses.replace(train_cfg, run_dir=os.path.join(root, name),
                              train_steps=steps)
    return runner.train_and_evaluate(kind, model, loss_cfg, cfg, data)

  tnet_summary, tnet = train("tnet", "tnet", model_cfg, train_cfg.train_steps,
                             data_cfg)
  down_cfg = model_cfg.replace(input_size=(r, r), levels=1, locations=())
  down_summary, down = train(
      "downscaled", "baseline", down_cfg, FLAGS.baseline_steps,
      dataclasses.replace(data_cfg, resize_to=(r, r)))
  full_cfg = model_cfg.replace(input_size=(size, size), levels=1, locations=())
  full_summary, full = train("full_resolution", "baseline", full_cfg,
                             FLAGS.full_resolution_steps, data_cfg)

  logging.info("=== cost and speed ===")
  images = _timing_inputs(data_cfg, FLAGS.timing_batch)
  channels = int(images.shape[-1])
  rows = []
  for row in tnet_summary["eval"]:
    locs = tuple(row["locations"])
    fn = tf.function(lambda x, l=locs: tnet(x, training=False,
                                            locations=l)["logits"])
    rows.append({
        "locations": list(locs), "total_locations": row["total_locations"],
        "accuracy": row["top1"],
        "gmacs": profile.count_macs(
            lambda x, l=locs: tnet(x, training=False, locations=l)["logits"],
            [1, size, size, channels], tf.uint8) / 1e9,
        "ms_per_image": profile.ms_per_image(fn, images)})

  def whole_image_fn(model, resize):
    def fn(x):
      x = tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x
      x = tf.cast(x, tf.float32)
      if resize:
        x = tf.image.resize(x, (r, r), method="area")
      return model(x, training=False)
    return tf.function(fn)

  baselines = {}
  for name, model, summary, side in (("downscaled", down, down_summary, r),
                                     ("full_resolution", full, full_summary,
                                      size)):
    baselines[name] = {
        "accuracy": summary["eval"][0]["top1"],
        "gmacs": profile.count_macs(lambda x, m=model: m(x, training=False),
                                    [1, side, side, 3]) / 1e9,
        "ms_per_image": profile.ms_per_image(
            whole_image_fn(model, side != size), images),
        "input_size": [side, side]}

  logging.info("=== localisation and pictures ===")
  test_boxes = megapixel_digits.dataset("test", mcfg, data_cfg.data_dir,
                                        with_boxes=True).batch(64)
  loc = localization(tnet, test_boxes, model_cfg.locations, mcfg.num_target)
  loc["by_locations"] = [
      {k: v for k, v in localization(tnet, test_boxes, tuple(row["locations"]),
                                     mcfg.num_target).items()
       if k in ("locations", "rate", "chance")}
      for row in rows if row["locations"]]
  sample = next(iter(megapixel_digits.dataset(
      "test", mcfg, data_cfg.data_dir, with_boxes=True).batch(
          FLAGS.overlay_examples)))
  out = tnet(sample["image"], training=False,
             locations=model_cfg.locations)
  probs = tf.nn.softmax(out["logits"]).numpy()
  records = [{"boxes": out["boxes"][i].numpy(),
              "levels": out["levels"].numpy()} for i in range(len(probs))]
  if tnet.feature_weighting is not None:  # uniform weights say nothing
    for i, record in enumerate(records):
      record["feature_weights"] = out["feature_weights"][i].numpy()
  titles = [f"label {int(l)} / predicted {int(p.argmax())} "
            f"({p.max():.2f})" for l, p in zip(sample["label"].numpy(),
                                               probs)]
  visualize.attention_grid(
      sample["image"].numpy(), records, os.path.join(root, "attention.png"),
      titles=titles, target_boxes=list(sample["boxes"].numpy()
                                       [:, :mcfg.num_target]))
  visualize.plot_tradeoff(
      rows, {"downscaled": baselines["downscaled"],
             "full resolution": baselines["full_resolution"]},
      os.path.join(root, "tradeoff.png"),
      title=f"Megapixel digits ({size} px canvas, r = {r})")
  export_saved_model(tnet, os.path.join(root, "saved_model"),
                     channels=channels,
                     default_locations=model_cfg.locations)

  results = {
      "tnet": rows, "downscaled": baselines["downscaled"],
      "full_resolution": baselines["full_resolution"],
      "localization": loc,
      "data": dataclasses.asdict(mcfg),
      "model": tnet_summary["config"]["model"],
      "steps": {"tnet": train_cfg.train_steps,
                "downscaled": FLAGS.baseline_steps,
                "full_resolution": FLAGS.full_resolution_steps},
      "command": "python -m tnet_tf.experiments.synthetic " + " ".join(
          sys.argv[1:]),
      "seconds": time.time() - started,
      "versions": tnet_summary["versions"],
  }
  with open(os.path.join(root, "results.json"), "w") as fh:
    json.dump(results, fh, indent=1)
  table = visualize.results_markdown(rows, {
      f"downscaled to {r} px": baselines["downscaled"],
      "full resolution": baselines["full_resolution"]})
  with open(os.path.join(root, "results.md"), "w") as fh:
    fh.write(table + f"\n\nLocalisation: {loc['rate']:.3f} of attended "
             f"regions hold a target digit (random choice: "
             f"{loc['chance']:.3f}).\n")
  print(table)
  print(f"localisation rate {loc['rate']:.3f} (chance {loc['chance']:.3f})")
  print(f"wrote {root}/results.json, results.md, tradeoff.png, "
        "attention.png, saved_model/")


if __name__ == "__main__":
  runner.run(DEFAULTS, main)
