"""The command line of every experiment: flag definitions → an Experiment.

``define_flags(flag_values)`` defines them (nothing is defined at import)
and ``experiment_from_flags(flag_values)`` builds the ``Experiment`` they
describe: unset model flags keep the preset's value.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags

from tnet_tf.model import backbones
from tnet_tf import data as data_lib
from tnet_tf.model import inputs
from tnet_tf.model import resampling
from tnet_tf.training import tasks
from tnet_tf.config import (PRESETS, DataConfig, Experiment, LossConfig,
                            ModelConfig, TrainConfig)
from tnet_tf.data import augment


def _model_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_enum("model", "tnet", ["tnet", "baseline"],
                    "TNet, or the preset's backbone as a full-image "
                    "classifier.", **d)
  flags.DEFINE_enum("preset", "toy", sorted(PRESETS), "Model preset.", **d)
  flags.DEFINE_string("backbone", None,
                      "Backbone name (see tnet_tf.model.backbones).", **d)
  flags.DEFINE_integer("num_classes", None,
                       "Classes (default: the dataset's).", **d)
  flags.DEFINE_integer("base_resolution", None, "Base resolution r.", **d)
  flags.DEFINE_integer("grid_size", None, "Attention grid n.", **d)
  flags.DEFINE_float("cell_fraction", None,
                     "Cell side as a parent fraction.", **d)
  flags.DEFINE_integer("levels", None, "Processing levels.", **d)
  flags.DEFINE_list("locations", None, "Training locations per level after "
                    "the first, e.g. 2,1.", **d)
  flags.DEFINE_string("eval_locations", None, "Settings to evaluate, "
                      "';'-separated, e.g. '0;1;2;2,1'.", **d)
  flags.DEFINE_list("eval_thresholds", None, "Adaptive attention "
                    "evaluated too (two-level TNets): confidence thresholds "
                    "at which each image stops attending, e.g. 0.9,0.99 "
                    "(summary.json's eval_adaptive).", **d)
  flags.DEFINE_enum("selection", None, ["sampling", "greedy"],
                    "Training-time cell selection (greedy: the authors').",
                    **d)
  flags.DEFINE_enum("location_scale", None, ["fixed", "learned"],
                    "Location logits L2-normalised (fixed, the authors') or "
                    "times a learned scale.", **d)
  flags.DEFINE_bool("overlap_suppression", None,
                    "Greedy selection passes over cells overlapping one "
                    "already taken (non-maximum suppression; off: the "
                    "authors').", **d)
  flags.DEFINE_enum("location_gradient", None, ["reinforce", "pathwise"],
                    "How the location module learns: REINFORCE (the "
                    "paper) or also the loss's gradient through the average.",
                    **d)
  flags.DEFINE_enum("resampling", None, list(resampling.RESAMPLINGS),
                    "How cells are placed and read (tnet_tf.model.resampling; "
                    "authors: integer cells, half-pixel bilinear).", **d)
  flags.DEFINE_float("dropout", None, "Dropout before the classifier.", **d)
  flags.DEFINE_bool("feature_weighting", None, "Feature weighting module.",
                    **d)
  flags.DEFINE_bool("allow_upsampling", None,
                    "Allow levels whose cells are smaller than r.", **d)
  flags.DEFINE_float("block_drop_rate", None, "EfficientNet stochastic "
                     "depth.", **d)
  flags.DEFINE_integer("num_dropout_layers", None, "BagNet spatial "
                       "dropouts.", **d)
  flags.DEFINE_float("dropout_keep", None,
                     "BagNet dropout keep probability.", **d)
  flags.DEFINE_enum("backbone_norm", None,
                    ["batch", "frozen_batch", "renorm", "none"],
                    "Tiny CNN normalisation (renorm: batch "
                    "renormalisation, which keeps training and inference "
                    "from disagreeing; see tnet_tf.model.backbones.tiny).", **d)
  flags.DEFINE_string("backbone_weights", None,
                      "Pre-trained backbone weights: 'imagenet' (Keras' "
                      "ImageNet weights, EfficientNets; downloaded once, or "
                      "placed in ~/.keras/models offline) or a local .h5.",
                      **d)


def _loss_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_float("lambda_c", 0.3, "Final vs per-feature "
                     "cross-entropy.", **d)
  flags.DEFINE_float("lambda_r", 0.3, "Sequence vs per-location "
                     "REINFORCE.", **d)
  flags.DEFINE_float("lambda_f", 0.1, "Weight of the REINFORCE terms.", **d)
  flags.DEFINE_integer("perfreg_cap", None,
                       "Last level of per-feature terms.", **d)
  flags.DEFINE_integer("num_samples", 1, "Monte-Carlo samples M.", **d)
  flags.DEFINE_float("contrastive_weight", 0.0, "Cosine contrastive loss.",
                     **d)
  flags.DEFINE_float("contrastive_margin", 0.4, "Contrastive margin.", **d)
  flags.DEFINE_float("l2", 0.0, "L2 weight (see --l2_rule).", **d)
  flags.DEFINE_enum("l2_rule", "authors", ["authors", "kernels"],
                    "authors: l2·Σv² over the first optimiser's variables "
                    "(not batch norm); kernels: l2·Σw²/2 over every kernel.",
                    **d)
  flags.DEFINE_enum("reward", "correct", ["correct", "probability"],
                    "REINFORCE's reward: 1 if right (the authors') or the "
                    "probability given to the label.", **d)
  flags.DEFINE_enum("location_baseline", "ema", ["ema", "image"],
                    "Per-location rewards against the running baseline "
                    "(the authors') or the image's other locations.", **d)
  flags.DEFINE_integer("random_steps", 0,
                       "Exploration: cells at random for these first "
                       "training steps.", **d)
  flags.DEFINE_integer("anneal_steps", 0,
                       "Exploration: then Gumbel noise falling from 1 to 0 "
                       "over these steps (then greedy).", **d)
  flags.DEFINE_integer("scan_steps", 0,
                       "Look at every cell of the first attended level for "
                       "these first training steps.", **d)
  flags.DEFINE_float("location_target", 0.0,
                     "Weight of the location module's cross-entropy against "
                     "where the per-feature classifier read the label.", **d)
  flags.DEFINE_bool("contrastive_diagonal", True,
                    "The contrastive mean counts the B diagonal pairs too "
                    "(the authors').", **d)


def _data_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_string("dataset", "toy", "Dataset name (see tnet_tf.data).",
                      **d)
  flags.DEFINE_string("data_dir", None,
                      "Dataset directory: the TFDS data dir of a paper "
                      "dataset, the image folder of --dataset=folder, the "
                      "cache of a generated one.", **d)
  flags.DEFINE_enum("augmentation", None, sorted(augment.AUGMENTATIONS),
                    "Training augmentation (default: the dataset's).", **d)
  flags.DEFINE_float("val_fraction", None,
                     "--dataset=folder without a val/ folder: the share of "
                     "each class held out for validation (default 0.1).",
                     **d)
  flags.DEFINE_list("input_size", None, "Input height,width (or one size).",
                    **d)
  flags.DEFINE_integer("num_examples", 0, "Generated datasets: examples.",
                       **d)
  flags.DEFINE_integer("shuffle_buffer", 1024, "Shuffle buffer.", **d)
  flags.DEFINE_string("train_split", "train", "Split to train on.", **d)
  flags.DEFINE_string("eval_split", "validation", "Split to evaluate on.",
                      **d)


def _train_flags(fv: flags.FlagValues) -> None:
  d = dict(flag_values=fv)
  flags.DEFINE_enum("mode", "train", ["train", "eval"],
                    "train (then evaluate), or only evaluate the latest "
                    "checkpoint of --run_dir (writes eval_<split>.json).", **d)
  flags.DEFINE_string("run_dir", None, "Run directory (checkpoints, logs).",
                      **d)
  flags.DEFINE_bool("export", True,
                    "After training, write a SavedModel to <run_dir>/"
                    "saved_model and the class names to <run_dir>/"
                    "classes.json.", **d)
  flags.DEFINE_integer("batch_size", 32, "Global batch size.", **d)
  flags.DEFINE_integer("train_steps", 1000, "Total training steps.", **d)
  flags.DEFINE_float("train_epochs", 0,
                     "If > 0: train this many epochs of --train_split "
                     "(sets --train_steps from the split's size).", **d)
  flags.DEFINE_integer("checkpoint_every", 100,
                       "Checkpoint interval (steps).", **d)
  flags.DEFINE_integer("log_every", 10, "Summary / log interval (steps).",
                       **d)
  flags.DEFINE_integer("eval_every", 0,
                       "Evaluation interval (0: at the end).", **d)
  flags.DEFINE_integer("eval_examples", 0, "Evaluate on at most this many.",
                       **d)
  flags.DEFINE_integer("monitor_examples", 128,
                       "While training: accuracy in inference mode on this "
                       "many held-out and training images, beside the "
                       "training accuracy (progress line, TensorBoard); 0: "
                       "off.", **d)
  flags.DEFINE_integer("monitor_every", 100,
                       "Steps between those checks.", **d)
  flags.DEFINE_enum("optimizer", "adam", ["adam", "adamw"], "Optimiser.", **d)
  flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.", **d)
  flags.DEFINE_float("backbone_learning_rate", None,
                     "Separate learning rate (optimiser) for the backbone.",
                     **d)
  flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay.", **d)
  flags.DEFINE_enum("lr_schedule", "constant", ["constant", "step", "cosine"],
                    "Learning-rate schedule.", **d)
  flags.DEFINE_list("lr_decay_steps", [], "Step-decay boundaries.", **d)
  flags.DEFINE_list("lr_decay_epochs", [],
                    "Step-decay boundaries in epochs (instead of steps).",
                    **d)
  flags.DEFINE_list("lr_decay_fractions", [],
                    "Step-decay boundaries as fractions of the training "
                    "steps, e.g. 0.8 (instead of steps or epochs).", **d)
  flags.DEFINE_float("lr_decay_factor", 0.1, "Step-decay factor.", **d)
  flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.", **d)
  flags.DEFINE_enum("strategy", "default",
                    ["default", "mirrored", "multi_worker", "tpu"],
                    "tf.distribute strategy.", **d)
  flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.", **d)
  flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute.", **d)
  flags.DEFINE_bool("jit_compile", False, "XLA: the whole step for "
                    "baselines, the backbone for TNet.", **d)
  flags.DEFINE_integer("seed", 0, "Random seed.", **d)
  flags.DEFINE_bool("deterministic", False, "TF op determinism.", **d)
  flags.DEFINE_list("summaries", [],
                    "Extra TensorBoard histograms: weights, gradients.", **d)
  flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", **d)
  flags.DEFINE_string("init_checkpoint", None,
                      "Checkpoint (or run directory: its latest) of a model "
                      "to start from, weights only.", **d)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines every experiment flag in ``flag_values``."""
  for define in (_model_flags, _loss_flags, _data_flags, _train_flags):
    define(flag_values)


