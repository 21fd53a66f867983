"""A built-in task of another kind: one small object (1/16 of the side)
among clutter on a 256 px canvas, 2 (up to 4) shapes of the same
brightness: the
downscaled view is at chance, only attention that finds the object reads
its class (``tnet_tf.data.small_object``).

  python -m tnet_tf.experiments.small_object --run_dir=runs/small_object

writes what the built-in benchmark writes (``tnet_tf.experiments.synthetic``);
``--variants=...`` trains TNet variants instead.
"""
from __future__ import annotations

import dataclasses

from absl import flags

from tnet_tf import data as data_lib
from tnet_tf.data import small_object
from tnet_tf.experiments import builtin
from tnet_tf.cli import runner

FLAGS = flags.FLAGS

DEFAULTS = {
    "preset": "small_object", "dataset": "small_object",
    "run_dir": "runs/small_object", "train_steps": 1500, "batch_size": 32,
    "checkpoint_every": 500, "log_every": 50, "learning_rate": 1e-3,
    # up to twice the training locations: more must never hurt
    "eval_locations": "0;1;2;3;4", "eval_split": "test",
    "lambda_c": 0.3, "lambda_r": 0.3, "lambda_f": 0.5,
    # issue 24: on this task the scan and the location target add 3 points
    # at 3 locations over five seeds' spread of 2.4 (experiments/README.md)
    "scan_steps": 300, "location_target": 1.0,
    "baseline_steps": 1500, "full_resolution_steps": 600, "num_classes": 2,
}


def define_flags(fv: flags.FlagValues) -> None:
  builtin.define_flags(fv)
  d = dict(flag_values=fv)
  flags.DEFINE_integer("train_examples", 60000, "Training canvases (drawn "
                       "when read; with a few thousand TNet memorises "
                       "them).", **d)
  flags.DEFINE_integer("test_examples", 500, "Test canvases.", **d)
  flags.DEFINE_integer("num_lines", 20, "Clutter segments per canvas.", **d)


def main(argv):
  experiment, root, cfg = builtin.setup(argv, lambda exp: {
      "train_examples": FLAGS.train_examples,
      "test_examples": FLAGS.test_examples, "num_lines": FLAGS.num_lines,
      "num_classes": exp.model.num_classes}, data_lib.small_object_config)
  spec = builtin.Spec(
      title=f"One small object ({cfg.object_side} px on a "
            f"{cfg.canvas_size} px canvas)",
      boxed_test=lambda n: small_object.dataset(
          "test", cfg, with_boxes=True).batch(n),
      test_images=lambda n: next(iter(small_object.dataset(
          "test", cfg).batch(n)))[0],
      data_record=dataclasses.asdict(cfg))
  builtin.run(experiment, root, spec, "small_object")


if __name__ == "__main__":
  runner.run(DEFAULTS, main, define_flags)
