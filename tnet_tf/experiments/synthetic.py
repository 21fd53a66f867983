"""The main job: TNet against two baselines on the built-in megapixel digits.

``python -m tnet_tf.experiments.synthetic`` (what ``make demo`` runs)
generates the canvases if they are not cached, trains TNet and the same
backbone on the canvas downscaled to the base resolution and on the full
canvas, evaluates TNet at several numbers of locations and writes into
``--run_dir``: ``results.json`` / ``results.md`` (accuracy, GMACs, ms/image
measured here), ``tradeoff.png`` (accuracy vs. GMACs, the paper's Fig. 1b),
``attention.png`` (attended regions per level, Fig. 1c), TensorBoard logs of
each run and a SavedModel of TNet. ``--variants=fidelity`` trains TNet
variants instead (``tnet_tf.experiments.ablation``).
"""
from __future__ import annotations

import dataclasses

from absl import flags
from absl import logging

from tnet_tf.data import megapixel_config
from tnet_tf.data import megapixel_digits
from tnet_tf.experiments import builtin
from tnet_tf.cli import runner
# the benchmark's metric, under the names its tests use
from tnet_tf.experiments.comparison import all_regions, localization  # noqa: F401
from tnet_tf.experiments.comparison import contains as _contains  # noqa: F401

FLAGS = flags.FLAGS

DEFAULTS = {
    "preset": "synthetic", "dataset": "megapixel_digits",
    "run_dir": "runs/synthetic", "train_steps": 2500, "batch_size": 32,
    "checkpoint_every": 500, "log_every": 50, "learning_rate": 1e-3,
    "eval_locations": "0;1;2;3;5;8;12", "selection": "greedy",
    "eval_split": "test",
    "lambda_c": 0.3, "lambda_r": 0.3, "lambda_f": 0.5,
}


def define_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  builtin.define_flags(fv)
  flags.DEFINE_integer("digit_size", 32, "Digit side on the canvas (px).",
                       **d)
  flags.DEFINE_enum("texture", None, list(megapixel_digits.TEXTURES),
                    "Texture photo behind the digits.", **d)
  flags.DEFINE_integer("train_examples", 8000, "Training canvases.", **d)
  flags.DEFINE_integer("test_examples", 1000, "Test canvases.", **d)


def main(argv):
  experiment, root, mcfg = builtin.setup(argv, lambda _: {
      "digit_size": FLAGS.digit_size, "texture": FLAGS.texture,
      "train_examples": FLAGS.train_examples,
      "test_examples": FLAGS.test_examples}, megapixel_config)
  data = experiment.data
  r = experiment.model.base_resolution
  logging.info("Megapixel digits: %d px canvases, %d px digits (%.1f px in "
               "the %d px downscaled view)", mcfg.canvas_size,
               mcfg.digit_size, mcfg.digit_size * r / mcfg.canvas_size, r)
  megapixel_digits.prepare(mcfg, data.data_dir, ("train", "test"))

  def boxed_test(batch):
    def targets(example):  # the target-class digits decide the label
      return {**example, "boxes": example["boxes"][:mcfg.num_target]}
    return megapixel_digits.dataset("test", mcfg, data.data_dir,
                                    with_boxes=True).map(targets).batch(batch)

  spec = builtin.Spec(
      title=f"Megapixel digits ({mcfg.canvas_size} px canvas, r = {r})",
      boxed_test=boxed_test,
      test_images=lambda n: next(iter(megapixel_digits.dataset(
          "test", mcfg, data.data_dir).batch(n)))[0],
      data_record=dataclasses.asdict(mcfg))
  builtin.run(experiment, root, spec, "synthetic")


if __name__ == "__main__":
  runner.run(DEFAULTS, main, define_flags)
