"""Variants of TNet on a built-in benchmark, trained and measured side by
side: accuracy at each evaluated number of locations, how often the
attended regions hold the objects that decide the label (vs chance), and
how peaked the location distribution is.

A variant is a set of changes to the benchmark's experiment, e.g.
``{"model": {"resampling": "antialias"}}``; ``VARIANT_SETS`` names the
sets the READMEs record (``--variants=fidelity``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Callable

from absl import logging
import numpy as np
import tensorflow as tf

from tnet_tf.model import inputs
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import losses
from tnet_tf.training import runs
from tnet_tf.training import trainer
from tnet_tf.config import Experiment
from tnet_tf.experiments import comparison

# the changes to the learning of where to look, alone and together,
# against the paper's rule
_EXPLORE = {"exploration": {"random_steps": 300, "anneal_steps": 600}}
_SCAN_TARGET = {"exploration": {"scan_steps": 300},
                "loss": {"location_target": 1.0}}
_LEARNED = {"policy": {"location_scale": "learned"}}
_PATHWISE = {"policy": {"location_gradient": "pathwise"}}
_LEARNED_PATHWISE = {"policy": {"location_scale": "learned",
                                "location_gradient": "pathwise"}}
POLICY = {
    "the paper's rule": {},
    "learned scale": {"model": _LEARNED},
    "exploration (random, then annealed)": _EXPLORE,
    "probability reward": {"loss": {"reward": "probability"}},
    "pathwise gradient": {"model": _PATHWISE},
    "scan + location target": _SCAN_TARGET,
    "all together": {"model": _LEARNED_PATHWISE, **_SCAN_TARGET},
}
# the small CNN's batch norm, plain or renormalised (tnet_tf.model.backbones.tiny:
# a model leaning on its training batch is worse in inference)
_RENORM = {"backbone_kwargs": {"norm": "renorm"}}
NORMALISATION = {
    "the paper's rule": {},
    "the paper's rule + batch renormalisation": {"model": _RENORM},
    "all together": POLICY["all together"],
    "all together + batch renormalisation": {
        "model": {**_LEARNED_PATHWISE, **_RENORM}, **_SCAN_TARGET},
}

# the normalisation of the small CNN, with the paper's rule (batch
# renormalisation is its default)
NORMS = {
    "batch norm": {"model": {"backbone_kwargs": {"norm": "batch"}}},
    "batch renormalisation": {"model": {"backbone_kwargs": {
        "norm": "renorm"}}},
}
# every opt-in switch alone, on batch renormalisation
_BASE = _RENORM
SWITCHES = {
    "batch renormalisation": {"model": _BASE},
    "+ learned scale": {"model": {**_BASE, **_LEARNED}},
    "+ pathwise gradient": {"model": {**_BASE, **_PATHWISE}},
    "+ overlap suppression": {"model": {
        **_BASE, "policy": {"overlap_suppression": True}}},
    "+ scan + location target": {"model": _BASE, **_SCAN_TARGET},
    "+ location target": {"model": _BASE,
                          "loss": {"location_target": 1.0}},
    "+ exploration": {"model": _BASE, **_EXPLORE},
    "+ probability reward": {"model": _BASE,
                             "loss": {"reward": "probability"}},
    "+ per-image location baseline": {
        "model": _BASE, "loss": {"location_baseline": "image"}},
    "+ sampling (the paper's text)": {"model": {
        **_BASE, "policy": {"selection": "sampling"}}},
}

# the combinations that paid before (one seed), on batch renormalisation
COMBINATIONS = {
    "batch renormalisation": {"model": _BASE},
    "+ scan + location target": SWITCHES["+ scan + location target"],
    "+ all together (learned scale, pathwise, scan + target)": {
        "model": {**_BASE, **_LEARNED_PATHWISE}, **_SCAN_TARGET},
}

# Megapixel MNIST's recorded options (its README; the drawn-locations row
# of more_locations.json was screened against them before that option's
# removal); a 16×16 grid cannot be scanned (256 cells a canvas)
_MM = {"model": {"policy": {"location_scale": "learned",
                            "location_gradient": "pathwise",
                            "overlap_suppression": True}},
       "loss": {"location_target": 1.0}}
MEGAPIXEL_MNIST = {
    "recorded options": _MM,
}

VARIANT_SETS = {
    "norms": NORMS,
    "megapixel_mnist": MEGAPIXEL_MNIST,
    "switches": SWITCHES,
    "combinations": COMBINATIONS,
    "rule_switches": {k: SWITCHES[k] for k in (
        "batch renormalisation", "+ exploration", "+ probability reward",
        "+ per-image location baseline")},
    "policy": POLICY,
    "normalisation": NORMALISATION,
    "policy_pair": {k: POLICY[k] for k in ("the paper's rule",
                                           "all together")},
    "policy_best": {k: POLICY[k] for k in ("the paper's rule",
                                           "pathwise gradient",
                                           "all together")},
    # the authors' choices against what this project did before
    "fidelity": {
        "authors' cells + half-pixel bilinear, greedy (the recipes)": {},
        "align-corners cells (before)": {
            "model": {"resampling": "align_corners"}},
        "authors' cells + box filter (antialias)": {
            "model": {"resampling": "antialias"}},
        "sampling, Plackett-Luce log p": {
            "model": {"policy": {"selection": "sampling"}}},
    },
}


def apply(experiment: Experiment, changes: dict) -> Experiment:
  """``experiment`` with ``changes`` ({group: {field: value}}, a nested
  group such as the model's ``policy`` as a dict of its own) applied;
  ``backbone_kwargs`` are merged into the preset's."""
  return _changed(experiment, changes)


def _changed(config, changes: dict):
  fields = {}
  for name, value in changes.items():
    current = getattr(config, name)
    if dataclasses.is_dataclass(current):
      value = _changed(current, value)
    elif name == "backbone_kwargs":
      value = {**current, **value}
    fields[name] = value
  return dataclasses.replace(config, **fields)


def attention_stats(model, dataset, locations) -> dict:
  """Mean entropy (nats) and top probability of the location distributions
  of each level, over ``dataset`` (batches of dicts with "image")."""
  fn = tf.function(lambda x: TNetOutput.of(model(
      x, training=False, locations=locations)).location_probs)
  entropy, top = {}, {}
  for batch in dataset:
    for level, probs in enumerate(fn(batch["image"]), start=2):
      entropy.setdefault(level, []).append(float(
          losses.location_entropy([probs])))
      top.setdefault(level, []).append(float(tf.reduce_mean(
          tf.reduce_max(probs, -1))))
  return {str(level): {"entropy": float(np.mean(entropy[level])),
                       "top_probability": float(np.mean(top[level]))}
          for level in entropy}


def _slug(name: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:60]


def measure(exp: Experiment, run_dir: str,
            boxed_test: Callable[[int], tf.data.Dataset]) -> dict:
  """Trains one TNet and measures it."""
  summary, task = trainer.train_and_evaluate(exp, run_dir)
  test = boxed_test(64)
  loc = comparison.localization(task, test, exp.model.locations)
  return {"seed": exp.train.seed,
          "accuracy": {str(inputs.total_locations(r["locations"])): r["top1"]
                       for r in summary["eval"]},
          "localization": {k: loc[k] for k in ("rate", "chance")},
          "attention": attention_stats(task, test, exp.model.locations),
          "train_seconds": summary["train_seconds"]}


def _mean(values: list) -> float:
  return float(np.mean(values))


def summarise(name: str, changes: dict, runs: list[dict]) -> dict:
  """The mean over the seeds, and the range of each accuracy."""
  settings = runs[0]["accuracy"]
  return {
      "variant": name, "changes": changes, "seeds": len(runs),
      "accuracy": {k: _mean([r["accuracy"][k] for r in runs])
                   for k in settings},
      "accuracy_range": {k: [min(r["accuracy"][k] for r in runs),
                             max(r["accuracy"][k] for r in runs)]
                         for k in settings},
      "localization": {k: _mean([r["localization"][k] for r in runs])
                       for k in ("rate", "chance")},
      "attention": {level: {k: _mean([r["attention"][level][k]
                                      for r in runs])
                            for k in ("entropy", "top_probability")}
                    for level in runs[0]["attention"]},
      "train_seconds": _mean([r["train_seconds"] for r in runs]),
      "runs": runs}


def run(experiment: Experiment, root: str, variants: dict,
        boxed_test: Callable[[int], tf.data.Dataset],
        command: str, out: str, seeds: int = 1) -> list[dict]:
  """Trains each variant's TNet (``seeds`` training seeds, the data fixed)
  into ``root/<variant>/seed<i>`` and writes the table to ``out`` (JSON)
  and ``out`` with ``.md``."""
  rows = []
  for name, changes in variants.items():
    logging.info("=== variant: %s %s ===", name, changes)
    runs = []
    for seed in range(seeds):
      exp = apply(experiment.replace(export=False), changes)
      exp = exp.replace(train=dataclasses.replace(
          exp.train, seed=exp.train.seed + seed))
      runs.append(measure(exp, os.path.join(root, _slug(name),
                                            f"seed{seed}"), boxed_test))
    rows.append(summarise(name, changes, runs))
    print(json.dumps({k: v for k, v in rows[-1].items() if k != "runs"}),
          flush=True)
  record = {"command": command, "rows": rows,
            "versions": runs.versions()}
  with open(out, "w") as fh:
    json.dump(record, fh, indent=1)
  with open(os.path.splitext(out)[0] + ".md", "w") as fh:
    fh.write(markdown(rows) + f"\n`{command}`\n")
  print(markdown(rows))
  return rows


def markdown(rows: list[dict]) -> str:
  settings = sorted({k for r in rows for k in r["accuracy"]}, key=int)
  head = ("| variant | " + " | ".join(f"{k} locs (%)" for k in settings) +
          " | localisation (× chance) | entropy (nats) |")
  lines = [head, "|---|" + "---:|" * (len(settings) + 2)]

  def cell(r, k):
    lo, hi = r["accuracy_range"][k]
    spread = f" ({100 * lo:.1f}–{100 * hi:.1f})" if r["seeds"] > 1 else ""
    return f"{100 * r['accuracy'][k]:.1f}{spread}"

  for r in rows:
    loc = r["localization"]
    ent = r["attention"].get("2", {}).get("entropy", float("nan"))
    lines.append(
        f"| {r['variant']} | " + " | ".join(cell(r, k) for k in settings) +
        f" | {loc['rate']:.3f} ({loc['rate'] / loc['chance']:.2f}×) | "
        f"{ent:.3f} |")
  return "\n".join(lines)
