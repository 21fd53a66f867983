"""A released checkpoint of the authors (``Tpap/TNet``) as a tnet-tf run.

  python -m tnet_tf.cli.convert --flagfile=experiments/fmow/tnet_stage2.flags \
      --preset=fmow_stage2 --authors_checkpoint=PATH/ckpt-N \
      --run_dir=runs/fmow/authors_tnet [--dataset=fmow --data_dir=TFDS_DIR]

The recipe says which model the checkpoint holds (the paper experiment's
``.flags``, with the preset its experiment module would give: ``imagenet``,
``fmow`` / ``fmow_stage2``, ``cub``, ``nabirds``; add ``--backbone`` for
the B1…B4 birds and ``--kind=baseline`` for the baselines). The classes are
the checkpoint's unless ``--num_classes`` is given; the data is needed only
to count a recipe's epochs (without it the run records the default
training length: it matters only to training the run further). Every variable is mapped or the command names the ones that do
not fit (``tnet_tf.training.authors``). Then, as for any run:

  python -m tnet_tf.experiments.fmow --flagfile=experiments/fmow/tnet_stage2_eval.flags \
      --run_dir=runs/fmow/authors_tnet --data_dir=TFDS_DIR
  python -m tnet_tf.cli.predict --run_dir=runs/fmow/authors_tnet IMAGES...
  python -m tnet_tf.cli.export --run_dir=runs/fmow/authors_tnet
"""
from __future__ import annotations

import json
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from tnet_tf.cli import flags as experiment_flags
from tnet_tf.cli import runner
from tnet_tf.training import authors

FLAGS = flags.FLAGS
LOGITS = "feature_extraction/logits_layer/linear/kernel"


def define_flags(flag_values: flags.FlagValues) -> None:
  flags.DEFINE_string("authors_checkpoint", None,
                      "The authors' checkpoint: a prefix (.../ckpt-N) or "
                      "the folder holding it.", flag_values=flag_values)
  flags.DEFINE_string("class_names", None,
                      "Optional: a JSON list or a text file (one per line) "
                      "of the class names, in the order of the logits.",
                      flag_values=flag_values)


def _class_names(path: str):
  with open(path) as fh:
    text = fh.read()
  if text.lstrip().startswith("["):
    return [str(n) for n in json.loads(text)]
  return [line.strip() for line in text.splitlines() if line.strip()]


def _experiment(flag_values: flags.FlagValues):
  """The recipe's experiment; when the recipe counts epochs of a dataset
  that is not here, the same without a training length."""
  try:
    return experiment_flags.experiment_from_flags(flag_values)
  except (ValueError, FileNotFoundError) as err:
    if not (flag_values.train_epochs or flag_values.lr_decay_epochs):
      raise
    logging.warning("the recipe counts epochs of its data, which is not "
                    "here (%s): the converted run records the default "
                    "training length instead", err)
    flag_values.train_epochs = 0
    flag_values.lr_decay_epochs = None
    return experiment_flags.experiment_from_flags(flag_values)


def main(argv: Sequence[str], flag_values: flags.FlagValues = FLAGS) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values
  if not f.authors_checkpoint or not f.run_dir:
    raise app.UsageError("--authors_checkpoint and --run_dir are required")
  try:
    arrays, _ = authors.read_checkpoint(f.authors_checkpoint)
    if f.num_classes is None and LOGITS in arrays:
      f.num_classes = int(arrays[LOGITS].shape[-1])
    experiment = _experiment(f)
    names = _class_names(f.class_names) if f.class_names else None
    if names is not None and len(names) != experiment.model.num_classes:
      raise ValueError(f"{f.class_names} names {len(names)} classes, the "
                       f"model has {experiment.model.num_classes}")
    report = authors.convert(experiment, f.authors_checkpoint, f.run_dir,
                             names)
  except (ValueError, FileNotFoundError, FileExistsError) as err:
    raise SystemExit(f"error: {err}") from None
  logging.info("converted %d variables of %s (step %s) into %s",
               report["variables"], report["source"], report["step"],
               f.run_dir)
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  runner.run(entry=main, extra_flags=define_flags)
