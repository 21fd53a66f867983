"""The attention record of an evaluation set, as a table, and its coverage.

One row per image: label, prediction, every attended box per level (input
pixels, with the probability the location module gave it and its feature
weight) and the probabilities of all candidate cells of every region at
every level. Coverage (paper §5.4) is the share of the image area seen at
each level's resolution: the union of that level's boxes over the image.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.model.adaptive import call_adaptive, supports_adaptive
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import tasks


def union_area(boxes: np.ndarray) -> float:
  """Exact area of the union of boxes ``[M, 4]`` (y0, x0, y1, x1)."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
  if not len(boxes):
    return 0.0
  ys = np.unique(boxes[:, [0, 2]])
  xs = np.unique(boxes[:, [1, 3]])
  covered = np.zeros((len(ys) - 1, len(xs) - 1), bool)
  for y0, x0, y1, x1 in boxes:
    covered[np.searchsorted(ys, y0):np.searchsorted(ys, y1),
            np.searchsorted(xs, x0):np.searchsorted(xs, x1)] = True
  cell = np.outer(np.diff(ys), np.diff(xs))
  return float((cell * covered).sum())


def coverage(boxes: np.ndarray, levels: np.ndarray, image_hw: Sequence[int],
             num_levels: int) -> list[float]:
  """Share of the image seen at each level ``1..num_levels``."""
  area = float(image_hw[0]) * float(image_hw[1])
  return [union_area(boxes[levels == level]) / area
          for level in range(1, num_levels + 1)]


def image_rows(record: dict, labels: np.ndarray, image_hw: Sequence[int],
               num_levels: int, first_index: int = 0,
               class_names: Optional[Sequence[str]] = None) -> list[dict]:
  """Rows of one batch from a TNet output ``record`` (numpy or tensors)."""
  out = TNetOutput.of(record)
  cell_probs = [np.asarray(p) for p in out.location_probs]
  probs = tf.nn.softmax(out.logits).numpy()
  levels = np.asarray(out.levels)
  log_p = np.asarray(out.location_log_probs)
  boxes = np.asarray(out.boxes)
  weights = np.asarray(out.feature_weights)
  rows = []
  # adaptive records: which boxes were read
  read = None if out.attended is None else np.asarray(out.attended)
  for i in range(len(probs)):
    order = np.argsort(-probs[i])[:5]
    attended = []
    for j, level in enumerate(levels):
      if read is not None and not read[i, j]:
        continue
      y0, x0, y1, x1 = (float(c) for c in boxes[i, j])
      attended.append({
          "level": int(level), "box": [y0, x0, y1, x1],
          "probability": 1.0 if j == 0 else float(np.exp(log_p[i, j - 1])),
          "feature_weight": float(weights[i, j])})
    row = {"index": first_index + i,
           "label": int(labels[i]) if labels is not None else None,
           "prediction": int(order[0]),
           "confidence": float(probs[i, order[0]]),
           "top5": [int(c) for c in order],
           "num_locations": len(attended) - 1,
           "attended": attended,
           # level l+2: [regions of level l+1, n²] candidate probabilities
           "cell_probabilities": {
               str(level): p[i].round(6).tolist()
               for level, p in enumerate(cell_probs, start=2)},
           "coverage": {str(level): c for level, c in enumerate(
               coverage(boxes[i] if read is None else
                        boxes[i][read[i] > 0],
                        levels if read is None else levels[read[i] > 0],
                        image_hw, num_levels), start=1)}}
    if class_names is not None:
      row["prediction_name"] = class_names[row["prediction"]]
    rows.append(row)
  return rows


def collect(model, dataset: tf.data.Dataset, locations: Sequence[int],
            max_examples: int = 0,
            class_names: Optional[Sequence[str]] = None,
            threshold: Optional[float] = None, halting=None) -> list[dict]:
  """Runs ``model`` over ``dataset`` of ``(images, labels)`` batches; with
  a ``threshold``, adaptive attention (``call_adaptive`` with at most
  ``locations[0]`` cells; by the ``halting`` module's score if given, else
  the top probability): each row holds the cells its image read."""
  rows: list[dict] = []
  num_levels = len(locations) + 1
  network = tasks.network_of(model)
  adaptive = None if threshold is None else tf.function(
      lambda x: call_adaptive(network, x, threshold, locations[0],
                              **halting_lib.call_options(halting)))
  for images, labels in dataset:
    record = (model(images, training=False, locations=locations)
              if adaptive is None else adaptive(images))
    rows += image_rows(record, labels.numpy(), images.shape[1:3],
                       num_levels, len(rows), class_names)
    if max_examples and len(rows) >= max_examples:
      return rows[:max_examples]
  return rows


def summary(rows: Sequence[dict]) -> dict:
  """Accuracy and the mean coverage per level over ``rows``."""
  levels = sorted({k for r in rows for k in r["coverage"]}, key=int)
  labelled = [r for r in rows if r["label"] is not None]
  return {"images": len(rows),
          "top1": (float(np.mean([r["prediction"] == r["label"]
                                  for r in labelled]))
                   if labelled else None),
          "mean_locations": (float(np.mean([r["num_locations"]
                                            for r in rows]))
                             if rows else None),
          "mean_coverage": {k: float(np.mean([r["coverage"][k]
                                              for r in rows]))
                            for k in levels}}


def write(rows: Sequence[dict], directory: str) -> dict:
  """``attention.jsonl`` (everything), ``attention.csv`` (one row per
  image; list-valued cells as JSON) and ``attention_summary.json``."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "attention.jsonl"), "w") as fh:
    for row in rows:
      fh.write(json.dumps(row) + "\n")
  levels = sorted({k for r in rows for k in r["coverage"]}, key=int)
  decided = sorted({k for r in rows for k in r["cell_probabilities"]},
                   key=int)
  fields = (["index", "label", "prediction", "confidence", "top5",
             "num_locations"] +
            [f"boxes_level{k}" for k in levels] +
            [f"cell_probabilities_level{k}" for k in decided] +
            [f"coverage_level{k}" for k in levels])
  with open(os.path.join(directory, "attention.csv"), "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=fields)
    writer.writeheader()
    for row in rows:
      flat = {k: row[k] for k in ("index", "label", "prediction",
                                  "confidence", "num_locations")}
      flat["top5"] = json.dumps(row["top5"])
      for k in levels:
        flat[f"boxes_level{k}"] = json.dumps(
            [[round(c, 2) for c in a["box"]] + [round(a["probability"], 6)]
             for a in row["attended"] if str(a["level"]) == k])
        flat[f"coverage_level{k}"] = round(row["coverage"][k], 6)
      for k in decided:
        flat[f"cell_probabilities_level{k}"] = json.dumps(
            row["cell_probabilities"][k])
      writer.writerow(flat)
  result = summary(rows)
  with open(os.path.join(directory, "attention_summary.json"), "w") as fh:
    json.dump(result, fh, indent=1)
  return result


def iterate_rows(path: str) -> Iterable[dict]:
  with open(path) as fh:
    for line in fh:
      yield json.loads(line)
