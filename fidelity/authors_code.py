"""tnet-tf beside the authors' own model code (``Tpap/TNet``), run here.

For each of the paper's experiments: the authors' TNet is built by their
model file (unmodified; ``TF_USE_LEGACY_KERAS=1`` makes their ``tf.keras``
the ``tf_keras`` this project uses), given random weights (batch-norm
statistics and scalings too, so that every variable matters), saved as
their ``train.py`` saves it (``tf.train.Checkpoint(optimizer=...,
**{name: variable})``, after one optimiser step so that the optimiser's
slots are in it as in their releases), converted by
``tnet_tf.training.authors.convert`` into a run directory, loaded back by
``tnet_tf.training.runs.load``, and both models classify the same uint8
images: the cells each attends at each level, the level-1 attention
probabilities and the logits are compared.

  python fidelity/authors_code.py --mirror=/work/.mirror/Tpap+TNet/repo \
      [--cases=fmow,imagenet,cub,nabirds,fmow_901x650] [--out=fidelity/results.json]

``--mirror`` is a git directory of github.com/Tpap/TNet; its files are
extracted to a temporary folder and imported from there. Nothing of theirs
enters this repository.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tnet_tf.config import Experiment, preset  # noqa: E402
from tnet_tf.training import authors, runs  # noqa: E402


@dataclasses.dataclass
class Case:
  folder: str          # their experiment's folder
  module: str          # their model file
  args: tuple          # their TNet's arguments (results_replication.txt)
  preset: str          # ours
  size: tuple          # image size
  levels: int
  input_size: tuple = None
  backbone: str = None  # ours, when not the preset's
  baseline: bool = False  # their Baseline_CNN (train_bl.py), our baseline

  @property
  def locations(self) -> tuple:
    if self.baseline:
      return ()
    lpg = self.args[12] if self.folder == "ImageNet" else self.args[10]
    return tuple(int(round(k)) for k in lpg)


def _birds_tnet(variant: str, classes: int) -> tuple:
  return (f"EfficientNet{variant.upper()}_origWD", 1280, 5, 5, 0.35, 2,
          classes, 224, 224, 0.75, [5.0], 1.0, 1.0, 0.5, 8, "swish", True, 4,
          True)


# the authors' TNet constructor arguments, from their replication commands
CASES = {
    "imagenet": Case("ImageNet", "models", (
        "BagNet_77_TNet", 512, 5, 5, 0.34375, 2, 1000, 77, 77, 4, 1, 0.5,
        [3.0]), "imagenet", (224, 224), 2),
    "fmow": Case("fMoW", "models_fMoW", (
        "EfficientNet_lg3x3", 1280, 3, 3, 0.5, 3, 62, 224, 224, 0.5,
        [2.0, 1.0], 1.0, 1.0, 0.5, 8, "swish", True, 4), "fmow_stage2",
        (896, 896), 3),
    "cub": Case("CUB", "models_cub", _birds_tnet("b0", 200), "cub",
                (448, 448), 2),
    "nabirds": Case("NABirds", "models_nab", _birds_tnet("b0", 555),
                    "nabirds", (448, 448), 2),
    # an image the grid does not tile: level-3 cells overhang their region
    "fmow_901x650": Case("fMoW", "models_fMoW", (
        "EfficientNet_lg3x3", 1280, 3, 3, 0.5, 3, 62, 224, 224, 0.5,
        [3.0, 2.0], 1.0, 1.0, 0.5, 8, "swish", True, 4), "fmow_stage2",
        (901, 650), 3, input_size=(901, 650)),
    "cub_b4": Case("CUB", "models_cub", _birds_tnet("b4", 200), "cub",
                   (448, 448), 2, backbone="efficientnet-b4"),
    # the baselines (their train_bl.py builds Baseline_CNN)
    "imagenet_bagnet77": Case("ImageNet", "models", (
        "BagNet_77", 1000, 512, 4, 1, 0.375), "imagenet", (224, 224), 1,
        baseline=True),
    "fmow_en_b0": Case("fMoW", "models_fMoW", (
        "EfficientNet0", 62, 1280, 0.5, 1.0, 1.0, 0.5, 8, "swish", True),
        "fmow", (224, 224), 1, input_size=(224, 224), baseline=True),
    "cub_en_b0": Case("CUB", "models_cub", (
        "EfficientNetB0_origWD", 200, 1280, 0.75, 1.0, 1.0, 0.5, 8, "swish",
        True), "cub", (448, 448), 1, baseline=True),
}


def extract(mirror: str, into: str) -> str:
  """The files of the mirror's HEAD, in ``into``."""
  archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", "HEAD"],
                           check=True, capture_output=True).stdout
  subprocess.run(["tar", "x", "-C", into], input=archive, check=True)
  head = subprocess.run(["git", f"--git-dir={mirror}", "rev-parse", "HEAD"],
                        check=True, capture_output=True, text=True)
  return head.stdout.strip()


