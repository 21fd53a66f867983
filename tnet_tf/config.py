"""Typed configuration, the one source of every setting: an ``Experiment``
of dataclasses grouped as the paper and the trainer see them: the model
(with its location policy), exploration, loss, data, training and runtime.

Each field documents itself (``metadata["help"]``) and names its choices
(``metadata["choices"]``); ``tnet_tf.cli.flags`` makes the command line from
them. ``Experiment.to_record()`` / ``from_record()`` are the one way a run
directory's ``config.json`` is written and read.

The configuration sits below the model: it imports only the grid's
geometry and the input checks (pure functions that import nothing of the
package) to validate itself; the names the model's modules accept
(resamplings, the small CNN's normalisations) are defined here and imported
by them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from tnet_tf.model import inputs
from tnet_tf.model.layers import grid

# how cells are placed and read (tnet_tf.model.resampling)
RESAMPLINGS = ("authors", "antialias", "align_corners")
# the small CNN's normalisations (tnet_tf.model.backbones.tiny) and its
# default, batch renormalisation: training and inference agree with it
TINY_CNN_NORMS = ("batch", "frozen_batch", "renorm", "none")
TINY_CNN_DEFAULT_NORM = "renorm"


def _field(default=dataclasses.MISSING, help: str = "", *,
           factory=dataclasses.MISSING, **metadata):
  """A dataclass field with its documentation (``help``) and, optionally,
  ``choices`` (checked by ``_check_choices``), the name of its flag
  (``flag``, where the field's own name would be ambiguous) or the flag's
  default when it is not the field's (``flag_default=None``: the command
  line derives the value, as the help says)."""
  return dataclasses.field(default=default, default_factory=factory,
                           metadata={"help": help, **metadata})


def _check_choices(config) -> None:
  for f in dataclasses.fields(config):
    choices = f.metadata.get("choices")
    if choices is not None and getattr(config, f.name) not in choices:
      raise ValueError(f"{f.name} must be one of {list(choices)}, got "
                       f"{getattr(config, f.name)!r}")


@dataclasses.dataclass
class PolicyConfig:
  """The location policy: how TNet picks the cells to attend from the
  location module's distribution and how that distribution is shaped.
  TNet reads every field when it builds or runs (the learning signal of the
  policy, its reward and baseline, is a loss term: ``LossConfig``)."""
  selection: str = _field(
      "greedy", "Training-time cell selection: greedy top-k (the authors' "
      "code, whose numbers the paper reports) or sampling (Gumbel-top-k, "
      "the paper's text).", choices=("greedy", "sampling"))
  location_scale: str = _field(
      "fixed", "The location logits: fixed (L2-normalised, the authors') or "
      "learned (times a learned scale: the distribution may sharpen).",
      choices=("fixed", "learned"))
  location_gradient: str = _field(
      "reinforce", "How the location module learns: reinforce (the paper's "
      "rule) or pathwise (also the classification loss's gradient through "
      "the average, each attended feature scaled by p/stop_gradient(p) = 1).",
      choices=("reinforce", "pathwise"))
  overlap_suppression: bool = _field(
      False, "Greedy selection (inference; training unless sampling) passes "
      "over a cell that shares area with one already taken (the authors': "
      "off).")

  def __post_init__(self):
    _check_choices(self)


@dataclasses.dataclass
class ModelConfig:
  """Everything that defines a TNet (or a baseline) architecture, and the
  location policy TNet runs (``policy``)."""
  backbone: str = _field("bagnet77", "Backbone name (see "
                         "tnet_tf.model.backbones).")
  backbone_kwargs: dict[str, Any] = _field(
      help="The backbone's options (JSON on the command line, merged into "
      "the preset's).", factory=dict)
  num_classes: int = _field(1000, "Classes (command line default: the "
                            "dataset's).")
  base_resolution: int = _field(77, "Base resolution r.")
  grid_size: int = _field(5, "Attention grid n.")
  cell_fraction: float = _field(0.34375, "Cell side as a fraction of its "
                                "parent's.")
  levels: int = _field(2, "Processing levels.")
  locations: tuple[int, ...] = _field(
      (3,), "Attended cells per grid for each level after the first "
      "(len == levels - 1), e.g. 2,1; calls may pass others.")
  location_variant: Optional[str] = _field(
      None, "Location module variant (default: the backbone's).")
  location_hidden_dim: Optional[int] = _field(
      None, "Location module hidden width (default: the variant's).")
  positional_variant: Optional[str] = _field(
      None, "Positional encoding variant (default: the backbone's).")
  initializers: Optional[str] = _field(
      None, "Kernel initialisers of the modules (default: the backbone's; "
      "the authors' EfficientNet modules use VarianceScaling): glorot or "
      "efficientnet.")
  feature_weighting: bool = _field(False, "Feature weighting module.")
  dropout: float = _field(0.0, "Dropout before the classifier.")
  resampling: str = _field(
      "authors", "How cells are placed and read (tnet_tf.model.resampling; "
      "authors: integer cells, half-pixel bilinear).", choices=RESAMPLINGS)
  input_size: Optional[tuple[int, int]] = _field(
      None, "Nominal input height,width (one size: square), for checks "
      "and the summary.")
  allow_upsampling: bool = _field(
      False, "Allow levels whose cells are smaller than r.")
  check_numerics: bool = _field(False, "In-graph checks for NaN or Inf.")
  policy: PolicyConfig = _field(help="The location policy.",
                                factory=PolicyConfig)

  def __post_init__(self):
    self.locations = tuple(int(k) for k in self.locations)
    if self.input_size is not None:
      size = [int(s) for s in self.input_size]
      self.input_size = (size[0], size[-1])
    if isinstance(self.policy, dict):  # from get_config or a record
      self.policy = PolicyConfig(**self.policy)
    self.backbone_kwargs = _tuples(dict(self.backbone_kwargs))
    if (self.backbone == "tiny_cnn" and "norm" not in self.backbone_kwargs
        and self.backbone_kwargs.get("batch_norm", True)):
      # the record names the normalisation the model was built with, so a
      # later change of the default cannot change a recorded model
      self.backbone_kwargs["norm"] = TINY_CNN_DEFAULT_NORM
    self.validate()

  def validate(self) -> None:
    _check_choices(self)
    if self.levels < 1:
      raise ValueError(f"levels must be >= 1, got {self.levels}")
    if len(self.locations) != self.levels - 1:
      raise ValueError(
          f"locations must give one count per level after the first "
          f"({self.levels - 1} for levels={self.levels}), got "
          f"{list(self.locations)}")
    grid.cell_boxes(self.grid_size, self.cell_fraction)  # validates n, c
    inputs.check_level_range(self.locations, self.grid_size)
    if self.input_size is not None and not self.allow_upsampling:
      most = grid.max_levels(self.input_size, self.base_resolution,
                             self.cell_fraction)
      if self.levels > most:
        raise ValueError(
            f"levels={self.levels} at input_size={list(self.input_size)}: "
            f"cells at level {most + 1} are smaller than the base resolution "
            f"{self.base_resolution} px (at most {most} levels); pass "
            "allow_upsampling=True to upsample them anyway")

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _imagenet() -> ModelConfig:
  return ModelConfig(
      backbone="bagnet77",
      backbone_kwargs={"num_dropout_layers": 1, "dropout_keep": 0.5},
      num_classes=1000, base_resolution=77, grid_size=5, cell_fraction=0.34375,
      levels=2, locations=(3,), input_size=(224, 224))


def _fmow(stage: int = 1) -> ModelConfig:
  return ModelConfig(
      backbone="efficientnet-b0",
      backbone_kwargs={"block_drop_rate": 0.3 if stage == 1 else 0.5},
      num_classes=62, base_resolution=224, grid_size=3, cell_fraction=0.5,
      levels=2 if stage == 1 else 3, locations=(2,) if stage == 1 else (2, 1),
      dropout=0.5, input_size=(448, 448) if stage == 1 else (896, 896))


def _birds(num_classes: int, variant: str = "b0") -> ModelConfig:
  return ModelConfig(
      backbone=f"efficientnet-{variant}",
      backbone_kwargs={"block_drop_rate": 0.5},
      num_classes=num_classes, base_resolution=224, grid_size=5,
      cell_fraction=0.35, levels=2, locations=(5,), dropout=0.75,
      feature_weighting=True, input_size=(448, 448), allow_upsampling=True)


def _synthetic() -> ModelConfig:
  """The built-in megapixel-digits benchmark: 256 px canvases, r = 32, a
  5×5 grid of cells 35% wide (90 px, read at 32 px)."""
  return ModelConfig(
      backbone="tiny_cnn", backbone_kwargs={"widths": (16, 32, 48, 64)},
      num_classes=10, base_resolution=32, grid_size=5, cell_fraction=0.35,
      levels=2, locations=(5,), input_size=(256, 256))


def _small_object() -> ModelConfig:
  """The built-in small-object task: 256 px canvases, one 16 px object of
  2 shapes; r = 32, a 5×5 grid of cells a quarter of the side (64 px, the
  object at 8 px once read). The location module reads the backbone's
  stage-2 map (8×8: a 2 px object would vanish in the 4×4 of stage 4) and
  level 1 is box-filtered (bilinear sampling at 8× would miss the object)."""
  return ModelConfig(
      backbone="tiny_cnn",
      backbone_kwargs={"widths": (16, 32, 48, 64), "f_stage": 2},
      num_classes=2, base_resolution=32, grid_size=5, cell_fraction=0.25,
      levels=2, locations=(2,), input_size=(256, 256),
      resampling="antialias")


def _megapixel_mnist() -> ModelConfig:
  """Megapixel MNIST: 1500 px canvases, 28 px digits; r = 128 (digits at
  2.4 px in the first view, box-filtered so that they stay there), a 16×16
  grid of cells 9% of the side (135 px, a digit at 26 px once read: at 16 px
  the small CNN learns to read digits far slower); two 3×3 convs a stage;
  the location module reads the stage-2 map (32×32)."""
  return ModelConfig(
      backbone="tiny_cnn",
      backbone_kwargs={"widths": (32, 48, 64, 96), "f_stage": 2, "depth": 2,
                      "norm": "frozen_batch"},
      num_classes=10, base_resolution=128, grid_size=16, cell_fraction=0.09,
      levels=2, locations=(6,), input_size=(1500, 1500),
      resampling="antialias")


def _toy() -> ModelConfig:
  return ModelConfig(
      backbone="tiny_cnn", num_classes=4, base_resolution=32, grid_size=3,
      cell_fraction=0.5, levels=2, locations=(2,), input_size=(64, 64))


PRESETS = {
    "toy": _toy,
    "imagenet": _imagenet,
    "fmow": lambda: _fmow(1),
    "fmow_stage2": lambda: _fmow(2),
    "cub": lambda: _birds(200),
    "nabirds": lambda: _birds(555),
    "synthetic": _synthetic,
    "small_object": _small_object,
    "megapixel_mnist": _megapixel_mnist,
}


def preset(name: str, **overrides) -> ModelConfig:
  """A named configuration of the paper (or the synthetic benchmark)."""
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
  return PRESETS[name]().replace(**overrides)




@dataclasses.dataclass
class DataConfig:
  """Which examples, at what size."""
  name: str = _field("toy", "Dataset name (see tnet_tf.data).",
                     flag="dataset")
  data_dir: Optional[str] = _field(
      None, "Dataset directory: the TFDS data dir of a paper dataset, the "
      "image folder of --dataset=folder, the cache of a generated one.")
  image_size: tuple[int, int] = _field(
      (64, 64), "Image height,width as read (command line default: the "
      "model's input size, else 64).", flag_default=None)
  num_examples: int = _field(0, "Generated datasets: examples (0: their "
                             "default).")
  train_split: str = _field("train", "Split to train on.")
  eval_split: str = _field("validation", "Split to evaluate on.")
  shuffle_buffer: int = _field(1024, "Shuffle buffer.")
  seed: int = _field(0, "Seed of the data: generated datasets, shuffling, "
                     "augmentation (command line default: --seed).",
                     flag="data_seed", flag_default=None)
  resize_to: Optional[tuple[int, int]] = _field(
      None, "Images resized to height,width (e.g. a downscaled baseline).")
  options: dict[str, Any] = _field(
      help="The dataset's options (JSON on the command line), e.g. its "
      "augmentation.", factory=dict, flag="data_options")

  def __post_init__(self):
    for name in ("image_size", "resize_to"):
      size = getattr(self, name)
      if size is not None:
        size = [int(s) for s in size]
        setattr(self, name, (size[0], size[-1]))
    self.options = _tuples(dict(self.options))


@dataclasses.dataclass
class TrainConfig:
  """What is learned and measured: optimisation, its schedule, the
  evaluation and the starting point."""
  batch_size: int = _field(32, "Global batch size, over all replicas.")
  train_steps: int = _field(1000, "Total training steps.")
  eval_every: int = _field(0, "Evaluation interval in steps (0: at the "
                           "end only).")
  monitor_examples: int = _field(
      128, "While training: accuracy in inference mode on this many "
      "held-out (evaluation split) and training images, beside the "
      "training accuracy (progress line, TensorBoard); 0: off.")
  monitor_every: int = _field(100, "Steps between those checks.")
  eval_locations: tuple[tuple[int, ...], ...] = _field(
      (), "Settings to evaluate, ';'-separated, e.g. '0;1;2;2,1' (none: "
      "the model's).")
  eval_thresholds: tuple[float, ...] = _field(
      (), "Adaptive attention evaluated too (two-level TNets): confidence "
      "thresholds at which each image stops attending, e.g. 0.9,0.99 "
      "(summary.json's eval_adaptive).")
  optimizer: str = _field("adam", "Optimiser.", choices=("adam", "adamw"))
  learning_rate: float = _field(1e-3, "Learning rate.")
  backbone_learning_rate: Optional[float] = _field(
      None, "Separate learning rate (a second optimiser) for the backbone.")
  weight_decay: float = _field(0.0, "AdamW weight decay.")
  lr_schedule: str = _field("constant", "Learning-rate schedule.",
                            choices=("constant", "step", "cosine"))
  lr_decay_steps: tuple[int, ...] = _field((), "Step-decay boundaries.")
  lr_decay_factor: float = _field(0.1, "Step-decay factor.")
  warmup_steps: int = _field(0, "Linear warm-up steps.")
  seed: int = _field(0, "Random seed of the training.")
  init_checkpoint: Optional[str] = _field(
      None, "Checkpoint (or run directory: its latest) of a model to start "
      "from, weights only.")

  def __post_init__(self):
    _check_choices(self)
    for name in ("batch_size", "train_steps", "monitor_every"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.monitor_examples < 0:
      raise ValueError(f"monitor_examples must be >= 0, got "
                       f"{self.monitor_examples}")
    # levels after a 0 have nothing to see: (2, 0) is (2,)
    self.eval_locations = tuple(inputs.strip_trailing_zeros(s)
                                for s in self.eval_locations)
    self.eval_thresholds = tuple(float(t) for t in self.eval_thresholds)
    if any(not t >= 0 for t in self.eval_thresholds):
      raise ValueError(f"eval_thresholds must be >= 0, got "
                       f"{list(self.eval_thresholds)}")
    self.lr_decay_steps = tuple(int(s) for s in self.lr_decay_steps)
    if self.lr_schedule == "step" and not self.lr_decay_steps:
      raise ValueError("lr_schedule='step' needs lr_decay_steps")
    if self.lr_decay_steps and self.lr_schedule != "step":
      # a decay that would silently not happen (--lr_decay_fractions alone)
      raise ValueError(f"lr_decay_steps {list(self.lr_decay_steps)} are "
                       f"used by lr_schedule='step' only, got "
                       f"{self.lr_schedule!r} (add --lr_schedule=step)")


@dataclasses.dataclass
class RuntimeConfig:
  """Where and how a run executes and what it writes on the way: nothing
  here changes what is learned (beyond floating-point rounding)."""
  strategy: str = _field("default", "tf.distribute strategy.",
                         choices=("default", "mirrored", "multi_worker",
                                  "tpu"))
  tpu: str = _field("", "TPU address for --strategy=tpu.")
  mixed_precision: bool = _field(False, "mixed_float16 compute.")
  jit_compile: bool = _field(False, "XLA: the whole step for baselines, "
                             "the backbone for TNet.")
  deterministic: bool = _field(False, "TF op determinism.")
  checkpoint_every: int = _field(100, "Checkpoint interval (steps).")
  keep_checkpoints: int = _field(3, "Checkpoints kept.")
  log_every: int = _field(10, "Summary / log interval (steps).")
  summaries: tuple[str, ...] = _field(
      (), "Extra TensorBoard histograms: weights, gradients.")

  def __post_init__(self):
    _check_choices(self)
    for name in ("checkpoint_every", "log_every"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    self.summaries = tuple(self.summaries)
    unknown = set(self.summaries) - {"weights", "gradients"}
    if unknown:
      raise ValueError(f"summaries must be among ['weights', 'gradients'], "
                       f"got {sorted(unknown)}")


@dataclasses.dataclass
class ExplorationConfig:
  """The exploration schedule of training: which cells TNet looks at in
  the first steps, before the policy's own choice (all 0: from the start,
  the model's ``policy.selection``)."""
  random_steps: int = _field(0, "Cells drawn uniformly at random for these "
                             "first training steps.")
  anneal_steps: int = _field(
      0, "Then top-k under Gumbel noise of a scale falling from 1 to 0 "
      "over these steps (then greedy).")
  scan_steps: int = _field(0, "Every cell of the first attended level "
                           "looked at for these first training steps.")

  def __post_init__(self):
    if min(self.random_steps, self.anneal_steps, self.scan_steps) < 0:
      raise ValueError("random_steps, anneal_steps and scan_steps must be "
                       ">= 0")


