"""What the built-in benchmarks share: their extra flags, and the choice
between the main job (TNet against the downscaled and the full-resolution
baselines, ``comparison``) and a table of TNet variants (``ablation``).

Each benchmark's entry point (``synthetic``, ``small_object``,
``megapixel_mnist``) says how its data is made and which boxes decide its
labels (``Spec``), then calls ``run``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

from absl import app
from absl import flags
import tensorflow as tf

from tnet_tf.config import Experiment
from tnet_tf.experiments import ablation
from tnet_tf.experiments import comparison
from tnet_tf.cli import runner


@dataclasses.dataclass
class Spec:
  """A benchmark's data as the jobs need it."""
  title: str
  # batches of test dicts: "image", "label" and "boxes" of the objects
  # that decide the label (empty boxes for the others)
  boxed_test: Callable[[int], tf.data.Dataset]
  # a batch of test images as stored, for the timings
  test_images: Callable[[int], tf.Tensor]
  data_record: dict = dataclasses.field(default_factory=dict)


def define_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_integer("baseline_steps", 2000,
                       "Training steps of the downscaled baseline.", **d)
  flags.DEFINE_integer("full_resolution_steps", 800,
                       "Training steps of the full-resolution baseline.", **d)
  flags.DEFINE_integer("overlay_examples", 8, "Images in attention.png.",
                       **d)
  flags.DEFINE_integer("timing_batch", 16,
                       "Batch size of the ms/image timing.", **d)
  flags.DEFINE_enum("variants", None, sorted(ablation.VARIANT_SETS),
                    "Instead of the main job: train these TNet variants "
                    "(tnet_tf.experiments.ablation) and write their table "
                    "to --ablation_out.", **d)
  flags.DEFINE_string("ablation_out", None,
                      "The variants' table (JSON; a .md beside it).", **d)
  flags.DEFINE_integer("seeds", 1, "--variants: training seeds each.", **d)


def setup(argv, options: Callable[[Experiment], dict],
          config_of: Callable, fv: flags.FlagValues = flags.FLAGS):
  """The experiment of the command line with the benchmark's data
  ``options`` (a function of the experiment), its run directory and the
  generator's config (``config_of(data)``); bad flags or options are a
  usage error naming them."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  experiment, root = runner.experiment_and_run_dir(fv)
  try:
    data = dataclasses.replace(experiment.data, options=options(experiment))
    cfg = config_of(data)
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  return experiment.replace(data=data), root, cfg


def run(experiment: Experiment, root: str, spec: Spec, module: str,
        fv: flags.FlagValues = flags.FLAGS) -> dict:
  """The main job, or (``--variants``) the variants' table."""
  command = f"python -m tnet_tf.experiments.{module} " + " ".join(
      sys.argv[1:])
  if fv.variants:
    return ablation.run(
        experiment, root, ablation.VARIANT_SETS[fv.variants],
        spec.boxed_test, command,
        fv.ablation_out or os.path.join(root, "ablation.json"), fv.seeds)
  return comparison.run(comparison.Comparison(
      experiment, root, fv.baseline_steps, fv.full_resolution_steps,
      spec.test_images(fv.timing_batch), spec.boxed_test, title=spec.title,
      overlay_examples=fv.overlay_examples, data_record=spec.data_record),
                        command=command)
