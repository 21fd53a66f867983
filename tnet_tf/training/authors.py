"""The authors' released checkpoints (``Tpap/TNet``) as tnet-tf runs.

The authors publish trained TNets and baselines for every table (ImageNet,
fMoW, CUB, NABirds) as TF2 ``tf.train.Checkpoint``s holding each variable
under its name in their model (``feature_extraction/part2_block1/...``,
``location_prediction/...``, ``baseline_var``; their ``train.py`` saves
``Checkpoint(optimizer=..., **{name: variable})``). ``convert`` reads one,
builds the model of the matching recipe, maps every variable to its place
(``authors_names``), and writes a run directory that ``--mode=eval``,
``tnet_tf.cli.predict`` and ``tnet_tf.cli.export`` take like any other.

Nothing is loaded partially: a variable of the model the checkpoint lacks,
a variable of the checkpoint the model has no place for, or one of another
shape is a ``CheckpointMismatch`` naming each of them. The optimiser's
state is not carried over (a converted run evaluates, predicts and exports;
training it further starts its optimiser afresh).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf.config import Experiment
from tnet_tf.model.backbones import bagnet
from tnet_tf.model.backbones import efficientnet
from tnet_tf.model.tnet import TNet
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.training import trainer

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# the optimiser's step: ``iter`` in the TF 2.3 of the release, ``iteration``
# in the optimisers of later Keras versions
STEP_NAMES = ("iter", "iteration")
PROVENANCE = "authors_checkpoint.json"  # what a converted run came from


class CheckpointMismatch(ValueError):
  """The checkpoint and the model do not hold the same variables."""

  def __init__(self, source: str, missing: Sequence[str],
               unexpected: Sequence[str], misshaped: Sequence[str]):
    self.missing, self.unexpected = list(missing), list(unexpected)
    self.misshaped = list(misshaped)
    parts = []
    for what, names in (("missing from the checkpoint", self.missing),
                        ("in the checkpoint with no place in the model",
                         self.unexpected),
                        ("of another shape", self.misshaped)):
      if names:
        shown = ", ".join(names[:12])
        more = f" (and {len(names) - 12} more)" if len(names) > 12 else ""
        parts.append(f"{len(names)} {what}: {shown}{more}")
    super().__init__(f"{source} does not match the model: " +
                     "; ".join(parts))


def _unescape(key: str) -> str:
  """A checkpoint key's object path back to the name it was saved under
  (``/`` in a name is stored as ``.S``, ``.`` as ``..``)."""
  out, i = [], 0
  while i < len(key):
    if key[i] == "." and i + 1 < len(key) and key[i + 1] in "S.":
      out.append("/" if key[i + 1] == "S" else ".")
      i += 2
    else:
      out.append(key[i])
      i += 1
  return "".join(out)


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], Optional[int]]:
  """The variables of an authors' checkpoint (a prefix, or a folder with a
  ``checkpoint`` file) by their names, and the training step it was saved
  at (None when it holds none). Optimiser slots are left out."""
  prefix = tf.train.latest_checkpoint(path) if tf.io.gfile.isdir(path) else path
  if not prefix or not tf.io.gfile.exists(prefix + ".index"):
    raise FileNotFoundError(f"no TensorFlow checkpoint at {path} (a prefix "
                            "such as .../ckpt-100, whose .index file "
                            "exists, or a folder holding one)")
  reader = tf.train.load_checkpoint(prefix)
  arrays, step = {}, None
  for key in reader.get_variable_to_shape_map():
    if (not key.endswith(SUFFIX) or key.startswith("optimizer/") or
        ".OPTIMIZER_SLOT" in key or key.startswith("save_counter")):
      continue
    name = _unescape(key[:-len(SUFFIX)])
    for model in ("TNet/", "Baseline_CNN/"):  # the release's scope, if kept
      if name.startswith(model):
        name = name[len(model):]
    if name in STEP_NAMES:
      step = int(reader.get_tensor(key))
    else:
      arrays[name] = reader.get_tensor(key)
  return arrays, step


@dataclasses.dataclass
class Place:
  """Where the authors' variables ``names`` go: ``variable``, after
  ``combine`` (their arrays → its value) for the few that differ in
  layout; ``shapes`` are the shapes ``names`` must have."""
  variable: tf.Variable
  names: tuple
  shapes: tuple
  combine: Callable = lambda arrays: arrays[0]


def _weights(layer_names: dict, model, prefix: str) -> list[Place]:
  """Places of every weight of the Keras ``model`` whose layer the
  authors' model has (``layer_names``: Keras layer → their path)."""
  out = []
  for layer in model.layers:
    theirs = layer_names(layer.name)
    for weight in layer.weights:
      attr = weight.name.split("/")[-1].split(":")[0]
      if theirs is None:
        continue
      out.append(Place(weight, (f"{prefix}{theirs}/{attr}",),
                       (weight.shape.as_list(),)))
  return out


def _backbone(model, backbone: str) -> list[Place]:
  if backbone == "bagnet77":
    rule = bagnet.authors_layer
  elif backbone.startswith("efficientnet-"):
    rule = efficientnet.authors_layer
  else:
    raise ValueError(f"the authors have no {backbone!r} backbone: their "
                     "checkpoints hold BagNet-77 or EfficientNets")
  return _weights(rule, model, "feature_extraction/")


def _dense(layer, theirs: str, conv: bool = False) -> list[Place]:
  """A Dense layer; ``conv``: theirs is the same map as a 1×1 conv."""
  kernel, bias = layer.kernel, layer.bias
  shape = kernel.shape.as_list()
  return [Place(kernel, (f"{theirs}/kernel",),
                ([1, 1, *shape] if conv else shape,),
                lambda arrays, shape=shape: arrays[0].reshape(shape)),
          Place(bias, (f"{theirs}/bias",), (bias.shape.as_list(),))]


