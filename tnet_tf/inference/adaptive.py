"""Fewer locations where the image is easy: adaptive attention against
fixed k, on a trained run's evaluation split.

  python -m tnet_tf.cli.adaptive --run_dir=runs/synthetic/tnet \\
      --max_locations=12 --thresholds=0.5,0.7,0.9,0.95,0.99 \\
      --out=experiments/synthetic/adaptive.json

``call_adaptive`` (``tnet_tf.model.adaptive``) reads level 2 one cell at
a time and stops each image once its running prediction is confident, by
each of ``--rules``:
``max_probability``, ``margin`` or ``learned`` (a halting module fitted on
the run's held-out split, ``--halting_split``, and kept in
``RUN_DIR/halting/``; fitted when missing or with ``--fit_halting``).
Writes a list of rows — fixed k = 0 … ``max_locations`` (``threshold``
null) and each rule's thresholds — with ``mean_locations``, ``accuracy``
(on ``--examples`` images of the run's evaluation split), ``ms_per_image``
at batch 1 and ``ms_per_image_b8`` (all cases timed in turns on the same
``--timing_images`` images, median of ``--repeats`` rounds), and a plot
(``.png`` beside the JSON). ``python -m benchmarks.adaptive`` records the
same with the timings repeated on an idle machine.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.model import cost
from tnet_tf.model.adaptive import RULES, call_adaptive, running
from tnet_tf.model.adaptive import supports_adaptive
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import evaluation


# ----------------------------------------------------------------- halting
def running_outputs(network, dataset, max_locations: int) -> list[dict]:
  """``running`` (``tnet_tf.model.adaptive``) of every batch of
  ``dataset`` (tensors)."""
  traced = tf.function(lambda x: running(network, x, max_locations))
  return [traced(images) for images, _ in dataset]


def statistics(outputs: Sequence[dict],
               schedule: Optional[dict] = None) -> dict:
  """The halting statistics of every decision point of the images of
  ``running_outputs`` (``x`` ``[N, S, F]``) and whether the running
  prediction there is the final one (``agree`` ``[N, S]``). ``schedule``:
  ``call_adaptive``'s ``group`` and ``first``."""
  xs, agree = [], []
  for out in outputs:
    x, points = halting_lib.trace(out["logits"], out["cell_logits"],
                                  out["cell_probs"], **(schedule or {}))
    pred = np.argmax(out["logits"].numpy(), -1)
    xs.append(x.numpy())
    agree.append(pred[:, points] == pred[:, -1:])
  return {"x": np.concatenate(xs), "agree": np.concatenate(agree)}


def auto_first(agreement: Sequence[float], wanted: float) -> int:
  """The fewest cells (≥ 1) after which the running prediction is the final
  one for at least ``wanted`` of the images (``agreement[j]``: that share
  after ``j`` cells, j = 0 … K − 1); K − 1 if never."""
  for j, share in enumerate(agreement):
    if j >= 1 and share >= wanted:
      return j
  return max(1, len(agreement) - 1)