# ------------------------------------------------------- flags → configs
def _data_config(f: flags.FlagValues) -> DataConfig:
  if f.dataset not in data_lib.DATASETS:
    raise ValueError(f"--dataset={f.dataset!r} is unknown; known: "
                     f"{data_lib.DATASETS}")
  options: dict[str, Any] = {}
  if f.augmentation:
    options["augmentation"] = f.augmentation
  if f.val_fraction is not None:
    if f.dataset != "folder":
      raise ValueError("--val_fraction applies to --dataset=folder only")
    if not 0 < f.val_fraction < 1:
      raise ValueError(f"--val_fraction must be in (0, 1), got "
                       f"{f.val_fraction}")
    options["val_fraction"] = f.val_fraction
  return DataConfig(
      name=f.dataset, data_dir=f.data_dir, num_examples=f.num_examples,
      shuffle_buffer=f.shuffle_buffer, seed=f.seed,
      train_split=f.train_split, eval_split=f.eval_split, options=options)


def _model_config(f: flags.FlagValues, data: DataConfig) -> ModelConfig:
  changes: dict[str, Any] = {}
  for name in ("backbone", "base_resolution", "grid_size", "cell_fraction",
               "levels", "selection", "resampling", "location_scale",
               "location_gradient", "overlap_suppression",
               "dropout", "feature_weighting", "allow_upsampling"):
    if f[name].value is not None:
      changes[name] = f[name].value
  if f.locations is not None:
    changes["locations"] = tuple(int(k) for k in f.locations)
  changes["num_classes"] = f.num_classes or data_lib.num_classes(data)
  base = PRESETS[f.preset]()
  # the preset's backbone options belong to the preset's backbone only
  same_backbone = not f.backbone or f.backbone == base.backbone
  kwargs = dict(base.backbone_kwargs) if same_backbone else {}
  for name in ("block_drop_rate", "num_dropout_layers", "dropout_keep"):
    if f[name].value is not None:
      kwargs[name] = f[name].value
  if f.backbone_weights:
    kwargs["weights"] = f.backbone_weights
  if f.backbone_norm:
    kwargs["norm"] = f.backbone_norm
  backbones.check_kwargs(f.backbone or base.backbone, kwargs)
  changes["backbone_kwargs"] = kwargs
  if f.input_size:
    size = [int(s) for s in f.input_size]
    changes["input_size"] = (size[0], size[-1])
  return tasks.model_config_for(f.model, base, **changes)


