"""Megapixel MNIST (Katharopoulos & Fleuret, 2019): 1500² canvases, 5 real
MNIST digits at 28 px among 50 noise patterns, the majority class
(``tnet_tf.data.megapixel_mnist``).

  python -m tnet_tf.experiments.megapixel_mnist \\
      --run_dir=runs/megapixel_mnist

trains TNet, the same backbone on the canvas downscaled to the base
resolution and on the full canvas, and writes what the built-in benchmark
writes (``tnet_tf.experiments.synthetic``); ``--variants=...`` trains TNet
variants instead.
"""
from __future__ import annotations

import dataclasses
import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tnet_tf.training import pretrain

from tnet_tf import data as data_lib
from tnet_tf.data import megapixel_mnist
from tnet_tf.experiments import builtin
from tnet_tf.cli import runner

FLAGS = flags.FLAGS

DEFAULTS = {
    "preset": "megapixel_mnist", "dataset": "megapixel_mnist",
    "run_dir": "runs/megapixel_mnist", "train_steps": 3000,
    "batch_size": 16, "checkpoint_every": 500, "log_every": 50,
    "learning_rate": 1e-3, "eval_locations": "0;1;2;3;6;10",
    "eval_split": "test", "lambda_c": 0.3, "lambda_r": 0.3,
    "lambda_f": 0.5, "baseline_steps": 3000, "full_resolution_steps": 300,
}


def define_flags(fv: flags.FlagValues) -> None:
  builtin.define_flags(fv)
  d = dict(flag_values=fv)
  flags.DEFINE_integer("train_examples", 5000, "Training canvases.", **d)
  flags.DEFINE_integer("test_examples", 1000, "Test canvases.", **d)
  flags.DEFINE_bool("fresh_positions", False,
                    "Training canvases keep their digits and noise patterns "
                    "but are laid out anew at every reading (augmentation; "
                    "with the published fixed 5,000 TNet memorises them).",
                    **d)
  flags.DEFINE_integer("reader_steps", 0,
                       "Before training: steps (of 32 cells, each holding "
                       "one training-pool digit, with the digit's label) "
                       "pre-training the backbone that TNet and both "
                       "baselines start from (tnet_tf.training.pretrain) — like "
                       "the paper's ImageNet start; 0: from scratch, the "
                       "benchmark's weak supervision.", **d)
  flags.DEFINE_enum("label_rule", "majority",
                    list(megapixel_mnist.LABEL_RULES),
                    "majority (the benchmark), or IPS's max / top.", **d)


def main(argv):
  experiment, root, cfg = builtin.setup(argv, lambda _: {
      "train_examples": FLAGS.train_examples,
      "test_examples": FLAGS.test_examples, "label_rule": FLAGS.label_rule,
      "fresh_positions": FLAGS.fresh_positions}, data_lib.mnist_config)
  data = experiment.data
  megapixel_mnist.prepare(cfg, data.data_dir, ("train", "test"))
  record = dataclasses.asdict(cfg)
  if FLAGS.reader_steps:
    experiment, record["reader"] = _pretrained(experiment, root, cfg)
  spec = builtin.Spec(
      title=f"Megapixel MNIST ({cfg.canvas_size} px, {cfg.label_rule})",
      boxed_test=lambda n: megapixel_mnist.dataset(
          "test", cfg, data.data_dir, with_boxes=True).batch(n),
      test_images=lambda n: next(iter(megapixel_mnist.dataset(
          "test", cfg, data.data_dir).batch(n)))[0],
      data_record=record)
  builtin.run(experiment, root, spec, "megapixel_mnist")


def _pretrained(experiment, root: str, cfg):
  """The experiment starting from a backbone pre-trained on digit cells of
  the training pool (held out: cells of the test pool), and the record of
  that pre-training; an existing one in the run directory is reused."""
  model = experiment.model
  if model.backbone_kwargs.get("weights"):
    raise app.UsageError("--reader_steps pre-trains the backbone: it "
                         "cannot be combined with --backbone_weights")
  path = os.path.join(root, "reader", "weights.h5")
  # a cell as TNet's level 2 reads it (one digit wide at least)
  side = max(megapixel_mnist.DIGIT,
             round(model.cell_fraction * cfg.canvas_size))
  record_path = path + ".json"
  if os.path.isfile(path) and os.path.isfile(record_path):
    with open(record_path) as f:
      record = json.load(f)
    logging.info("reusing the pre-trained backbone %s", path)
  else:
    train = megapixel_mnist.Renderer("train", cfg)
    test = megapixel_mnist.Renderer("test", cfg)
    held_out = test.digit_cells(side, 1000, np.random.default_rng(1))
    record = pretrain.pretrain_backbone(
        model, lambda n, rng: train.digit_cells(side, n, rng),
        FLAGS.reader_steps, path, held_out, seed=experiment.data.seed)
    record.update(cell_px=side, read_px=model.base_resolution)
    with open(record_path, "w") as f:
      json.dump(record, f, indent=1)
  kwargs = {**model.backbone_kwargs, "weights": path}
  return experiment.replace(model=model.replace(backbone_kwargs=kwargs)), (
      record)


if __name__ == "__main__":
  runner.run(DEFAULTS, main, define_flags)