def their_module(root: str, case: Case):
  path = os.path.join(root, case.folder)
  sys.path.insert(0, path)
  try:
    sys.modules.pop(case.module, None)
    return importlib.import_module(case.module)
  finally:
    sys.path.remove(path)


def randomise(net, rng) -> None:
  """Every variable drawn afresh from ``rng`` (so that a rerun sees the
  same weights): kernels LeCun-normal (activations stay of order 1 through
  B4's depth), batch norm, biases, scalings and the
  baseline moved off their defaults so that every variable matters."""
  for v in net.variables:
    name, shape = v.name, v.shape.as_list()
    if "moving_mean" in name or "beta" in name:
      value = rng.normal(0, 0.1, shape)
    elif "moving_variance" in name or "gamma" in name:
      value = rng.uniform(0.5, 1.5, shape)
    elif "scaling" in name or "baseline_var" in name:  # near 1, near 0
      value = rng.normal(1.0 if "kernel" in name else 0.0, 0.2, shape)
    elif len(shape) >= 2:  # kernels: fan-in over all but the last axis
      fan_in = int(np.prod(shape[:-1])) if "depthwise" not in name else (
          int(np.prod(shape[:2])))
      value = rng.normal(0, np.sqrt(1.0 / fan_in), shape)
    else:  # biases
      value = rng.normal(0, 0.2, shape)
    v.assign(value.astype(np.float32))


def their_call(net, images: np.ndarray, base: int):
  """Their inference on uint8 images, fed as their input pipelines feed
  it: (x / 255 − 0.5) · 2. The level-1 attention probabilities come from
  their modules called as their ``call`` calls them at level 1 (with 3
  levels the probabilities it returns hold the level-1 mask in their
  place: ``location_probs`` is concatenated to ``attended_locations``)."""
  x = (tf.image.convert_image_dtype(tf.constant(images), tf.float32) - 0.5) * 2
  out = net(x, is_training=False, adv_eval_data=True, step=None,
            keep_step_summary=False)
  probs = out[3]
  if net.num_res_levels > 2:
    level1 = tf.image.resize(x, [base, base], method="bilinear",
                             antialias=False)
    f_map, _ = net.feature_extraction_module(level1, False, None, False)
    probs = net.location_module(f_map, False, None, False)
  return {"logits": out[0].numpy(), "attended": out[2].numpy(),
          "probs": probs.numpy()}


def their_paths(attended: np.ndarray, n2: int, locations) -> list[set]:
  """Per image, the set of attended cell paths (level-2 cell, level-3
  cell, ...): their masks hold, level after level, one row of n² flags per
  region, regions in order of their cell indices."""
  out = []
  for row in attended:
    paths, level_regions, offset = set(), [()], 0
    for _ in locations:
      chosen = []
      for region in level_regions:
        flags = row[offset:offset + n2]
        offset += n2
        chosen += [region + (int(c),) for c in np.flatnonzero(flags > 0.5)]
      paths.update(chosen)
      level_regions = sorted(chosen)
    out.append(paths)
  return out


def our_paths(indices, batch: int) -> list[set]:
  """The same sets from tnet-tf's location indices (``[B, regions, k]``
  per level, regions in the order their parents chose them)."""
  out = []
  for b in range(batch):
    paths, regions = set(), [()]
    for level in indices:
      level = np.asarray(level)[b]
      chosen = [regions[r] + (int(c),) for r in range(len(regions))
                for c in level[r]]
      paths.update(chosen)
      regions = chosen
    out.append(paths)
  return out


