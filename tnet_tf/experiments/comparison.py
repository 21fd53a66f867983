"""TNet against the same backbone on the downscaled and on the full image.

The built-in benchmarks share this job: train the three models through the
trainer, measure accuracy, GMACs and ms/image of each (TNet at every
evaluated number of locations), how often TNet's attended regions hold the
objects that decide the label, and write ``results.json``, ``results.md``,
``tradeoff.png`` (the paper's Fig. 1b) and ``attention.png`` (Fig. 1c).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf


from tnet_tf.inference import export
from tnet_tf.model import inputs
from tnet_tf.model import cost
from tnet_tf.tools import profile
from tnet_tf.training import tasks
from tnet_tf.training import trainer
from tnet_tf import visualize
from tnet_tf.config import Experiment
from tnet_tf.model.layers import grid
from tnet_tf.model.outputs import TNetOutput


@dataclasses.dataclass
class Comparison:
  """The three runs and what the benchmark knows about its data."""
  experiment: Experiment  # TNet's
  root: str
  baseline_steps: int
  full_resolution_steps: int
  timing_images: tf.Tensor  # a batch of test images, as stored
  # test examples as dicts with "image", "label" and the "boxes" of the
  # objects that decide the label (localisation), batched
  boxed_test: Optional[Callable[[int], tf.data.Dataset]] = None
  title: str = ""
  overlay_examples: int = 8
  data_record: dict = dataclasses.field(default_factory=dict)  # generator's


# ----------------------------------------------------------- localisation
def contains(regions: np.ndarray, objects: np.ndarray) -> np.ndarray:
  """[R, D]: at least half of object d's box lies inside region r (an
  empty box — an object that does not count — lies in none)."""
  y0 = np.maximum(regions[:, None, 0], objects[None, :, 0])
  x0 = np.maximum(regions[:, None, 1], objects[None, :, 1])
  y1 = np.minimum(regions[:, None, 2], objects[None, :, 2])
  x1 = np.minimum(regions[:, None, 3], objects[None, :, 3])
  inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
  area = (objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1])
  return (inter >= 0.5 * area[None, :]) & (area[None, :] > 0)


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


def localization(model, dataset, locations) -> dict:
  """Share of attended regions holding an object that decides the label
  (the examples' ``boxes``; empty ones count for nothing), vs. choosing
  cells at random."""
  cfg = model.config
  hits, chance, counts, candidates = {}, {}, {}, {}
  fn = tf.function(lambda x: model(x, training=False, locations=locations))
  for batch in dataset:
    out = TNetOutput.of(fn(batch["image"]))
    size = int(batch["image"].shape[1])
    boxes, levels = out.boxes.numpy(), out.levels.numpy()
    targets = batch["boxes"].numpy()
    if size not in candidates:
      candidates[size] = all_regions(size, cfg.grid_size, cfg.cell_fraction,
                                     int(levels.max()))
    for i in range(len(boxes)):
      for level in range(2, int(levels.max()) + 1):
        sel = boxes[i][levels == level]
        hit = contains(sel, targets[i]).any(axis=1)
        rand = contains(candidates[size][level - 2], targets[i]).any(axis=1)
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


# ---------------------------------------------------------------- the runs
def train_all(c: Comparison) -> dict:
  """TNet, the downscaled and the full-resolution baseline: name →
  (summary, task)."""
  exp = c.experiment
  r = exp.model.base_resolution
  size = exp.model.input_size
  exp = exp.replace(export=False)  # TNet's SavedModel: into the root
  baseline = exp.replace(kind="baseline", export=True)
  runs = {
      "tnet": (exp, exp.train.train_steps),
      "downscaled": (baseline.replace(
          model=tasks.model_config_for("baseline", exp.model,
                                       input_size=(r, r)),
          data=dataclasses.replace(exp.data, resize_to=(r, r))),
                     c.baseline_steps),
      "full_resolution": (baseline.replace(
          model=tasks.model_config_for("baseline", exp.model,
                                       input_size=size)),
                          c.full_resolution_steps)}
  out = {}
  for name, (experiment, steps) in runs.items():
    logging.info("=== %s: %d steps ===", name, steps)
    experiment = experiment.replace(train=dataclasses.replace(
        experiment.train, train_steps=steps))
    out[name] = trainer.train_and_evaluate(
        experiment, os.path.join(c.root, name),
        export.end_of_run(experiment))
  return out


def _timings(fn, images: tf.Tensor) -> dict:
  """ms/image of ``fn`` at batch 1 and at the batch of ``images``, taken
  in turns."""
  fn = tf.function(fn)
  one = images[:1]
  times = cost.time_interleaved(
      {"b1": (fn, one, 1), "batch": (fn, images, int(images.shape[0]))})
  return {"ms_per_image_b1": float(np.median(times["b1"])),
          f"ms_per_image_b{int(images.shape[0])}": float(
              np.median(times["batch"])),
          "ms_per_image": float(np.median(times["batch"]))}


def tnet_rows(task, summary: dict, images: tf.Tensor) -> list[dict]:
  """Accuracy, GMACs and ms/image (batch 1 and the timing batch) of TNet
  at each evaluated setting."""
  shape = list(images.shape[1:])
  rows = []
  for row in summary["eval"]:
    locs = tuple(row["locations"])
    logits = lambda x, l=locs: task(x, training=False, locations=l)["logits"]
    rows.append({
        "locations": list(locs), "total_locations": row["total_locations"],
        "accuracy": row["top1"],
        "gmacs": cost.count_macs(logits, [1, *shape], tf.uint8) / 1e9,
        **_timings(logits, images)})
  return rows


def baseline_row(task, summary: dict, images: tf.Tensor,
                 side: int) -> dict:
  """The same for a whole-image model reading images resized to ``side``."""
  def logits(x):
    if x.shape[1] != side:  # the downscaled view: area-averaged
      x = tf.image.resize(tf.cast(x, tf.float32), (side, side),
                          method="area")
    return task(x, training=False)["logits"]
  channels = int(images.shape[-1])
  return {"accuracy": summary["eval"][0]["top1"],
          "gmacs": cost.count_macs(logits, [1, side, side, channels],
                                      tf.uint8) / 1e9,
          **_timings(logits, images), "input_size": [side, side],
          "train_seconds": summary["train_seconds"]}


def peak_memory(c: Comparison, tnet_saved_model: str) -> dict:
  """Peak resident memory (MB) of classifying one test image with each
  model's SavedModel in a fresh process, and of that process without a
  model (the floor)."""
  image = c.timing_images[:1].numpy()
  r = c.experiment.model.base_resolution
  out = {"floor": profile.peak_memory_mb(None, image),
         "tnet": profile.peak_memory_mb(
             tnet_saved_model, image,
             inputs.pad_locations(c.experiment.model.locations,
                                  c.experiment.model.levels))}
  for name, resize in (("downscaled", r), ("full_resolution", 0)):
    out[name] = profile.peak_memory_mb(
        os.path.join(c.root, name, "saved_model"), image, resize=resize)
  return out


def pictures(c: Comparison, task, rows: list[dict], baselines: dict
             ) -> None:
  """``attention.png`` (test images with the attended regions and, dashed,
  the objects that decide the label) and ``tradeoff.png``."""
  locations = c.experiment.model.locations
  if c.boxed_test is not None:
    sample = next(iter(c.boxed_test(c.overlay_examples)))
    out = task(sample["image"], training=False, locations=locations)
    probs = tf.nn.softmax(out["logits"]).numpy()
    titles = [f"label {int(l)} / predicted {int(p.argmax())} "
              f"({p.max():.2f})" for l, p in zip(sample["label"].numpy(),
                                                 probs)]
    visualize.attention_grid(
        sample["image"].numpy(), visualize.overlay_records(out),
        os.path.join(c.root, "attention.png"), titles=titles,
        target_boxes=list(sample["boxes"].numpy()))
  visualize.plot_tradeoff(
      rows, {"downscaled": baselines["downscaled"],
             "full resolution": baselines["full_resolution"]},
      os.path.join(c.root, "tradeoff.png"), title=c.title)


def run(c: Comparison, command: str) -> dict:
  """Trains the three models, measures them, writes the results."""
  started = time.time()
  trained = train_all(c)
  logging.info("=== cost and speed ===")
  tnet_summary, tnet = trained["tnet"]
  rows = tnet_rows(tnet, tnet_summary, c.timing_images)
  r = c.experiment.model.base_resolution
  size = int(c.timing_images.shape[1])
  baselines = {name: baseline_row(trained[name][1], trained[name][0],
                                  c.timing_images, side)
               for name, side in (("downscaled", r),
                                  ("full_resolution", size))}
  logging.info("=== localisation and pictures ===")
  results = {"tnet": rows, **baselines}
  if c.boxed_test is not None:
    test = c.boxed_test(64)
    settings = [tuple(row["locations"]) for row in rows if row["locations"]]
    loc = localization(tnet, test, c.experiment.model.locations)
    loc["by_locations"] = [
        {k: v for k, v in localization(tnet, test, s).items()
         if k in ("locations", "rate", "chance")} for s in settings]
    results["localization"] = loc
  pictures(c, tnet, rows, baselines)
  saved = export.export_saved_model(
      tnet, os.path.join(c.root, "saved_model"),
      channels=int(c.timing_images.shape[-1]))
  memory = peak_memory(c, saved)
  for name in ("downscaled", "full_resolution"):
    results[name]["peak_rss_mb"] = memory[name]
  results["tnet_peak_rss_mb"] = memory["tnet"]
  results["memory_floor_mb"] = memory["floor"]
  results["tnet_train_seconds"] = tnet_summary["train_seconds"]
  results.update({
      "data": c.data_record, "model": tnet_summary["config"]["model"],
      "steps": {"tnet": c.experiment.train.train_steps,
                "downscaled": c.baseline_steps,
                "full_resolution": c.full_resolution_steps},
      "command": command, "seconds": time.time() - started,
      "versions": tnet_summary["versions"]})
  write_results(c, results)
  return results


def write_results(c: Comparison, results: dict) -> None:
  r = c.experiment.model.base_resolution
  with open(os.path.join(c.root, "results.json"), "w") as fh:
    json.dump(results, fh, indent=1)
  table = visualize.results_markdown(results["tnet"], {
      f"downscaled to {r} px": results["downscaled"],
      "full resolution": results["full_resolution"]})
  loc = results.get("localization")
  note = (f"\n\nLocalisation: {loc['rate']:.3f} of attended regions hold a "
          f"target (random choice: {loc['chance']:.3f}).\n" if loc else "")
  with open(os.path.join(c.root, "results.md"), "w") as fh:
    fh.write(table + note)
  print(table)
  if loc:
    print(f"localisation rate {loc['rate']:.3f} (chance "
          f"{loc['chance']:.3f})")
  print(f"wrote {c.root}/results.json, results.md, tradeoff.png, "
        "attention.png, saved_model/")