def _loss_config(f: flags.FlagValues) -> LossConfig:
  return LossConfig(
      lambda_c=f.lambda_c, lambda_r=f.lambda_r, lambda_f=f.lambda_f,
      perfreg_cap=f.perfreg_cap, num_samples=f.num_samples,
      contrastive_weight=f.contrastive_weight,
      contrastive_margin=f.contrastive_margin,
      contrastive_diagonal=f.contrastive_diagonal, l2=f.l2,
      l2_rule=f.l2_rule, reward=f.reward,
      location_baseline=f.location_baseline, random_steps=f.random_steps,
      anneal_steps=f.anneal_steps, scan_steps=f.scan_steps,
      location_target=f.location_target)


def _steps(f: flags.FlagValues, data: DataConfig
           ) -> tuple[int, tuple[int, ...]]:
  """Training steps and decay boundaries, counted in epochs if asked."""
  train_steps, decay = f.train_steps, [int(s) for s in f.lr_decay_steps]
  if f.train_epochs < 0:
    raise ValueError(f"--train_epochs must be >= 0, got {f.train_epochs}")
  given = [name for name in ("lr_decay_steps", "lr_decay_epochs",
                             "lr_decay_fractions") if f[name].value]
  if len(given) > 1:
    raise ValueError(f"give one of --{', --'.join(given)}, not several")
  if f.train_epochs or f.lr_decay_epochs:
    # steps per epoch as the authors count them: whole batches only
    per_epoch = data_lib.split_size(data, f.train_split) // f.batch_size
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
  return train_steps, tuple(decay)