@dataclasses.dataclass
class LossConfig:
  """The terms of the learning rule and their parameters (defaults: the
  ImageNet recipe), the REINFORCE rewards of the location policy among
  them."""
  lambda_c: float = _field(0.3, "Final vs per-feature cross-entropy.")
  lambda_r: float = _field(0.3, "Sequence vs per-location REINFORCE.")
  lambda_f: float = _field(0.1, "Weight of the REINFORCE terms.")
  perfreg_cap: Optional[int] = _field(
      None, "Last level with per-feature terms (none: all).")
  num_samples: int = _field(1, "Monte-Carlo samples M (the batch repeated "
                            "M times).")
  baseline_decay: float = _field(0.9, "Decay of the rewards' running "
                                 "(EMA) baseline.")
  contrastive_weight: float = _field(0.0, "Cosine contrastive loss.")
  contrastive_margin: float = _field(0.4, "Contrastive margin.")
  contrastive_diagonal: bool = _field(
      True, "The contrastive mean over all B² pairs of a batch, the B "
      "diagonal ones (0) included (the authors'), or over the B(B − 1) "
      "pairs i ≠ j.")
  l2: float = _field(0.0, "L2 weight (see --l2_rule).")
  l2_rule: str = _field(
      "authors", "authors: l2·Σv² over the variables of the first optimiser "
      "(the new modules when the backbone has its own, else all), biases "
      "included, batch norm excluded; kernels: l2·Σ||w||²/2 over every "
      "kernel.", choices=("authors", "kernels"))
  reward: str = _field(
      "correct", "What REINFORCE rewards: correct (1 if the prediction is "
      "right, the authors') or probability (the probability given to the "
      "label).", choices=("correct", "probability"))
  location_baseline: str = _field(
      "ema", "What the per-location rewards are compared with: ema (the "
      "running baseline, the authors') or image (the mean of the image's "
      "other attended locations: which of them helped).",
      choices=("ema", "image"))
  location_target: float = _field(
      0.0, "Weight of a cross-entropy teaching the location module which "
      "attended cell let the per-feature classifier read the label.")
  location_target_temperature: float = _field(
      0.25, "Temperature of that cross-entropy's target.")

  def __post_init__(self):
    _check_choices(self)
    for name in ("lambda_c", "lambda_r", "baseline_decay"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    for name in ("lambda_f", "contrastive_weight", "l2", "location_target"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
    if self.num_samples < 1:
      raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
    if self.perfreg_cap is not None and self.perfreg_cap < 1:
      raise ValueError(f"perfreg_cap must be >= 1, got {self.perfreg_cap}")


KINDS = ("tnet", "baseline")  # TNet, or its backbone on whole images
MODES = ("train", "eval")


@dataclasses.dataclass
class Experiment:
  """One run: what to build (``kind``, ``model``), on which data, trained
  and evaluated how, where."""
  model: ModelConfig = _field(help="The architecture and its location "
                              "policy.")
  data: DataConfig = _field(help="The data.", factory=DataConfig)
  train: TrainConfig = _field(help="The training and its evaluation.",
                              factory=TrainConfig)
  loss: LossConfig = _field(help="The learning rule.", factory=LossConfig)
  exploration: ExplorationConfig = _field(
      help="The exploration schedule.", factory=ExplorationConfig)
  runtime: RuntimeConfig = _field(help="The hardware and the records.",
                                  factory=RuntimeConfig)
  kind: str = _field("tnet", "TNet, or the model's backbone as a "
                     "full-image classifier.", choices=KINDS, flag="model")
  mode: str = _field(
      "train", "train (then evaluate), or only evaluate the latest "
      "checkpoint of --run_dir (writes eval_<split>.json).", choices=MODES)
  eval_examples: int = _field(0, "Evaluate on at most this many (0: all).")
  export: bool = _field(
      True, "After training, write a SavedModel to <run_dir>/saved_model "
      "and the class names to <run_dir>/classes.json.")

  def __post_init__(self):
    _check_choices(self)
    if self.eval_examples < 0:
      raise ValueError(f"eval_examples must be >= 0, got "
                       f"{self.eval_examples}")
    if self.train.eval_thresholds and (
        self.kind != "tnet" or self.model.levels != 2 or
        self.model.feature_weighting):
      raise ValueError("eval_thresholds evaluate adaptive attention, which "
                       "needs a two-level TNet without feature weighting")

  def replace(self, **changes) -> "Experiment":
    return dataclasses.replace(self, **changes)

  def to_record(self) -> dict[str, Any]:
    """The JSON-able record written to a run directory's ``config.json``:
    every group under its name (``kind`` as ``model_kind``)."""
    record = {}
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      record["model_kind" if f.name == "kind" else f.name] = (
          dataclasses.asdict(value) if dataclasses.is_dataclass(value)
          else value)
    return _jsonable(record)

  @classmethod
  def from_record(cls, record: dict[str, Any]) -> "Experiment":
    """The experiment a ``config.json`` record describes, of this version
    or an earlier one (fields it lacks take their defaults; fields no
    longer known are dropped)."""
    if "model" not in record:
      raise ValueError("not an experiment record: it has no 'model' entry")
    record = _regrouped(record)
    model = dict(record["model"])
    if model.get("backbone") == "tiny_cnn":
      kwargs = dict(model.get("backbone_kwargs") or {})
      # records of the time the small CNN's default was plain batch norm
      # do not name it
      kwargs.setdefault("norm", "batch" if kwargs.get("batch_norm", True)
                        else "none")
      model["backbone_kwargs"] = kwargs
    record["model"] = model
    return _from_dict(cls, {("kind" if k == "model_kind" else k): v
                            for k, v in record.items()})


# Where records written before the configuration was grouped (everything
# on model, data, train and loss) kept the fields that have moved since.
_MOVED = {
    **{("model", name): ("model", "policy", name)
       for name in ("selection", "location_scale", "location_gradient",
                    "overlap_suppression")},
    **{("loss", name): ("exploration", name)
       for name in ("random_steps", "anneal_steps", "scan_steps")},
    **{("train", name): ("runtime", name)
       for name in ("strategy", "tpu", "mixed_precision", "jit_compile",
                    "deterministic", "checkpoint_every", "keep_checkpoints",
                    "log_every", "summaries")},
}


def _regrouped(record: dict[str, Any]) -> dict[str, Any]:
  """``record`` with the fields of an earlier layout at their places now
  (a field already at its new place is kept)."""
  out = {k: dict(v) if isinstance(v, dict) else v for k, v in record.items()}
  for (group, name), new in _MOVED.items():
    old = out.get(group)
    if not isinstance(old, dict) or name not in old:
      continue
    value = old.pop(name)
    parent = out
    for key in new[:-1]:
      parent[key] = dict(parent.get(key) or {})
      parent = parent[key]
    parent.setdefault(new[-1], value)
  return out


def _tuples(value):
  """Lists → tuples, recursively (JSON gives lists back for tuples)."""
  if isinstance(value, (list, tuple)):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def _from_dict(cls, values: dict[str, Any]):
  """``cls`` from a record's entry: nested groups built from theirs,
  unknown keys dropped."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for name, value in values.items():
    if name not in fields:
      continue
    group = fields[name].type
    group = _GROUPS.get(group, group)
    kwargs[name] = (_from_dict(group, value or {})
                    if dataclasses.is_dataclass(group) else _tuples(value))
  return cls(**kwargs)


def _jsonable(obj):
  import json  # local: only records need it
  return json.loads(json.dumps(obj, default=list))


# the group classes by the names their fields' annotations give (strings,
# under ``from __future__ import annotations``)
_GROUPS = {cls.__name__: cls for cls in (
    ModelConfig, PolicyConfig, DataConfig, TrainConfig, RuntimeConfig,
    ExplorationConfig, LossConfig)}