def build_theirs(case: Case, root: str):
  """Their model, built as their train.py (train_bl.py) builds it: called
  once on a random batch."""
  module = their_module(root, case)
  h, w = case.size
  x = tf.random.uniform([2, h, w, 3])
  if case.baseline:
    net = module.Baseline_CNN(*case.args)
    net(x, is_training=True)
  else:
    net = module.TNet(*case.args)
    net(x, is_training=True, adv_eval_data=False, step=None,
        keep_step_summary=False)
  return net, module


def save_theirs(net, module, folder: str) -> str:
  """A checkpoint as their train.py writes it, after one optimiser step
  (of zero gradients: the weights stay) so that it holds the optimiser's
  slots and step as their releases do."""
  optimizer = tf.keras.optimizers.Adam(1e-4)
  zero = [tf.zeros_like(v) for v in net.trainable_variables]
  optimizer.apply_gradients(zip(zero, net.trainable_variables))
  saved = net.variables + [optimizer.iterations]
  checkpoint = tf.train.Checkpoint(optimizer=optimizer, **{
      module.adjust_var_name(v.name, net.name): v for v in saved})
  return checkpoint.save(os.path.join(folder, "ckpt"))


def our_experiment(case: Case) -> Experiment:
  """tnet-tf's experiment of the case (what its recipe builds)."""
  model = preset(case.preset)
  changes = dict(locations=case.locations,
                 input_size=case.input_size or model.input_size)
  if case.backbone:
    changes["backbone"] = case.backbone
  if case.baseline:
    changes["levels"] = 1
  elif case.input_size:
    # their level-3 cells of 901×650 are 225×163 px, read at 224 as theirs
    changes["allow_upsampling"] = True
  return Experiment(kind="baseline" if case.baseline else "tnet",
                    model=model.replace(**changes))


def record(root: str, work: str, names: Sequence[str]) -> dict:
  """What tests need to know of the authors' checkpoints without their
  code: the variable names and shapes each case's checkpoint holds (as
  ``tnet_tf.training.authors.read_checkpoint`` reads them), and, for each
  of their EfficientNet-B0 variables, the tensorflow/tpu name it is
  restored from when their bird runs start from NoisyStudent
  (``restore_dicts/efficientnet-b0.p``) with its shape."""
  out = {}
  for name in names:
    case = CASES[name]
    net, module = build_theirs(case, root)
    prefix = save_theirs(net, module, os.path.join(work, name, "record"))
    arrays, step = authors.read_checkpoint(prefix)
    out[name] = {"step": step, "variables": {
        k: list(v.shape) for k, v in sorted(arrays.items())}}
  with open(os.path.join(root, "restore_dicts", "efficientnet-b0.p"),
            "rb") as fh:
    restore = pickle.load(fh)
  shapes = out["cub_en_b0"]["variables"]
  out["noisy_student_b0"] = {"variables": {  # theirs: [tpu name, shape]
      theirs: [tpu, shapes[theirs]] for theirs, tpu in sorted(restore.items())
      if theirs in shapes and "logits_layer" not in theirs}}
  return out


def _one_per_line(data: dict) -> str:
  """JSON with one variable a line (a diff shows what changed)."""
  lines = ["{"]
  items = list(data.items())
  for i, (key, value) in enumerate(items):
    end = "," if i < len(items) - 1 else ""
    if not isinstance(value, dict):
      lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
      continue
    lines.append(f" {json.dumps(key)}: {{")
    if "step" in value:
      lines.append(f'  "step": {json.dumps(value["step"])},')
    lines.append('  "variables": {')
    names = list(value["variables"].items())
    lines += [f"   {json.dumps(k)}: {json.dumps(v)}"
              f"{',' if j < len(names) - 1 else ''}"
              for j, (k, v) in enumerate(names)]
    lines += ["  }", f" }}{end}"]
  return "\n".join(lines + ["}", ""])


