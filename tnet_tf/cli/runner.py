"""The entry point of every experiment: flags → ``Experiment`` → trainer.

  python -m tnet_tf.cli.runner --dataset=toy --run_dir=runs/toy

One thin module per paper experiment (``imagenet``, ``fmow``, ``cub``,
``nabirds``, ``folder``) calls ``run`` with its defaults; a rerun of the
same command resumes from the latest checkpoint of ``--run_dir``.
"""
from __future__ import annotations

import logging as std_logging
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging

from tnet_tf import data as data_lib
from tnet_tf.inference import export
from tnet_tf.training import trainer
from tnet_tf.training.callbacks import Callback
from tnet_tf.config import Experiment
from tnet_tf.cli import flags as experiment_flags

FLAGS = flags.FLAGS


def experiment_and_run_dir(flag_values: flags.FlagValues = FLAGS
                           ) -> tuple[Experiment, str]:
  """The parsed command line, or a usage error naming the bad flag."""
  try:
    experiment = experiment_flags.experiment_from_flags(flag_values)
    if not flag_values.run_dir:
      raise ValueError("--run_dir is required")
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  except FileNotFoundError as err:
    raise SystemExit(f"error: {err}") from None
  return experiment, flag_values.run_dir


SMALL_FOLDER = 10_000  # training images below which the hint is shown


def pretrained_hint(experiment: Experiment) -> Optional[str]:
  """A hint for training a folder of few images from scratch."""
  if (experiment.data.name != "folder" or experiment.mode != "train" or
      experiment.model.backbone_kwargs.get("weights")):
    return None
  try:
    images = data_lib.split_size(experiment.data,
                                 experiment.data.train_split)
  except (ValueError, FileNotFoundError):
    return None  # the trainer names the problem
  if images >= SMALL_FOLDER:
    return None
  return (f"training from scratch on {images} images: pre-trained backbone "
          "weights usually help a lot with few images "
          "(--backbone_weights=imagenet for the EfficientNets, or a local "
          ".h5)")


def train(experiment: Experiment, run_dir: str,
          callbacks: Sequence[Callback] = ()) -> dict:
  """``trainer.train_and_evaluate`` with the experiment's end-of-run actions
  (its export) and errors a user can act on printed without a traceback."""
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  hint = pretrained_hint(experiment)
  if hint:
    logging.warning("hint: %s", hint)
  try:
    summary, _ = trainer.train_and_evaluate(
        experiment, run_dir,
        [*callbacks, *export.end_of_run(experiment)])
  except (ValueError, FileNotFoundError) as err:
    logging.error("%s", err)
    raise SystemExit(f"error: {err}") from None
  return summary


def main(argv: Sequence[str], flag_values: flags.FlagValues = FLAGS) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  summary = train(*experiment_and_run_dir(flag_values))
  for row in summary["eval"]:
    print(f"locations={row['locations']} top1={row['top1']:.4f} "
          f"top5={row['top5']:.4f} loss={row['loss']:.4f}")


def run(defaults: Optional[dict] = None,
        entry: Optional[Callable[[Sequence[str]], None]] = None,
        extra_flags: Optional[Callable[[flags.FlagValues], None]] = None
        ) -> None:
  """Defines the experiment flags (and ``extra_flags``), presets some with
  ``defaults`` and runs ``entry`` (default: train and evaluate one model)."""
  experiment_flags.define_flags(FLAGS)
  if extra_flags is not None:
    extra_flags(FLAGS)
  for name, value in (defaults or {}).items():
    FLAGS.set_default(name, value)
  app.run(entry or main)


if __name__ == "__main__":
  run()
