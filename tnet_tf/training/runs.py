"""Run directories: their record, their checkpoints, their trained model.

A run directory (``tnet_tf.training.trainer``) holds ``config.json`` (the
``Experiment`` record), ``checkpoints/``, ``summary.json`` and
``classes.json``. Export, attention, compression and prediction load a
trained model through ``load`` here, and nowhere else.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tnet_tf import version
from tnet_tf.config import Experiment
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.training import tasks

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
CLASSES = "classes.json"
HALTING = "halting"  # a fitted halting module (tnet_tf.inference.adaptive)


def record_path(run_dir: str) -> str:
  return os.path.join(run_dir, CONFIG)


def write_record(run_dir: str, experiment: Experiment) -> None:
  with open(record_path(run_dir), "w") as fh:
    json.dump(experiment.to_record(), fh, indent=1)


def read_record(run_dir: str) -> Optional[dict]:
  """The raw ``config.json`` record of ``run_dir``, or None."""
  path = record_path(run_dir)
  if not os.path.exists(path):
    return None
  with open(path) as fh:
    return json.load(fh)


def read_experiment(run_dir: str) -> Experiment:
  record = read_record(run_dir)
  if record is None:
    raise FileNotFoundError(f"{record_path(run_dir)} not found: not a run "
                            "directory of tnet_tf.experiments")
  return Experiment.from_record(record)


def checkpoint_path(path: str) -> str:
  """A checkpoint prefix, or the latest checkpoint of a run directory (or
  of a folder of checkpoints)."""
  if tf.io.gfile.isdir(path):
    found = (tf.train.latest_checkpoint(os.path.join(path, CHECKPOINTS))
             or tf.train.latest_checkpoint(path))
    if not found:
      raise FileNotFoundError(f"no checkpoint in {path} or {path}/"
                              f"{CHECKPOINTS}")
    return found
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"checkpoint not found: {path}(.index)")
  return path


def run_dir_of(path: str) -> Optional[str]:
  """The run directory a checkpoint (prefix or folder) belongs to: the
  nearest of it and its two parents holding a ``config.json``."""
  path = os.path.abspath(path)
  for folder in (path, os.path.dirname(path),
                 os.path.dirname(os.path.dirname(path))):
    if os.path.isfile(record_path(folder)):
      return folder
  return None


def read_weights(task: tasks.Classifier, checkpoint: str, what: str) -> None:
  """Restores ``task``'s weights from a training checkpoint (no optimiser
  state), or a ValueError naming ``what`` when they do not match."""
  try:
    tf.train.Checkpoint(model=task).read(
        checkpoint).assert_existing_objects_matched().expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as err:
    raise ValueError(f"{what} does not match this model: "
                     f"{str(err).splitlines()[0][:400]}") from err


def write_class_names(run_dir: str, names) -> None:
  """Records the class names of a run (``classes.json``)."""
  with open(os.path.join(run_dir, CLASSES), "w") as fh:
    json.dump(list(names), fh, indent=1)


def write_run(run_dir: str, experiment: Experiment, task, names) -> str:
  """A run directory of ``task`` as it is (its record, one checkpoint and
  the class names), without training: for models made elsewhere and for
  benchmarks. Returns the checkpoint's path."""
  os.makedirs(run_dir, exist_ok=True)
  write_record(run_dir, experiment)
  write_class_names(run_dir, names)
  return tf.train.CheckpointManager(
      tf.train.Checkpoint(model=task), os.path.join(run_dir, CHECKPOINTS),
      1).save()


def class_names(run_dir: str, num_classes: int) -> list[str]:
  """The class names a run recorded (classes.json / summary.json)."""
  for name, key in ((CLASSES, None), ("summary.json", "data")):
    path = os.path.join(run_dir, name)
    if os.path.exists(path):
      with open(path) as fh:
        data = json.load(fh)
      names = data.get(key, {}).get("classes") if key else data
      if names and len(names) == num_classes:
        return [str(n) for n in names]
  return [str(i) for i in range(num_classes)]


@dataclasses.dataclass
class LoadedRun:
  """A trained run: its experiment, its task with the weights of
  ``checkpoint``, and the class names."""
  run_dir: str
  experiment: Experiment
  task: tasks.Classifier
  checkpoint: str
  class_names: list[str]

  def weights_digest(self) -> str:
    """SHA-256 of the network's weights: what ties a halting module to the
    model it was fitted to (a checkpoint name alone repeats when a run
    directory is trained again)."""
    return weights_digest(self.task.network)