def run_case(name: str, case: Case, root: str, work: str,
             batch: int = 3) -> dict:
  rng = np.random.default_rng(0)
  tf.random.set_seed(0)
  net, module = build_theirs(case, root)
  randomise(net, rng)
  prefix = save_theirs(net, module, os.path.join(work, name, "theirs"))
  experiment = our_experiment(case)
  model = experiment.model
  run_dir = os.path.join(work, name, "ours")
  report = authors.convert(experiment, prefix, run_dir)
  loaded = runs.load(run_dir)

  h, w = case.size
  images = rng.integers(0, 256, [batch, h, w, 3]).astype(np.uint8)
  # smooth noise: neighbouring pixels related, as in photographs
  images = tf.cast(tf.clip_by_value(tf.image.resize(
      tf.image.resize(tf.cast(images, tf.float32), [h // 8, w // 8]),
      [h, w]) * 1.6 - 76, 0, 255), tf.uint8).numpy()
  if case.baseline:
    x = (tf.image.convert_image_dtype(tf.constant(images), tf.float32) -
         0.5) * 2
    their_logits = net(x, is_training=False)
    their_logits = (their_logits[0] if isinstance(their_logits, (list, tuple))
                    else their_logits).numpy()
    ours = loaded.task.network(images, training=False)
    ours = ours["logits"] if isinstance(ours, dict) else ours
    diff = float(np.abs(their_logits - ours.numpy()).max())
    scale = float(np.abs(their_logits).max())
    return {"case": name, "their_file": f"{case.folder}/{case.module}.py "
            "(Baseline_CNN)", "image": list(case.size),
            "preset": case.preset, "images": batch,
            "variables_converted": report["variables"],
            "logits_max_abs_diff": diff, "logits_scale": scale,
            "logits_relative_diff": diff / scale}
  theirs = their_call(net, images, model.base_resolution)
  ours = loaded.task.network(images, training=False)
  n2 = case.args[2] * case.args[3]
  their_sets = their_paths(theirs["attended"], n2, model.locations)
  our_sets = our_paths(ours["location_indices"], batch)
  level1_ours = np.asarray(ours["location_probs"][0]).reshape(batch, n2)
  level1_theirs = theirs["probs"][:, :n2]
  scale = float(np.abs(theirs["logits"]).max())
  diff = float(np.abs(theirs["logits"] - ours["logits"].numpy()).max())
  return {
      "case": name, "their_file": f"{case.folder}/{case.module}.py",
      "image": list(case.size), "preset": case.preset,
      "locations": list(model.locations), "images": batch,
      "variables_converted": report["variables"],
      "cells_identical": their_sets == our_sets,
      "cells_per_image": [len(s) for s in our_sets],
      "level1_probs_max_abs_diff": float(
          np.abs(level1_theirs - level1_ours).max()),
      "logits_max_abs_diff": diff, "logits_scale": scale,
      "logits_relative_diff": diff / scale}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mirror", required=True)
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--out", default=None)
  parser.add_argument("--record", default=None,
                      help="write the checkpoints' names and shapes here "
                      "(tests/training/data/authors_checkpoints.json) "
                      "instead of comparing")
  args = parser.parse_args()
  rows = []
  with tempfile.TemporaryDirectory() as root, \
      tempfile.TemporaryDirectory() as work:
    commit = extract(args.mirror, root)
    if args.record:
      names = ["imagenet", "fmow", "cub", "imagenet_bagnet77",
               "fmow_en_b0", "cub_en_b0"]
      data = {"command": "python fidelity/authors_code.py --mirror=MIRROR "
                         f"--record={args.record}",
              "authors_commit": commit, **record(root, work, names)}
      with open(args.record, "w") as fh:
        fh.write(_one_per_line(data))
      return
    for name in args.cases.split(","):
      row = run_case(name, CASES[name], root, work)
      print(json.dumps(row), flush=True)
      rows.append(row)
  result = {"command": "python fidelity/authors_code.py --mirror=MIRROR "
                       f"--cases={args.cases}",
            "authors_commit": commit, "tensorflow": tf.__version__,
            "rows": rows}
  if args.out:
    with open(args.out, "w") as fh:
      json.dump(result, fh, indent=1)


if __name__ == "__main__":
  main()
