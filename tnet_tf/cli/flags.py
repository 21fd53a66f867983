"""The command line of every experiment, made from the configuration.

``define_flags(flag_values)`` defines one flag per field of the
``Experiment`` dataclasses (``tnet_tf.config``), found by walking them: its
name is the field's (or the field's ``metadata["flag"]``), its help, default
and choices are the field's. A few flags are not fields (``preset``,
``run_dir``, counts in epochs, the backbone's and the dataset's options by
name): ``experiment_from_flags(flag_values)`` folds them in while building
the ``Experiment`` the flags describe.

Flags of the model (and its location policy) default to the preset's value
(``--preset``); the others to the field's default.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Optional

from absl import flags

from tnet_tf import data as data_lib
from tnet_tf.config import PRESETS, TINY_CNN_NORMS, DataConfig, Experiment
from tnet_tf.data import augment
from tnet_tf.model import backbones
from tnet_tf.training import tasks

# the groups a preset gives: their flags default to the preset's value
PRESET_GROUPS = ("model",)


# ------------------------------------------------------ the fields' flags
@dataclasses.dataclass(frozen=True)
class Leaf:
  """A field of the configuration that holds a value (not a group)."""
  path: tuple[str, ...]  # e.g. ("model", "policy", "selection")
  field: dataclasses.Field
  type: Any  # the annotation, None stripped from an Optional
  optional: bool

  @property
  def flag(self) -> str:
    return self.field.metadata.get("flag", self.field.name)

  @property
  def from_preset(self) -> bool:
    return self.path[0] in PRESET_GROUPS


def leaves(cls=Experiment, prefix: tuple[str, ...] = ()) -> list[Leaf]:
  """Every value field under ``cls``, depth first, in declaration order."""
  hints = typing.get_type_hints(cls)
  out = []
  for field in dataclasses.fields(cls):
    annotation = hints[field.name]
    if dataclasses.is_dataclass(annotation):
      out += leaves(annotation, prefix + (field.name,))
      continue
    args = typing.get_args(annotation)
    optional = (typing.get_origin(annotation) is typing.Union and
                type(None) in args)
    if optional:
      (annotation,) = [a for a in args if a is not type(None)]
    out.append(Leaf(prefix + (field.name,), field, annotation, optional))
  return out


def _element(leaf: Leaf) -> Optional[type]:
  """The element type of a tuple field (``tuple[int, ...]``, ``tuple[int,
  int]``), else None."""
  if typing.get_origin(leaf.type) is not tuple:
    return None
  return typing.get_args(leaf.type)[0]


def _is_settings(leaf: Leaf) -> bool:
  """A tuple of tuples of ints (``'0;1;2,1'`` on the command line)."""
  return typing.get_origin(_element(leaf)) is tuple


def _default(leaf: Leaf):
  """The flag's default, in the flag's own type."""
  if leaf.from_preset:
    return None
  if "flag_default" in leaf.field.metadata:
    return leaf.field.metadata["flag_default"]
  field = leaf.field
  value = (field.default if field.default is not dataclasses.MISSING else
           field.default_factory())
  if isinstance(value, dict):
    return json.dumps(value) if value else None
  if _is_settings(leaf):
    return ";".join(",".join(map(str, s)) or "0" for s in value) or None
  if isinstance(value, tuple):
    return [str(v) for v in value]
  return value


def _define(leaf: Leaf, fv: flags.FlagValues) -> None:
  name, default = leaf.flag, _default(leaf)
  help_text = leaf.field.metadata.get("help") or leaf.field.name
  if leaf.from_preset:
    help_text += " (default: the preset's)"
  d = dict(flag_values=fv)
  choices = leaf.field.metadata.get("choices")
  if leaf.type is bool:
    flags.DEFINE_bool(name, default, help_text, **d)
  elif leaf.type is int:
    flags.DEFINE_integer(name, default, help_text, **d)
  elif leaf.type is float:
    flags.DEFINE_float(name, default, help_text, **d)
  elif leaf.type is str and choices:
    flags.DEFINE_enum(name, default, [c for c in choices if c is not None],
                      help_text, **d)
  elif leaf.type is str or _is_settings(leaf):
    flags.DEFINE_string(name, default, help_text, **d)
  elif _element(leaf) is not None:
    flags.DEFINE_list(name, default, help_text, **d)
  elif typing.get_origin(leaf.type) is dict:
    flags.DEFINE_string(name, default, help_text + " (JSON)", **d)
  else:
    raise TypeError(f"no flag for the field {'.'.join(leaf.path)} of type "
                    f"{leaf.type}")


_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _parsed(name: str, text: str, kind: type):
  try:
    return kind(text)
  except ValueError:
    raise ValueError(f"--{name}: {text!r} is not {_NAMES[kind]}") from None


def field_value(leaf: Leaf, raw):
  """The field's value from its flag's (None stays None)."""
  if raw is None:
    return None
  name = leaf.flag
  if _is_settings(leaf):
    settings = []
    for part in raw.split(";") if raw else ():
      try:
        settings.append(tuple(int(k) for k in part.split(",") if k.strip()))
      except ValueError:
        raise ValueError(f"--{name}: {part!r} is not a comma list of "
                         "integers") from None
    return tuple(settings)
  if _element(leaf) is not None:
    return tuple(_parsed(name, v, _element(leaf)) for v in raw)
  if typing.get_origin(leaf.type) is dict:
    value = json.loads(raw) if raw else {}
    if not isinstance(value, dict):
      raise ValueError(f"--{name}: {raw!r} is not a JSON object")
    return value
  return raw


# --------------------------------------------- the flags that are not fields
def _define_others(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_enum("preset", "toy", sorted(PRESETS),
                    "Model preset (tnet_tf.config.PRESETS).", **d)
  flags.DEFINE_string("run_dir", None, "Run directory (checkpoints, logs).",
                      **d)
  flags.DEFINE_float("train_epochs", 0,
                     "If > 0: train this many epochs of --train_split "
                     "(sets --train_steps from the split's size).", **d)
  flags.DEFINE_list("lr_decay_epochs", [],
                    "Step-decay boundaries in epochs (instead of steps).",
                    **d)
  flags.DEFINE_list("lr_decay_fractions", [],
                    "Step-decay boundaries as fractions of the training "
                    "steps, e.g. 0.8 (instead of steps or epochs).", **d)
  # entries of DataConfig.options
  flags.DEFINE_enum("augmentation", None, sorted(augment.AUGMENTATIONS),
                    "Training augmentation (default: the dataset's).", **d)
  flags.DEFINE_float("val_fraction", None,
                     "--dataset=folder without a val/ folder: the share of "
                     "each class held out for validation (default 0.1).",
                     **d)
  # entries of ModelConfig.backbone_kwargs
  flags.DEFINE_float("block_drop_rate", None, "EfficientNet stochastic "
                     "depth.", **d)
  flags.DEFINE_integer("num_dropout_layers", None, "BagNet spatial "
                       "dropouts.", **d)
  flags.DEFINE_float("dropout_keep", None,
                     "BagNet dropout keep probability.", **d)
  flags.DEFINE_enum("backbone_norm", None, list(TINY_CNN_NORMS),
                    "Tiny CNN normalisation (renorm: batch "
                    "renormalisation, which keeps training and inference "
                    "from disagreeing; see tnet_tf.model.backbones.tiny).",
                    **d)
  flags.DEFINE_string("backbone_weights", None,
                      "Pre-trained backbone weights: 'imagenet' (Keras' "
                      "ImageNet weights, EfficientNets; downloaded once, or "
                      "placed in ~/.keras/models offline), a local .h5, or "
                      "a tensorflow/tpu EfficientNet checkpoint prefix "
                      "(NoisyStudent, what the authors' bird runs start "
                      "from, e.g. noisy_student_efficientnet-b0/model.ckpt).",
                      **d)


# flag → the backbone_kwargs entry it sets
BACKBONE_OPTIONS = {"block_drop_rate": "block_drop_rate",
                    "num_dropout_layers": "num_dropout_layers",
                    "dropout_keep": "dropout_keep", "backbone_norm": "norm",
                    "backbone_weights": "weights"}


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines every experiment flag in ``flag_values``."""
  names = [leaf.flag for leaf in leaves()]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"fields share the flag names {repeated}: give one a "
                     "metadata['flag']")
  for leaf in leaves():
    _define(leaf, flag_values)
  _define_others(flag_values)