def fit_halting(data: dict, schedule: Optional[dict], max_locations: int,
                hidden: int = 32, steps: int = 3000, seed: int = 0,
                say=print) -> tuple[halting_lib.HaltingModule, dict]:
  """A halting module fitted to ``collect``'s statistics (logistic loss on
  "agrees with the final prediction", Adam, mini-batches of 256) and a
  summary of the fit."""
  import tf_keras as keras
  x = data["x"].reshape(-1, data["x"].shape[-1]).astype(np.float32)
  y = data["agree"].reshape(-1).astype(np.float32)
  if len(x) < 50:
    raise ValueError(f"{len(x)} decision points are too few to fit a "
                     "halting module (use more --halting_examples)")
  keras.utils.set_random_seed(seed)
  schedule = {"group": 1, "first": None, **(schedule or {})}
  module = halting_lib.HaltingModule(hidden, schedule["group"],
                                     max_locations, schedule["first"] or 0)
  module.mean.assign(x.mean(0))
  module.scale.assign(np.maximum(x.std(0), 1e-3))
  optimizer = keras.optimizers.Adam(3e-3)
  weights = module.trainable_weights

  @tf.function
  def train_step(xb, yb):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
          yb, module(xb))) + 1e-4 * tf.add_n(
              [tf.reduce_sum(w ** 2) for w in weights if "kernel" in w.name])
    optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    return loss

  rng = np.random.default_rng(seed)
  for i in range(steps):
    pick = rng.integers(0, len(x), min(256, len(x)))
    loss = train_step(x[pick], y[pick])
    if (i + 1) % 1000 == 0:
      say(f"halting fit: step {i + 1}/{steps}  loss {float(loss):.4f}")
  score = tf.sigmoid(module(x)).numpy()
  summary = {
      "decision_points": int(len(x)), "agree_fraction": float(y.mean()),
      # per decision point: how often the running prediction there is
      # already the final one (what --first can be read from)
      "agree_by_point": [round(float(v), 4)
                         for v in data["agree"].mean(0)],
      "loss": float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
          y, module(x)))),
      "accuracy": float(((score >= 0.5) == (y > 0.5)).mean())}
  return module, summary


# -------------------------------------------------------------- evaluation
def evaluate(network, dataset, max_locations: int,
             thresholds: dict, schedule: Optional[dict] = None,
             halting: Optional[halting_lib.HaltingModule] = None
             ) -> list[dict]:
  """Accuracy and mean locations of fixed k = 0 … max_locations and of
  each rule's thresholds (``{rule: [threshold, ...]}``), over ``dataset``
  (batches ``(images, labels)``) in one pass, through
  ``call_adaptive`` itself (``tnet_tf.training.evaluation.evaluate``)."""
  cases = [{"threshold": float(t), "max_locations": max_locations,
            "rule": rule, "halting": halting, **(schedule or {})}
           for rule, values in thresholds.items() for t in values]
  fixed, adaptive = evaluation.evaluate(
      network, dataset, [(k,) for k in range(max_locations + 1)], cases)
  return ([{"threshold": None, "k": k, "rule": None,
            "accuracy": row["top1"], "mean_locations": float(k),
            "examples": row["examples"]} for k, row in enumerate(fixed)] +
          [{"threshold": row["threshold"], "k": None, "rule": row["rule"],
            "accuracy": row["top1"], "mean_locations": row["mean_locations"],
            "examples": row["examples"]} for row in adaptive])


def timing_cases(network, images: np.ndarray, rows: list[dict],
                 max_locations: int, schedule: Optional[dict] = None,
                 halting: Optional[halting_lib.HaltingModule] = None
                 ) -> dict:
  """``cost.time_interleaved`` cases of every row at batch 1 and 8 on
  the same images, keyed ``(row index, batch)``."""
  chunks = {batch: [tf.constant(images[s:s + batch])
                    for s in range(0, len(images) - batch + 1, batch)]
            for batch in (1, 8)}
  adaptive = {}
  cases = {}
  for i, row in enumerate(rows):
    rule = row["rule"]
    if row["threshold"] is None:
      fn = tf.function(lambda x, k=row["k"]: TNetOutput.of(network(
          x, training=False, locations=[k])).logits)
      run = lambda xs, fn=fn: [fn(x) for x in xs]
    else:
      if rule not in adaptive:
        adaptive[rule] = tf.function(lambda x, t, rule=rule: TNetOutput.of(
            call_adaptive(network, x, t, max_locations, rule=rule,
                          halting=halting, **(schedule or {}))).logits)
      t = tf.constant(row["threshold"])
      run = lambda xs, t=t, fn=adaptive[rule]: [fn(x, t) for x in xs]
    for batch, xs in chunks.items():
      cases[(i, batch)] = (run, xs, batch * len(xs))
  return cases


def timings(network, images: np.ndarray, rows: list[dict],
            max_locations: int, repeats: int,
            schedule: Optional[dict] = None,
            halting: Optional[halting_lib.HaltingModule] = None) -> None:
  """ms per image of every row at batch 1 and 8, in turns, on the same
  images (added to the rows: the median of ``repeats`` rounds)."""
  cases = timing_cases(network, images, rows, max_locations, schedule,
                       halting)
  times = cost.time_interleaved(cases, warmup=1, repeats=repeats)
  for (i, batch), values in times.items():
    key = "ms_per_image" if batch == 1 else "ms_per_image_b8"
    rows[i][key] = float(np.median(values))


