"""Typed configuration: flags → an ``Experiment`` of dataclasses →
constructors. ``Experiment.to_record()`` / ``from_record()`` are the one way
a run directory's ``config.json`` is written and read."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class ModelConfig:
  """Everything that defines a TNet (or a baseline) architecture.

  ``locations`` holds the default number of attended cells per grid for each
  level after the first (``len == levels - 1``); calls may pass others.
  ``location_variant`` / ``positional_variant`` default to the backbone's.
  """
  backbone: str = "bagnet77"
  backbone_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  num_classes: int = 1000
  base_resolution: int = 77
  grid_size: int = 5
  cell_fraction: float = 0.34375
  levels: int = 2
  locations: tuple[int, ...] = (3,)
  location_variant: Optional[str] = None
  location_hidden_dim: Optional[int] = None
  positional_variant: Optional[str] = None
  # kernel initialisers of the modules: "glorot" | "efficientnet" (default:
  # the backbone's; the authors' EfficientNet modules use VarianceScaling)
  initializers: Optional[str] = None
  feature_weighting: bool = False
  dropout: float = 0.0
  # training-time selection: "greedy" top-k (the authors' code, whose
  # numbers the paper reports) or "sampling" (Gumbel-top-k, the paper's text)
  selection: str = "greedy"
  # how cells are placed and read: "authors" | "antialias" | "align_corners"
  # (tnet_tf.model.resampling)
  resampling: str = "authors"
  # the location logits: "fixed" (L2-normalised, the authors') or "learned"
  # (times a learned scale: the distribution may sharpen)
  location_scale: str = "fixed"
  # how the location module learns: "reinforce" (the paper's rule) or
  # "pathwise" (also the classification loss's gradient through the
  # average, each attended feature scaled by p/stop_gradient(p) = 1)
  location_gradient: str = "reinforce"
  # greedy selection (inference; training unless sampling) passes over a
  # cell that shares area with one already taken (the authors': off)
  overlap_suppression: bool = False
  input_size: Optional[tuple[int, int]] = None  # nominal, for checks/summary
  allow_upsampling: bool = False
  check_numerics: bool = False

  def __post_init__(self):
    self.locations = tuple(int(k) for k in self.locations)
    if self.input_size is not None:
      self.input_size = tuple(int(s) for s in self.input_size)
    self.backbone_kwargs = _tuples(dict(self.backbone_kwargs))
    if (self.backbone == "tiny_cnn" and "norm" not in self.backbone_kwargs
        and self.backbone_kwargs.get("batch_norm", True)):
      # the record names the normalisation the model was built with, so a
      # later change of the default cannot change a recorded model
      from tnet_tf.model.backbones.tiny import DEFAULT_NORM
      self.backbone_kwargs["norm"] = DEFAULT_NORM
    self.validate()

  def validate(self) -> None:
    from tnet_tf.model import inputs  # local: keep config import light
    from tnet_tf.model.layers import grid
    if self.levels < 1:
      raise ValueError(f"levels must be >= 1, got {self.levels}")
    if len(self.locations) != self.levels - 1:
      raise ValueError(
          f"locations must give one count per level after the first "
          f"({self.levels - 1} for levels={self.levels}), got "
          f"{list(self.locations)}")
    if self.selection not in ("sampling", "greedy"):
      raise ValueError(f"selection must be 'sampling' or 'greedy', got "
                       f"{self.selection!r}")
    grid.cell_boxes(self.grid_size, self.cell_fraction)  # validates n, c
    if self.location_gradient not in ("reinforce", "pathwise"):
      raise ValueError(f"location_gradient must be 'reinforce' or "
                       f"'pathwise', got {self.location_gradient!r}")
    if self.location_scale not in ("fixed", "learned"):
      raise ValueError(f"location_scale must be 'fixed' or 'learned', got "
                       f"{self.location_scale!r}")
    from tnet_tf.model.resampling import RESAMPLINGS
    if self.resampling not in RESAMPLINGS:
      raise ValueError(f"resampling must be one of {list(RESAMPLINGS)}, got "
                       f"{self.resampling!r}")
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
  name: str = "toy"
  data_dir: Optional[str] = None
  image_size: tuple[int, int] = (64, 64)
  num_examples: int = 0  # generated datasets: 0 = their default
  train_split: str = "train"
  eval_split: str = "validation"
  shuffle_buffer: int = 1024
  seed: int = 0
  resize_to: Optional[tuple[int, int]] = None  # e.g. a downscaled baseline
  options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainConfig:
  """How to train: optimisation, schedule, checkpoints, hardware."""
  batch_size: int = 32  # global, over all replicas
  train_steps: int = 1000
  checkpoint_every: int = 100
  log_every: int = 10
  eval_every: int = 0  # 0: evaluate at the end only
  # while training, every ``monitor_every`` steps: accuracy in inference
  # mode on this many held-out (evaluation split) and training images,
  # beside the training accuracy (0: off)
  monitor_examples: int = 128
  monitor_every: int = 100
  eval_locations: tuple[tuple[int, ...], ...] = ()  # () = the config's
  # adaptive attention evaluated too (two-level TNets): each image stops
  # once its top probability reaches a threshold (summary's
  # eval_adaptive)
  eval_thresholds: tuple[float, ...] = ()
  optimizer: str = "adam"  # adam | adamw
  learning_rate: float = 1e-3
  backbone_learning_rate: Optional[float] = None  # a second optimiser
  weight_decay: float = 0.0  # adamw only
  lr_schedule: str = "constant"  # constant | step | cosine
  lr_decay_steps: tuple[int, ...] = ()
  lr_decay_factor: float = 0.1
  warmup_steps: int = 0
  strategy: str = "default"  # default | mirrored | multi_worker | tpu
  tpu: str = ""
  mixed_precision: bool = False
  jit_compile: bool = False
  seed: int = 0
  deterministic: bool = False
  summaries: tuple[str, ...] = ()  # "weights", "gradients" histograms
  keep_checkpoints: int = 3
  backbone_weights: Optional[str] = None
  init_checkpoint: Optional[str] = None

  def __post_init__(self):
    choices = {"optimizer": ("adam", "adamw"),
               "lr_schedule": ("constant", "step", "cosine"),
               "strategy": ("default", "mirrored", "multi_worker", "tpu")}
    for name, allowed in choices.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got "
                         f"{getattr(self, name)!r}")
    for name in ("batch_size", "train_steps", "checkpoint_every",
                 "log_every", "monitor_every"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.monitor_examples < 0:
      raise ValueError(f"monitor_examples must be >= 0, got "
                       f"{self.monitor_examples}")
    unknown = set(self.summaries) - {"weights", "gradients"}
    if unknown:
      raise ValueError(f"summaries must be among ['weights', 'gradients'], "
                       f"got {sorted(unknown)}")
    if self.lr_schedule == "step" and not self.lr_decay_steps:
      raise ValueError("lr_schedule='step' needs lr_decay_steps")
    if self.lr_decay_steps and self.lr_schedule != "step":
      # a decay that would silently not happen (--lr_decay_fractions alone)
      raise ValueError(f"lr_decay_steps {list(self.lr_decay_steps)} are "
                       f"used by lr_schedule='step' only, got "
                       f"{self.lr_schedule!r} (add --lr_schedule=step)")


@dataclasses.dataclass
class LossConfig:
  """Hyper-parameters of the learning rule (defaults: the ImageNet recipe)."""
  lambda_c: float = 0.3
  lambda_r: float = 0.3
  lambda_f: float = 0.1
  perfreg_cap: Optional[int] = None  # last level with per-feature terms
  num_samples: int = 1  # M Monte-Carlo samples (batch repeated M times)
  baseline_decay: float = 0.9
  contrastive_weight: float = 0.0
  contrastive_margin: float = 0.4
  # the mean over all B² pairs of a batch, the diagonal (0) included (the
  # authors'), or over the B(B − 1) pairs i ≠ j
  contrastive_diagonal: bool = True
  l2: float = 0.0
  # "authors": l2·Σ v² over the variables of the first optimiser (the new
  # modules when the backbone has its own optimiser, else all), biases
  # included, batch norm excluded; "kernels": l2·Σ ||w||²/2 over every kernel
  l2_rule: str = "authors"
  # what REINFORCE rewards: "correct" (1 if the prediction is right, the
  # authors') or "probability" (the probability given to the label)
  reward: str = "correct"
  # what the per-location rewards are compared with: "ema" (the running
  # baseline, the authors') or "image" (the mean of the image's other
  # attended locations: which of them helped)
  location_baseline: str = "ema"
  # exploration in training (both 0: the model's ``selection``): cells drawn
  # uniformly at random for the first ``random_steps``, then top-k under
  # Gumbel noise of a scale falling from 1 to 0 over ``anneal_steps``, then
  # greedy
  random_steps: int = 0
  anneal_steps: int = 0
  # look at every cell of the first attended level for the first steps
  scan_steps: int = 0
  # weight of a cross-entropy teaching the location module which attended
  # cell let the per-feature classifier read the label (losses.py), and
  # its temperature
  location_target: float = 0.0
  location_target_temperature: float = 0.25

  def __post_init__(self):
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
    if self.l2_rule not in ("authors", "kernels"):
      raise ValueError(f"l2_rule must be 'authors' or 'kernels', got "
                       f"{self.l2_rule!r}")
    choices = {"reward": ("correct", "probability"),
               "location_baseline": ("ema", "image")}
    for name, allowed in choices.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got "
                         f"{getattr(self, name)!r}")
    if min(self.random_steps, self.anneal_steps, self.scan_steps) < 0:
      raise ValueError("random_steps, anneal_steps and scan_steps must be "
                       ">= 0")


KINDS = ("tnet", "baseline")  # TNet, or its backbone on whole images
MODES = ("train", "eval")


@dataclasses.dataclass
class Experiment:
  """One run: what to build (``kind``, ``model``), on which data, trained and
  evaluated how. ``mode="eval"`` only evaluates the latest checkpoint;
  ``eval_examples`` caps the evaluation split (0: all); ``export`` writes
  the serving SavedModel at the end of training."""
  model: ModelConfig
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  loss: LossConfig = dataclasses.field(default_factory=LossConfig)
  kind: str = "tnet"
  mode: str = "train"
  eval_examples: int = 0
  export: bool = True

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"kind must be one of {list(KINDS)}, got "
                       f"{self.kind!r}")
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {list(MODES)}, got "
                       f"{self.mode!r}")
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
    """The JSON-able record written to a run directory's ``config.json``."""
    return _jsonable({"model_kind": self.kind,
                      "model": dataclasses.asdict(self.model),
                      "loss": dataclasses.asdict(self.loss),
                      "train": dataclasses.asdict(self.train),
                      "data": dataclasses.asdict(self.data),
                      "mode": self.mode, "eval_examples": self.eval_examples,
                      "export": self.export})

  @classmethod
  def from_record(cls, record: dict[str, Any]) -> "Experiment":
    """The experiment a ``config.json`` record describes (fields it lacks
    take their defaults; fields no longer known are dropped)."""
    if "model" not in record:
      raise ValueError("not an experiment record: it has no 'model' entry")
    model = dict(record["model"])
    if model.get("backbone") == "tiny_cnn":
      kwargs = dict(model.get("backbone_kwargs") or {})
      # records written before issue 24 leave the small CNN's norm to its
      # default of the time, plain batch norm
      kwargs.setdefault("norm", "batch" if kwargs.get("batch_norm", True)
                        else "none")
      model["backbone_kwargs"] = kwargs
    return cls(model=_from_dict(ModelConfig, model),
               data=_from_dict(DataConfig, record.get("data", {})),
               train=_from_dict(TrainConfig, record.get("train", {})),
               loss=_from_dict(LossConfig, record.get("loss", {})),
               kind=record.get("model_kind", "tnet"),
               mode=record.get("mode", "train"),
               eval_examples=int(record.get("eval_examples", 0)),
               export=bool(record.get("export", True)))


def _tuples(value):
  """Lists → tuples, recursively (JSON gives lists back for tuples)."""
  if isinstance(value, (list, tuple)):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def _from_dict(cls, values: dict[str, Any]):
  known = {f.name for f in dataclasses.fields(cls)}
  return cls(**{k: _tuples(v) for k, v in values.items() if k in known})


def _jsonable(obj):
  import json  # local: only records need it
  return json.loads(json.dumps(obj, default=list))