# ------------------------------------------------------- flags → configs
def _nested(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
  """{("a", "b"): v} → {"a": {"b": v}}."""
  out: dict[str, Any] = {}
  for path, value in values.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


def _build(cls, values: dict[str, Any]):
  """``cls`` from nested ``values`` (groups from their dicts)."""
  hints = typing.get_type_hints(cls)
  return cls(**{name: _build(hints[name], value)
                if dataclasses.is_dataclass(hints[name]) and
                isinstance(value, dict) else value
                for name, value in values.items()})


def _data_options(f: flags.FlagValues, data: dict[str, Any]) -> None:
  if data["name"] not in data_lib.DATASETS:
    raise ValueError(f"--dataset={data['name']!r} is unknown; known: "
                     f"{data_lib.DATASETS}")
  options = dict(data.get("options", {}))
  if f.augmentation:
    options["augmentation"] = f.augmentation
  if f.val_fraction is not None:
    if data["name"] != "folder":
      raise ValueError("--val_fraction applies to --dataset=folder only")
    if not 0 < f.val_fraction < 1:
      raise ValueError(f"--val_fraction must be in (0, 1), got "
                       f"{f.val_fraction}")
    options["val_fraction"] = f.val_fraction
  data["options"] = options


def _model_changes(f: flags.FlagValues, model: dict[str, Any], base,
                   data) -> dict[str, Any]:
  """The preset's backbone options belong to the preset's backbone only;
  the named options and --backbone_kwargs go on top; the classes are the
  dataset's unless given."""
  backbone = model.get("backbone") or base.backbone
  kwargs = (dict(base.backbone_kwargs) if backbone == base.backbone
            else {})
  kwargs.update(model.get("backbone_kwargs", {}))
  for name, key in BACKBONE_OPTIONS.items():
    if f[name].value not in (None, ""):
      kwargs[key] = f[name].value
  backbones.check_kwargs(backbone, kwargs)
  model["backbone_kwargs"] = kwargs
  if not model.get("num_classes"):
    model["num_classes"] = data_lib.num_classes(data)
  return model


def _steps(f: flags.FlagValues, data, train: dict[str, Any]) -> None:
  """Training steps and decay boundaries, counted in epochs or as
  fractions if asked."""
  train_steps = train["train_steps"]  # flags of train always have values
  decay = list(train.get("lr_decay_steps", ()))
  if f.train_epochs < 0:
    raise ValueError(f"--train_epochs must be >= 0, got {f.train_epochs}")
  given = [name for name in ("lr_decay_steps", "lr_decay_epochs",
                             "lr_decay_fractions") if f[name].value]
  if len(given) > 1:
    raise ValueError(f"give one of --{', --'.join(given)}, not several")
  if f.train_epochs or f.lr_decay_epochs:
    # steps per epoch as the authors count them: whole batches only
    per_epoch = (data_lib.split_size(data, data.train_split) //
                 train["batch_size"])
    if f.train_epochs:
      train_steps = max(1, round(f.train_epochs * per_epoch))
    decay = [max(1, round(float(e) * per_epoch))
             for e in f.lr_decay_epochs] or decay
  if f.lr_decay_fractions:
    fractions = [float(x) for x in f.lr_decay_fractions]
    if not all(0 < x < 1 for x in fractions):
      raise ValueError(f"--lr_decay_fractions must be in (0, 1), got "
                       f"{fractions}")
    decay = [max(1, round(x * train_steps)) for x in fractions]
  train["train_steps"], train["lr_decay_steps"] = train_steps, tuple(decay)


def experiment_from_flags(flag_values: flags.FlagValues = flags.FLAGS
                          ) -> Experiment:
  """The Experiment the parsed flags describe (ValueError on bad values).

  Every field takes its flag's value; a flag left unset (None) leaves the
  field to the preset (model) or its default, except three the command
  line derives: the classes (the dataset's), the image size (the model's
  input size) and the data's seed (``--seed``)."""
  f = flag_values
  values = {}
  for leaf in leaves():
    value = field_value(leaf, f[leaf.flag].value)
    if value is None and (leaf.from_preset or not leaf.optional):
      continue
    values[leaf.path] = value
  given = _nested(values)
  model, data, train = (given.pop(k, {}) for k in ("model", "data", "train"))
  data.setdefault("seed", train.get("seed", 0))
  _data_options(f, data)
  data = DataConfig(**data)
  base = PRESETS[f.preset]()
  model = _model_changes(f, model, base, data)
  if "policy" in model:
    model["policy"] = dataclasses.replace(base.policy, **model["policy"])
  model = tasks.model_config_for(given.get("kind", "tnet"), base, **model)
  if ("data", "image_size") not in values:
    data = dataclasses.replace(data, image_size=model.input_size or (64, 64))
  _steps(f, data, train)
  return _build(Experiment, {**given, "model": model, "data": data,
                             "train": train})