RULE_STYLE = {"max_probability": ("tab:orange", "s--"),
              "margin": ("tab:green", "^--"),
              "learned": ("tab:red", "D-")}


def plot(rows: list[dict], path: str, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fixed = [r for r in rows if r["threshold"] is None]
  rules = sorted({r["rule"] for r in rows if r["rule"]}, key=list(
      RULE_STYLE).index)
  best = max(fixed, key=lambda r: r["k"])
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for ax, x, label in ((axes[0], "mean_locations", "mean locations per "
                        "image"), (axes[1], "ms_per_image",
                                   "ms per image (batch 1)")):
    ax.plot([r[x] for r in fixed], [100 * r["accuracy"] for r in fixed],
            "o-", color="tab:blue", label="fixed k")
    for rule in rules:
      mine = [r for r in rows if r["rule"] == rule]
      color, style = RULE_STYLE[rule]
      ax.plot([r[x] for r in mine], [100 * r["accuracy"] for r in mine],
              style, color=color, label=f"adaptive, {rule.replace('_', ' ')}")
      for r in mine:
        ax.annotate(f"{r['threshold']:g}", (r[x], 100 * r["accuracy"]),
                    textcoords="offset points", xytext=(4, -10), fontsize=7,
                    color=color)
    ax.axhline(100 * best["accuracy"] - 0.5, color="grey", lw=0.8, ls=":",
               label=f"fixed k={best['k']} − 0.5 points")
    if x == "mean_locations":
      ax.axvline(0.6 * best["k"], color="grey", lw=0.8, ls="-.",
                 label=f"60% of k={best['k']}")
    ax.set_xlabel(label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def summary(rows: list[dict], max_locations: int) -> dict:
  """The issue's target, per rule: the adaptive row with the fewest
  locations within 0.5 points of the largest fixed k, its fraction of the
  locations (target ≤ 0.6) and of the batch-1 time."""
  best = next(r for r in rows if r["k"] == max_locations)
  out = {"fixed_k": max_locations, "fixed_accuracy": best["accuracy"],
         "fixed_ms_per_image": best.get("ms_per_image"), "rules": {}}
  for rule in sorted({r["rule"] for r in rows if r["rule"]}):
    candidates = [r for r in rows if r["rule"] == rule and
                  r["accuracy"] >= best["accuracy"] - 0.005 - 1e-9]
    cheapest = min(candidates, key=lambda r: r["mean_locations"],
                   default=None)
    mine = {"met": False}
    if cheapest is not None:
      mine = {"threshold": cheapest["threshold"],
              "accuracy": cheapest["accuracy"],
              "locations_fraction": cheapest["mean_locations"] /
                                    max_locations,
              "time_fraction_b1": (cheapest["ms_per_image"] /
                                   best["ms_per_image"]
                                   if best.get("ms_per_image") and
                                   cheapest.get("ms_per_image") else None)}
      mine["met"] = bool(mine["locations_fraction"] <= 0.6)
    out["rules"][rule] = mine
  return out


def print_rows(rows: list[dict], say=print) -> None:
  for row in rows:
    name = (f"k={row['k']}" if row["threshold"] is None
            else f"{row['rule']} t={row['threshold']}")
    ms = (f"  {row['ms_per_image']:6.2f} ms b1  {row['ms_per_image_b8']:6.2f}"
          " ms b8" if "ms_per_image" in row else "")
    say(f"{name:>24}  locations {row['mean_locations']:5.2f}  accuracy "
        f"{100 * row['accuracy']:5.1f}%{ms}")


def write(rows: list[dict], out: str, title: str) -> None:
  """``out`` (the JSON list) and the plot beside it."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1)
    f.write("\n")
  plot(rows, os.path.splitext(out)[0] + ".png", title)
