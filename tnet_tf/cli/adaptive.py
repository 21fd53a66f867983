"""Adaptive attention against fixed k on a trained run
(``tnet_tf.inference.adaptive``).

  python -m tnet_tf.cli.adaptive --run_dir=runs/synthetic/tnet \\
      --max_locations=12 --thresholds=0.5,0.7,0.9,0.95,0.99 \\
      --out=experiments/synthetic/adaptive.json

Fits the run's halting module when ``--rules`` has ``learned`` and the run
has none (or with ``--fit_halting``), then writes the rows and their plot.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tnet_tf import data as data_lib
from tnet_tf.inference import adaptive
from tnet_tf.model.adaptive import RULES, supports_adaptive
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.training import runs

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined when run as a command (not on import: commands share names)."""
  flags.DEFINE_string("run_dir", None, "A trained two-level TNet run.")
  flags.DEFINE_integer("max_locations", None,
                       "The largest k (default: the run's locations).")
  flags.DEFINE_list("rules", ["max_probability", "learned"],
                    "Stopping rules compared (max_probability, margin, "
                    "learned).")
  flags.DEFINE_list("thresholds", ["0.5", "0.7", "0.8", "0.9", "0.95",
                                   "0.99"], "Thresholds of every rule.")
  flags.DEFINE_list("learned_thresholds", None, "Thresholds of the learned "
                    "rule (default --thresholds).")
  flags.DEFINE_integer("group", 1, "Cells read per step before the "
                       "stopping rule is applied again.")
  flags.DEFINE_string("first", None, "Cells of the first step after level "
                      "1 (default --group): one backbone call for the cells "
                      "nearly every image needs; 'auto': the fewest cells "
                      "after which the running prediction already is the "
                      "final one for --first_agreement of the halting "
                      "split's images.")
  flags.DEFINE_float("first_agreement", 0.75, "What --first=auto asks.")
  flags.DEFINE_bool("fit_halting", False, "Fit the halting module again "
                    "(it is fitted anyway when the run has none).")
  flags.DEFINE_string("halting_split", "validation", "Split the halting "
                      "module is fitted on (not one the model trained on).")
  flags.DEFINE_integer("halting_examples", 500, "Images it is fitted on.")
  flags.DEFINE_integer("examples", 1000, "Evaluation images.")
  flags.DEFINE_integer("batch_size", 32, "Evaluation batch.")
  flags.DEFINE_integer("timing_images", 48, "Images timed per case.")
  flags.DEFINE_integer("repeats", 3, "Timed rounds (median).")


class Setup:
  """What a comparison needs from the flags: the run's network, the
  thresholds per rule, the halting module (fitted if needed), the
  evaluation dataset and the timing images."""

  def __init__(self, flags_=FLAGS, say=print):
    loaded = runs.load(flags_.run_dir)
    network = loaded.task.network
    if not supports_adaptive(network):
      raise SystemExit(f"error: {flags_.run_dir} holds no two-level TNet "
                       "without feature weighting (what adaptive attention "
                       "needs)")
    self.network = network
    self.k = flags_.max_locations or network.config.locations[0]
    first = flags_.first
    if first not in (None, "auto"):
      try:
        first = int(first)
      except ValueError:
        raise app.UsageError(f"--first must be a number of cells or 'auto', "
                             f"got {first!r}") from None
    self.schedule = {"group": flags_.group, "first": first}
    unknown = set(flags_.rules) - set(RULES)
    if unknown:
      raise app.UsageError(f"unknown --rules {sorted(unknown)}; choose from "
                           f"{list(RULES)}")
    self.thresholds = {
        rule: [float(t) for t in (
            flags_.learned_thresholds if rule == "learned" and
            flags_.learned_thresholds else flags_.thresholds)]
        for rule in flags_.rules}
    cfg = loaded.experiment.data
    if "learned" in self.thresholds and (
        flags_.halting_split == cfg.eval_split):
      raise app.UsageError(
          f"--halting_split={flags_.halting_split} is the split this run is "
          "evaluated on: fit the halting module on another one (held out "
          "from training if there is one)")
    self.halting = None
    if "learned" in self.thresholds:
      if not flags_.fit_halting:
        self.halting = runs.halting_of(loaded)
      if self.halting is None:
        say(f"fitting the halting module on {flags_.halting_examples} "
            f"images of split {flags_.halting_split!r}")
        fitting = data_lib.build(flags_.halting_split, cfg).take(
            flags_.halting_examples).batch(flags_.batch_size)
        outputs = adaptive.running_outputs(network, fitting, self.k)
        if first == "auto":
          every = adaptive.statistics(outputs)["agree"].mean(0)
          self.schedule["first"] = adaptive.auto_first(every, flags_.first_agreement)
          say(f"--first=auto: {self.schedule['first']} cells (agreement "
              f"with the final prediction by cells read: "
              f"{np.round(every, 3).tolist()})")
        data = adaptive.statistics(outputs, self.schedule)
        self.halting, fit = adaptive.fit_halting(data, self.schedule, self.k,
                                        say=say)
        path = runs.save_halting(self.halting, loaded.run_dir, loaded.checkpoint,
                            {"split": flags_.halting_split,
                             "examples": int(len(data["x"])), **fit},
                            loaded.weights_digest())
        say(f"wrote {path}: {fit}")
      else:  # the schedule it was fitted for
        self.schedule = halting_lib.schedule_of(self.halting)
        if self.halting.max_locations != self.k:
          logging.warning("the halting module was fitted for k=%d; used "
                          "here with k=%d", self.halting.max_locations,
                          self.k)
    if self.schedule["first"] == "auto":
      raise app.UsageError("--first=auto is read from the halting fit: it "
                           "needs --rules with learned")
    split = cfg.eval_split
    self.dataset = data_lib.build(split, cfg).take(flags_.examples).batch(
        flags_.batch_size)
    self.images = np.stack([x for x, _ in data_lib.build(split, cfg).take(
        flags_.timing_images).as_numpy_iterator()])
    group, first = self.schedule["group"], self.schedule["first"]
    steps = (f"{first} cells, then " if first and first != group else "") + (
        f"{group} cell{'s' if group > 1 else ''} a step")
    self.title = f"{flags_.run_dir}: adaptive ({steps}) vs fixed k"

  def evaluate(self) -> list[dict]:
    return adaptive.evaluate(self.network, self.dataset, self.k, self.thresholds,
                    self.schedule, self.halting)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.run_dir or not FLAGS.out:
    raise app.UsageError("--run_dir and --out are required")
  setup = Setup()
  rows = setup.evaluate()
  adaptive.timings(setup.network, setup.images, rows, setup.k, FLAGS.repeats,
          setup.schedule, setup.halting)
  adaptive.print_rows(rows)
  print(json.dumps(adaptive.summary(rows, setup.k)))
  adaptive.write(rows, FLAGS.out, setup.title)


def run(argv: Optional[Sequence[str]] = None) -> None:
  define_flags()
  flags.DEFINE_string("out", None, "JSON output (a .png beside it).")
  app.run(main, argv)


if __name__ == "__main__":
  run()