def load(path: str, checkpoint: Optional[str] = None) -> LoadedRun:
  """The model of a run directory (or of a checkpoint inside one),
  restored from the given checkpoint or the latest one."""
  run_dir = (path if os.path.isfile(record_path(path)) else run_dir_of(path))
  if run_dir is None:
    raise FileNotFoundError(f"{record_path(path)} not found: not a run "
                            "directory of tnet_tf.experiments")
  experiment = read_experiment(run_dir)
  if checkpoint is None:
    checkpoint = checkpoint_path(path if path != run_dir else run_dir)
  else:
    checkpoint = checkpoint_path(checkpoint)
  # the checkpoint has every weight: no pre-trained backbone file needed
  kwargs = {k: v for k, v in experiment.model.backbone_kwargs.items()
            if k != "weights"}
  task = tasks.create(experiment.kind,
                      experiment.model.replace(backbone_kwargs=kwargs),
                      experiment.loss, experiment.exploration)
  read_weights(task, checkpoint, f"checkpoint {checkpoint}")
  return LoadedRun(run_dir, experiment, task, checkpoint,
                   class_names(run_dir, experiment.model.num_classes))


def weights_digest(model: keras.Model) -> str:
  """SHA-256 of every weight of ``model``, in order: which weights a record
  (a fitted halting module, a summary) belongs to."""
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
  return digest.hexdigest()


def versions() -> dict:
  """The versions a run was made with, for its records."""
  return {"tnet_tf": version.__version__, "tensorflow": tf.__version__,
          "tf_keras": keras.__version__, "numpy": np.__version__,
          "python": platform.python_version()}


# ------------------------------------------------------- halting module
def save_halting(module: halting_lib.HaltingModule, run_dir: str,
                 checkpoint: str, about: dict,
                 digest: Optional[str] = None) -> str:
  """Writes a fitted halting module into the run directory with what it was
  fitted to: the checkpoint, the weights' ``digest`` and ``about``."""
  path = os.path.join(run_dir, HALTING)
  os.makedirs(path, exist_ok=True)
  np.savez(os.path.join(path, "weights.npz"), *module.get_weights())
  with open(os.path.join(path, "halting.json"), "w", encoding="utf-8") as f:
    json.dump({**module.get_config(), "features": list(
        halting_lib.FEATURES), "checkpoint": os.path.basename(checkpoint),
               "weights_sha256": digest, **about}, f, indent=1)
    f.write("\n")
  return path


def halting_of(loaded) -> Optional[halting_lib.HaltingModule]:
  """The fitted halting module of a loaded run (``runs.load``), checked
  against its checkpoint and weights (hashed only when there is one);
  ``None`` if it has none."""
  if not os.path.isfile(os.path.join(loaded.run_dir, HALTING,
                                     "halting.json")):
    return None
  return load_halting(loaded.run_dir, loaded.checkpoint,
                      loaded.weights_digest())


def load_halting(run_dir: str, checkpoint: str,
                 digest: Optional[str] = None
                 ) -> Optional[halting_lib.HaltingModule]:
  """The run's fitted halting module, ``None`` if it has none. One fitted
  to another checkpoint of the run, to other weights (``digest``,
  ``weights_digest``) or to other statistics is an error that names
  both."""
  path = os.path.join(run_dir, HALTING, "halting.json")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    about = json.load(f)
  if about.get("checkpoint") != os.path.basename(checkpoint):
    raise ValueError(
        f"{path} was fitted to checkpoint {about.get('checkpoint')}, the "
        f"run is at {os.path.basename(checkpoint)}: fit it again "
        "(python -m tnet_tf.cli.adaptive --fit_halting ...)")
  if digest and about.get("weights_sha256") and (
      about["weights_sha256"] != digest):
    raise ValueError(
        f"{path} was fitted to other weights than {checkpoint} holds now "
        f"(sha256 {about['weights_sha256'][:12]}…, now {digest[:12]}…: the "
        "run was trained again): fit it again (python -m tnet_tf.cli.adaptive "
        "--fit_halting ...)")
  if about.get("features") != list(halting_lib.FEATURES):
    raise ValueError(f"{path} scores other statistics than this version's "
                     f"({about.get('features')}): fit it again")
  module = halting_lib.HaltingModule(about["hidden"], about["group"],
                                     about["max_locations"],
                                     about.get("first", 0))
  with np.load(os.path.join(run_dir, HALTING, "weights.npz")) as w:
    module.set_weights([w[f"arr_{i}"] for i in range(len(w.files))])
  return module