def _location(module, prefix: str) -> list[Place]:
  coords = module.coordinates  # their row and column scalings, stacked
  places = [
      Place(coords.scale, (f"{prefix}/height_scaling/kernel",
                           f"{prefix}/width_scaling/kernel"), ([1, 1],) * 2,
            lambda arrays: np.array([a.reshape(()) for a in arrays])),
      Place(coords.shift, (f"{prefix}/height_scaling/bias",
                           f"{prefix}/width_scaling/bias"), ([1],) * 2,
            lambda arrays: np.array([a.reshape(()) for a in arrays]))]
  if module.variant == "bagnet":
    places += _dense(module.fuse, f"{prefix}/conv2d")
  else:
    places += (_dense(module.init_conv, f"{prefix}/init/conv2d") +
               _dense(module.se_reduce, f"{prefix}/se/conv2d_1", conv=True) +
               _dense(module.se_expand, f"{prefix}/se/conv2d_2", conv=True) +
               _dense(module.fuse, f"{prefix}/final/conv2d"))
  return places + _dense(module.output_conv, f"{prefix}/output_linear")


def authors_names(task: tasks.Classifier, backbone: str) -> list[Place]:
  """Every variable of ``task`` (built; its backbone ``backbone``) with the
  names of the authors' variables it comes from."""
  network = tasks.network_of(task)
  logits = "feature_extraction/logits_layer/linear"
  if not isinstance(network, TNet):  # a baseline: backbone → Dense
    places = _backbone(network, backbone)
    return places + _dense(network.get_layer("logits"), logits)
  config = network.config
  places = _backbone(network.feature_extraction.model, config.backbone)
  location = ("location_prediction_earlyLocs" if config.backbone ==
              "bagnet77" else "location_prediction")
  places += _location(network.location_module, location)
  places += _dense(network.positional_module.dense, "feature_posBurn/linear")
  places += _dense(network.classification_module.linear, logits)
  if network.feature_weighting is not None:
    fw = network.feature_weighting
    places += (_dense(fw.squeeze, "feat_weighting/se/dense_1") +
               _dense(fw.excite, "feat_weighting/se/dense_2") +
               _dense(fw.score, "feat_weighting/output_linear"))
  places.append(Place(task.reward_baseline, ("baseline_var",), ([],)))
  return places


def assign(task: tasks.Classifier, backbone: str,
           arrays: dict[str, np.ndarray],
           source: str = "the checkpoint") -> int:
  """Sets every variable of ``task`` (its backbone ``backbone``) from the
  authors' ``arrays`` (by name), or raises ``CheckpointMismatch`` before
  setting any. Returns the number of the authors' variables read."""
  places = authors_names(task, backbone)
  wanted = [name for place in places for name in place.names]
  missing = [n for n in wanted if n not in arrays]
  unexpected = sorted(set(arrays) - set(wanted))
  misshaped = [f"{name} {list(np.shape(arrays[name]))} (expected {shape})"
               for place in places
               for name, shape in zip(place.names, place.shapes)
               if name in arrays and list(np.shape(arrays[name])) != shape]
  if missing or unexpected or misshaped:
    raise CheckpointMismatch(source, missing, unexpected, misshaped)
  for place in places:
    place.variable.assign(place.combine([arrays[n] for n in place.names]))
  if backbone.startswith("efficientnet-"):
    # their EfficientNets read (x/255 − 0.5)·2; ours normalise in the model
    network = tasks.network_of(task)
    efficientnet.authors_input_range(
        network.feature_extraction.model if isinstance(network, TNet)
        else network)
  return len(wanted)


def convert(experiment: Experiment, checkpoint: str, run_dir: str,
            class_names: Optional[Sequence[str]] = None) -> dict:
  """Writes ``run_dir``: the run ``experiment`` would train, holding the
  weights of the authors' ``checkpoint``. Returns what was converted (also
  written to ``authors_checkpoint.json`` in the run)."""
  arrays, step = read_checkpoint(checkpoint)
  if tf.io.gfile.exists(runs.record_path(run_dir)):
    raise FileExistsError(f"{run_dir} is already a run directory: convert "
                          "into a new one")
  model_config = experiment.model.replace(backbone_kwargs={
      k: v for k, v in experiment.model.backbone_kwargs.items()
      if k != "weights"})  # every weight comes from the checkpoint
  experiment = dataclasses.replace(experiment, model=model_config,
                                   mode="eval")
  run = trainer.open_run(experiment, run_dir)
  with run.strategy.scope():
    run.task = tasks.build(experiment)
  # variables exist once the network has seen an image
  run.task.network(np.zeros([1, *model_config.input_size, 3], np.uint8),
                   training=False)
  read = assign(run.task, model_config.backbone, arrays, checkpoint)
  checkpoint_obj, step_var = trainer.checkpoint_of(run)
  trainer.build_optimizer_state(run)
  step_var.assign(step or 0)
  runs.write_record(run_dir, experiment)
  if class_names is not None:
    runs.write_class_names(run_dir, class_names)
  manager = tf.train.CheckpointManager(
      checkpoint_obj, os.path.join(run_dir, runs.CHECKPOINTS), 1)
  saved = manager.save(checkpoint_number=step or 0)
  report = {"source": os.path.abspath(checkpoint), "step": step,
            "variables": read, "checkpoint": saved,
            "kind": experiment.kind, "backbone": model_config.backbone,
            "weights_digest": runs.weights_digest(run.task.network)}
  with open(os.path.join(run_dir, PROVENANCE), "w") as fh:
    json.dump(report, fh, indent=1)
  return report