def _train_config(f: flags.FlagValues, data: DataConfig) -> TrainConfig:
  train_steps, decay = _steps(f, data)
  return TrainConfig(
      batch_size=f.batch_size, train_steps=train_steps,
      checkpoint_every=f.checkpoint_every, log_every=f.log_every,
      eval_every=f.eval_every, monitor_examples=f.monitor_examples,
      monitor_every=f.monitor_every,
      eval_locations=inputs.parse_settings(f.eval_locations),
      eval_thresholds=inputs.parse_thresholds(f.eval_thresholds),
      optimizer=f.optimizer, learning_rate=f.learning_rate,
      backbone_learning_rate=f.backbone_learning_rate,
      weight_decay=f.weight_decay, lr_schedule=f.lr_schedule,
      lr_decay_steps=decay, lr_decay_factor=f.lr_decay_factor,
      warmup_steps=f.warmup_steps, strategy=f.strategy, tpu=f.tpu,
      mixed_precision=f.mixed_precision, jit_compile=f.jit_compile,
      seed=f.seed, deterministic=f.deterministic,
      summaries=tuple(f.summaries), keep_checkpoints=f.keep_checkpoints,
      backbone_weights=f.backbone_weights,
      init_checkpoint=f.init_checkpoint)


def experiment_from_flags(flag_values: flags.FlagValues = flags.FLAGS
                          ) -> Experiment:
  """The Experiment the parsed flags describe (ValueError on bad values)."""
  f = flag_values
  data = _data_config(f)
  model = _model_config(f, data)
  data = dataclasses.replace(data, image_size=model.input_size or (64, 64))
  return Experiment(model=model, data=data, train=_train_config(f, data),
                    loss=_loss_config(f), kind=f.model, mode=f.mode,
                    eval_examples=f.eval_examples, export=f.export)
