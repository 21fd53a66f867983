"""The experiment runner shared by every entry point.

Flags → ``ModelConfig`` / ``LossConfig`` / ``TrainConfig`` / ``DataConfig`` →
a TNet or a baseline classifier, trained step by step with checkpoints every
N steps (a rerun of the same command resumes from the latest one), TensorBoard
summaries, evaluation at several numbers of locations and a JSON run summary.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging as std_logging
import os
import platform
import shutil
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

import tnet_tf
from tnet_tf import backbones
from tnet_tf import baselines
from tnet_tf import data as data_lib
from tnet_tf import export
from tnet_tf.data import augment
from tnet_tf.data import pipeline
from tnet_tf import losses
from tnet_tf import optim
from tnet_tf.config import PRESETS, DataConfig, ModelConfig, TrainConfig
from tnet_tf.evaluation import evaluate_at_locations
from tnet_tf.model import TNet

# ---------------------------------------------------------------- the flags
# Model. Unset flags keep the preset's value.
flags.DEFINE_enum("model", "tnet", ["tnet", "baseline"],
                  "TNet, or the preset's backbone as a full-image classifier.")
flags.DEFINE_enum("preset", "toy", sorted(PRESETS), "Model preset.")
flags.DEFINE_string("backbone", None, "Backbone name (see tnet_tf.backbones).")
flags.DEFINE_integer("num_classes", None, "Classes (default: the dataset's).")
flags.DEFINE_integer("base_resolution", None, "Base resolution r.")
flags.DEFINE_integer("grid_size", None, "Attention grid n.")
flags.DEFINE_float("cell_fraction", None, "Cell side as a parent fraction.")
flags.DEFINE_integer("levels", None, "Processing levels.")
flags.DEFINE_list("locations", None,
                  "Training locations per level after the first, e.g. 2,1.")
flags.DEFINE_string("eval_locations", None,
                    "Settings to evaluate, ';'-separated, e.g. '0;1;2;2,1'.")
flags.DEFINE_enum("selection", None, ["sampling", "greedy"],
                  "Training-time cell selection.")
flags.DEFINE_float("dropout", None, "Dropout before the classifier.")
flags.DEFINE_bool("feature_weighting", None, "Feature weighting module.")
flags.DEFINE_bool("allow_upsampling", None,
                  "Allow levels whose cells are smaller than r.")
flags.DEFINE_float("block_drop_rate", None, "EfficientNet stochastic depth.")
flags.DEFINE_integer("num_dropout_layers", None, "BagNet spatial dropouts.")
flags.DEFINE_float("dropout_keep", None, "BagNet dropout keep probability.")
# Learning rule.
flags.DEFINE_float("lambda_c", 0.3, "Final vs per-feature cross-entropy.")
flags.DEFINE_float("lambda_r", 0.3, "Sequence vs per-location REINFORCE.")
flags.DEFINE_float("lambda_f", 0.1, "Weight of the REINFORCE terms.")
flags.DEFINE_integer("perfreg_cap", None, "Last level of per-feature terms.")
flags.DEFINE_integer("num_samples", 1, "Monte-Carlo samples M.")
flags.DEFINE_float("contrastive_weight", 0.0, "Cosine contrastive loss.")
flags.DEFINE_float("contrastive_margin", 0.4, "Contrastive margin.")
flags.DEFINE_float("l2", 0.0, "L2 weight on kernels (Σ w²/2).")
# Data.
flags.DEFINE_string("dataset", "toy", "Dataset name (see tnet_tf.data).")
flags.DEFINE_string("data_dir", None,
                    "Dataset directory: the TFDS data dir of a paper "
                    "dataset, the image folder of --dataset=folder, the "
                    "cache of a generated one.")
flags.DEFINE_enum("augmentation", None, sorted(augment.AUGMENTATIONS),
                  "Training augmentation (default: the dataset's).")
flags.DEFINE_float("val_fraction", None,
                   "--dataset=folder without a val/ folder: the share of "
                   "each class held out for validation (default 0.1).")
flags.DEFINE_list("input_size", None, "Input height,width (or one size).")
flags.DEFINE_integer("num_examples", 0, "Generated datasets: examples.")
flags.DEFINE_integer("shuffle_buffer", 1024, "Shuffle buffer.")
flags.DEFINE_string("train_split", "train", "Split to train on.")
flags.DEFINE_string("eval_split", "validation", "Split to evaluate on.")
# Training.
flags.DEFINE_enum("mode", "train", ["train", "eval"],
                  "train (then evaluate), or only evaluate the latest "
                  "checkpoint of --run_dir (writes eval_<split>.json).")
flags.DEFINE_string("run_dir", None, "Run directory (checkpoints, logs).")
flags.DEFINE_bool("export", True,
                  "After training, write a SavedModel to <run_dir>/"
                  "saved_model and the class names to <run_dir>/"
                  "classes.json.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("train_steps", 1000, "Total training steps.")
flags.DEFINE_float("train_epochs", 0,
                   "If > 0: train this many epochs of --train_split "
                   "(sets --train_steps from the split's size).")
flags.DEFINE_integer("checkpoint_every", 100, "Checkpoint interval (steps).")
flags.DEFINE_integer("log_every", 10, "Summary / log interval (steps).")
flags.DEFINE_integer("eval_every", 0, "Evaluation interval (0: at the end).")
flags.DEFINE_integer("eval_examples", 0, "Evaluate on at most this many.")
flags.DEFINE_enum("optimizer", "adam", ["adam", "adamw"], "Optimiser.")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_float("backbone_learning_rate", None,
                   "Separate learning rate (optimiser) for the backbone.")
flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "step", "cosine"],
                  "Learning-rate schedule.")
flags.DEFINE_list("lr_decay_steps", [], "Step-decay boundaries.")
flags.DEFINE_list("lr_decay_epochs", [],
                  "Step-decay boundaries in epochs (instead of steps).")
flags.DEFINE_float("lr_decay_factor", 0.1, "Step-decay factor.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.")
flags.DEFINE_enum("strategy", "default",
                  ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 compute.")
flags.DEFINE_bool("jit_compile", False,
                  "XLA: the whole step for baselines, the backbone for TNet.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_bool("deterministic", False, "TF op determinism.")
flags.DEFINE_list("summaries", [],
                  "Extra TensorBoard histograms: weights, gradients.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_string("backbone_weights", None,
                    "Local file of pre-trained backbone weights (.h5).")
flags.DEFINE_string("init_checkpoint", None,
                    "Checkpoint (or run directory: its latest) of a model "
                    "to start from, weights only.")
FLAGS = flags.FLAGS


def parse_settings(text: Optional[str]) -> tuple[tuple[int, ...], ...]:
  """``'0;1;2,1'`` → ``((), (1,), (2, 1))``."""
  if not text:
    return ()
  settings = []
  for part in text.split(";"):
    try:
      counts = tuple(int(k) for k in part.split(",") if k.strip())
    except ValueError as err:
      raise ValueError(f"--eval_locations: {part!r} is not a comma list of "
                       "integers") from err
    while counts and counts[-1] == 0:  # "0" and "2,0" end a level early
      counts = counts[:-1]
    settings.append(counts)
  return tuple(settings)


def configs_from_flags() -> tuple[ModelConfig, losses.LossConfig,
                                  TrainConfig, DataConfig, str]:
  """Builds every config from the flags (raises ValueError on bad values)."""
  f = FLAGS
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
  data_cfg = DataConfig(
      name=f.dataset, data_dir=f.data_dir, num_examples=f.num_examples,
      shuffle_buffer=f.shuffle_buffer, seed=f.seed,
      train_split=f.train_split, eval_split=f.eval_split, options=options)
  changes: dict[str, Any] = {}
  for name in ("backbone", "base_resolution", "grid_size", "cell_fraction",
               "levels", "selection", "dropout", "feature_weighting",
               "allow_upsampling"):
    if getattr(f, name) is not None:
      changes[name] = getattr(f, name)
  if f.locations is not None:
    changes["locations"] = tuple(int(k) for k in f.locations)
  changes["num_classes"] = f.num_classes or data_lib.num_classes(data_cfg)
  base = PRESETS[f.preset]()
  # the preset's backbone options belong to the preset's backbone only
  same_backbone = not f.backbone or f.backbone == base.backbone
  kwargs = dict(base.backbone_kwargs) if same_backbone else {}
  for name in ("block_drop_rate", "num_dropout_layers", "dropout_keep"):
    if getattr(f, name) is not None:
      kwargs[name] = getattr(f, name)
  if f.backbone_weights:
    kwargs["weights"] = f.backbone_weights
  backbones.check_kwargs(f.backbone or base.backbone, kwargs)
  changes["backbone_kwargs"] = kwargs
  if f.input_size:
    size = [int(s) for s in f.input_size]
    changes["input_size"] = (size[0], size[-1])
  if f.model == "baseline":  # one full-image pass: no levels to check
    changes.update(levels=1, locations=())
  model_cfg = base.replace(**changes)
  loss_cfg = losses.LossConfig(
      lambda_c=f.lambda_c, lambda_r=f.lambda_r, lambda_f=f.lambda_f,
      perfreg_cap=f.perfreg_cap, num_samples=f.num_samples,
      contrastive_weight=f.contrastive_weight,
      contrastive_margin=f.contrastive_margin, l2=f.l2)
  if not f.run_dir:
    raise ValueError("--run_dir is required")
  train_steps, decay_steps = f.train_steps, [int(s) for s in f.lr_decay_steps]
  if f.train_epochs < 0:
    raise ValueError(f"--train_epochs must be >= 0, got {f.train_epochs}")
  if f.lr_decay_epochs and f.lr_decay_steps:
    raise ValueError("give --lr_decay_steps or --lr_decay_epochs, not both")
  if f.train_epochs or f.lr_decay_epochs:
    size = data_lib.split_size(data_cfg, f.train_split)
    per_epoch = size / f.batch_size
    if f.train_epochs:
      train_steps = max(1, round(f.train_epochs * per_epoch))
    decay_steps = [max(1, round(float(e) * per_epoch))
                   for e in f.lr_decay_epochs] or decay_steps
  train_cfg = TrainConfig(
      run_dir=f.run_dir, batch_size=f.batch_size, train_steps=train_steps,
      checkpoint_every=f.checkpoint_every, log_every=f.log_every,
      eval_every=f.eval_every, eval_locations=parse_settings(f.eval_locations),
      optimizer=f.optimizer, learning_rate=f.learning_rate,
      backbone_learning_rate=f.backbone_learning_rate,
      weight_decay=f.weight_decay, lr_schedule=f.lr_schedule,
      lr_decay_steps=tuple(decay_steps),
      lr_decay_factor=f.lr_decay_factor, warmup_steps=f.warmup_steps,
      strategy=f.strategy, tpu=f.tpu, mixed_precision=f.mixed_precision,
      jit_compile=f.jit_compile, seed=f.seed, deterministic=f.deterministic,
      summaries=tuple(f.summaries), keep_checkpoints=f.keep_checkpoints,
      backbone_weights=f.backbone_weights,
      init_checkpoint=f.init_checkpoint)
  data_cfg = dataclasses.replace(
      data_cfg, image_size=model_cfg.input_size or (64, 64))
  return model_cfg, loss_cfg, train_cfg, data_cfg, f.model


# ------------------------------------------------------------- the set-up
def make_strategy(cfg: TrainConfig) -> tf.distribute.Strategy:
  if cfg.strategy == "mirrored":
    return tf.distribute.MirroredStrategy()
  if cfg.strategy == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if cfg.strategy == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(cfg.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0 and
      "chief" not in resolver.cluster_spec().as_dict())


def build_model(kind: str, model_cfg: ModelConfig, loss_cfg: losses.LossConfig,
                train_cfg: TrainConfig) -> keras.Model:
  """A compiled TNet or baseline (call inside the strategy's scope)."""
  optimizer = optim.build_optimizer(train_cfg, train_cfg.learning_rate)
  if kind == "tnet":
    model = TNet(model_cfg)
    if train_cfg.jit_compile:
      model.feature_extraction.jit_compile = True
    backbone_opt = (optim.build_optimizer(train_cfg,
                                          train_cfg.backbone_learning_rate)
                    if train_cfg.backbone_learning_rate is not None else None)
    model.compile(optimizer, loss_config=loss_cfg,
                  backbone_optimizer=backbone_opt)
    return model
  kwargs = dict(model_cfg.backbone_kwargs)
  if model_cfg.backbone.startswith("efficientnet"):
    kwargs = {k: v for k, v in kwargs.items()
              if k in ("weights", "block_drop_rate")}
  model = baselines.build_classifier(
      model_cfg.backbone, model_cfg.num_classes,
      model_cfg.input_size or (None, None), model_cfg.dropout, **kwargs)
  if loss_cfg.l2:
    for layer in model.layers:
      for kernel in (getattr(layer, "kernel", None),
                     getattr(layer, "depthwise_kernel", None)):
        if kernel is not None:
          model.add_loss(lambda k=kernel: loss_cfg.l2 * tf.nn.l2_loss(k))
  model.compile(
      optimizer,
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[keras.metrics.SparseCategoricalAccuracy("top1"),
               keras.metrics.SparseTopKCategoricalAccuracy(5, "top5")],
      jit_compile=train_cfg.jit_compile)
  return model


def input_datasets(data_cfg: DataConfig, batch_size: int, seed: int,
                   eval_examples: int = 0, rgb: bool = False):
  """Batched train (shuffled, repeated, augmented) and evaluation datasets.

  ``rgb`` turns grey images into 3 channels (full-image baselines; TNet
  tiles its crops instead).
  """
  train = data_lib.build(data_cfg.train_split, data_cfg, training=True,
                         seed=seed, rgb=rgb)
  train = train.batch(batch_size, drop_remainder=True).prefetch(
      tf.data.AUTOTUNE)
  evaluation = data_lib.build(data_cfg.eval_split, data_cfg, rgb=rgb)
  if eval_examples:
    evaluation = evaluation.take(eval_examples)
  evaluation = evaluation.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  return train, evaluation


def _config_record(kind, model_cfg, loss_cfg, train_cfg, data_cfg) -> dict:
  return {"model_kind": kind, "model": model_cfg.to_dict(),
          "loss": dataclasses.asdict(loss_cfg),
          "train": dataclasses.asdict(train_cfg),
          "data": dataclasses.asdict(data_cfg)}


def _jsonable(obj):
  return json.loads(json.dumps(obj, default=list))


def check_run_dir(run_dir: str, record: dict) -> None:
  """Refuses to resume a run directory made for another architecture."""
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as fh:
    old = json.load(fh)
  new = _jsonable(record)
  diffs = [f"{key}: {old['model'].get(key)!r} -> {value!r}"
           for key, value in new["model"].items()
           if key != "backbone_kwargs" and old["model"].get(key) != value]
  if old.get("model_kind") != new["model_kind"]:
    diffs.insert(0, f"model: {old.get('model_kind')} -> {new['model_kind']}")
  if diffs:
    raise ValueError(
        f"run directory {run_dir} holds a run of a different architecture "
        f"({'; '.join(diffs)}); use a new --run_dir")


def restore_or_init(manager: tf.train.CheckpointManager, model: keras.Model,
                    init_checkpoint: Optional[str]) -> Optional[str]:
  """Restores the latest checkpoint, or the weights of ``init_checkpoint``."""
  latest = manager.latest_checkpoint
  if latest:
    try:
      manager.checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
      raise ValueError(f"checkpoint {latest} does not match this model: "
                       f"{str(err).splitlines()[0][:400]}") from err
    return latest
  if init_checkpoint:
    if tf.io.gfile.isdir(init_checkpoint):  # a run directory: its latest
      found = (tf.train.latest_checkpoint(
          os.path.join(init_checkpoint, "checkpoints")) or
               tf.train.latest_checkpoint(init_checkpoint))
      if not found:
        raise FileNotFoundError(f"--init_checkpoint: no checkpoint in "
                                f"{init_checkpoint}")
      init_checkpoint = found
    if not tf.io.gfile.exists(init_checkpoint + ".index"):
      raise FileNotFoundError(f"--init_checkpoint not found: "
                              f"{init_checkpoint}(.index)")
    export.read_weights(model, init_checkpoint,
                        f"--init_checkpoint {init_checkpoint}")
    # weights only: the optimisers restart (their step count came along
    # with the model and would put schedules and warm-ups past their end)
    for optimizer in _optimizers(model):
      optimizer.iterations.assign(0)
  return None


def _optimizer_checksum(optimizers) -> float:
  total = 0.0
  for opt in optimizers:
    for var in opt.variables():
      total += float(tf.reduce_sum(tf.abs(tf.cast(var, tf.float64))))
  return total


def _optimizers(model) -> list:
  opts = [model.optimizer]
  if getattr(model, "backbone_optimizer", None) is not None:
    opts.append(model.backbone_optimizer)
  return opts


def _write_histograms(model, batch, strategy, step, kinds):
  if "weights" in kinds:
    for var in model.trainable_variables:
      tf.summary.histogram("weights/" + var.name, var, step=step)
  if "gradients" in kinds:
    grads = _gradients(model, batch, strategy)
    for var, grad in zip(model.trainable_variables, grads):
      if grad is not None:
        tf.summary.histogram("gradients/" + var.name, grad, step=step)


def _gradients(model, batch, strategy):
  """Gradients of the loss on one batch (first replica), for histograms."""
  if not hasattr(model, "_histogram_gradients"):
    def replica_fn(images, labels):
      with tf.GradientTape() as tape:
        if isinstance(model, TNet):
          record = model(images, training=True)
          loss, _ = model.compute_tnet_loss(record, labels, training=True)
        else:
          loss = model.compiled_loss(labels, model(images, training=True))
      return tape.gradient(loss, model.trainable_variables)
    model._histogram_gradients = tf.function(replica_fn)  # traced once
  per_replica = strategy.run(model._histogram_gradients, args=batch[:2])
  return [strategy.experimental_local_results(g)[0] if g is not None else None
          for g in per_replica]


# ----------------------------------------------------------------- training
def train_and_evaluate(kind: str, model_cfg: ModelConfig,
                       loss_cfg: losses.LossConfig, train_cfg: TrainConfig,
                       data_cfg: DataConfig, eval_examples: int = 0,
                       mode: str = "train",
                       prepare: Optional[Callable[[keras.Model, TrainConfig],
                                                  None]] = None
                       ) -> tuple[dict, keras.Model]:
  """Trains (resuming if possible), evaluates, writes the run summary.

  ``mode="eval"`` only evaluates the latest checkpoint of the run directory
  and writes ``eval_<split>.json`` instead of ``summary.json``.
  ``prepare(model, train_cfg)`` runs on the built and compiled model, in the
  strategy's scope, before checkpoints are set up (``tnet_tf.compress``
  loads weights and wraps layers there). Returns the summary and the model.
  """
  keras.utils.set_random_seed(train_cfg.seed)
  if train_cfg.deterministic:
    tf.config.experimental.enable_op_determinism()
  if train_cfg.mixed_precision:
    keras.mixed_precision.set_global_policy("mixed_float16")
  strategy = make_strategy(train_cfg)
  chief = is_chief(strategy)
  run_dir = train_cfg.run_dir
  record = _config_record(kind, model_cfg, loss_cfg, train_cfg, data_cfg)
  check_run_dir(run_dir, record)
  tf.io.gfile.makedirs(run_dir)
  if chief and mode == "train":
    with open(os.path.join(run_dir, "config.json"), "w") as fh:
      json.dump(_jsonable(record), fh, indent=1)
  replicas = strategy.num_replicas_in_sync
  if train_cfg.batch_size % replicas:
    raise ValueError(f"--batch_size={train_cfg.batch_size} is not divisible "
                     f"by the {replicas} replicas")

  with strategy.scope():
    model = build_model(kind, model_cfg, loss_cfg, train_cfg)
    if prepare is not None:
      prepare(model, train_cfg)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    ckpt_objects = {"model": model, "optimizer": model.optimizer,
                    "step": step_var}
    if getattr(model, "backbone_optimizer", None) is not None:
      ckpt_objects["backbone_optimizer"] = model.backbone_optimizer
    checkpoint = tf.train.Checkpoint(**ckpt_objects)
  # Everyone restores from the chief's directory; a worker that is not the
  # chief must still save (saving is collective) but into a scratch folder.
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(run_dir, "checkpoints"),
      train_cfg.keep_checkpoints)
  # Optimiser slots exist only after the first step: create them now so a
  # restore fills them instead of deferring.
  _build_optimizer_state(model, strategy)
  resumed = restore_or_init(manager, model, train_cfg.init_checkpoint)
  scratch = None
  if not chief:
    scratch = os.path.join(run_dir,
                           f".worker_{strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(checkpoint, scratch, 1)
  start = int(step_var.numpy())
  if mode == "eval" and not (resumed or train_cfg.init_checkpoint):
    raise FileNotFoundError(f"--mode=eval: no checkpoint in {run_dir}/"
                            "checkpoints and no --init_checkpoint")
  if resumed and mode == "train":
    entry = {"step": start, "checkpoint": resumed,
             "baseline": _baseline_value(model),
             "optimizer_iterations": int(model.optimizer.iterations.numpy()),
             "optimizer_checksum": _optimizer_checksum(_optimizers(model)),
             "time": time.time()}
    logging.info("Resumed from %s at step %d (baseline %.4f)", resumed,
                 start, entry["baseline"])
    if chief:
      with open(os.path.join(run_dir, "resume_log.jsonl"), "a") as fh:
        fh.write(json.dumps(entry) + "\n")

  train_ds, eval_ds = input_datasets(
      data_cfg, train_cfg.batch_size, seed=train_cfg.seed + start,
      eval_examples=eval_examples, rgb=kind == "baseline")
  iterator = iter(strategy.experimental_distribute_dataset(train_ds))
  train_fn = model.make_train_function()
  writer = (tf.summary.create_file_writer(os.path.join(run_dir, "train"))
            if chief else tf.summary.create_noop_writer())
  eval_writer = (tf.summary.create_file_writer(os.path.join(run_dir, "eval"))
                 if chief else tf.summary.create_noop_writer())
  settings = train_cfg.eval_locations or (
      (model_cfg.locations,) if kind == "tnet" else ((),))

  logs: dict = {}
  progbar = keras.utils.Progbar(
      train_cfg.train_steps, interval=5.0,
      stateful_metrics=[m.name for m in model.metrics] + [
          "learning_rate", "steps_per_second", "skipped_images"])
  step = start
  t0 = time.time()
  while mode == "train" and step < train_cfg.train_steps:
    batch_logs = train_fn(iterator)
    step += 1
    step_var.assign(step)
    if step % train_cfg.log_every == 0 or step == train_cfg.train_steps:
      logs = {k: float(v) for k, v in batch_logs.items()}
      logs["learning_rate"] = _current_lr(model.optimizer)
      logs["steps_per_second"] = train_cfg.log_every / max(
          time.time() - t0, 1e-9)
      logs["skipped_images"] = float(sum(pipeline.skipped_counts().values()))
      t0 = time.time()
      with writer.as_default(step=step):
        for name, value in logs.items():
          tf.summary.scalar(name, value)
        if train_cfg.summaries:
          _write_histograms(model, next(iterator), strategy, step,
                            train_cfg.summaries)
      progbar.update(step, [(k, v) for k, v in logs.items()],
                     finalize=step == train_cfg.train_steps)
      model.reset_metrics()
    if step % train_cfg.checkpoint_every == 0 or (
        step == train_cfg.train_steps):
      manager.save(checkpoint_number=step)
    if train_cfg.eval_every and step % train_cfg.eval_every == 0 and (
        step < train_cfg.train_steps):
      _evaluate(model, eval_ds, settings, strategy, eval_writer, step,
                chief)

  results = _evaluate(model, eval_ds, settings, strategy, eval_writer, step,
                chief)
  if data_cfg.eval_split in pipeline.COUNTERS:
    pipeline.COUNTERS[data_cfg.eval_split].finish()
  summary = {"config": _jsonable(record), "step": step,
             "resumed_from": resumed, "train_metrics": logs,
             "eval_split": data_cfg.eval_split,
             "eval": results, "versions": _versions(),
             "num_replicas": replicas, "weights_sha256": _weights_digest(model),
             "skipped_images": pipeline.skipped_counts(), "chief": chief,
             "data": data_lib.info(data_cfg)}
  if getattr(model, "baseline", None) is not None:
    summary["baseline"] = _baseline_value(model)
  name = ("summary.json" if mode == "train" else
          f"eval_{_file_safe(data_cfg.eval_split)}.json")
  if chief:
    with open(os.path.join(run_dir, name), "w") as fh:
      json.dump(summary, fh, indent=1)
  else:
    shutil.rmtree(scratch, ignore_errors=True)
    task = strategy.cluster_resolver.task_id
    with open(os.path.join(run_dir, f"summary_worker{task}.json"), "w") as fh:
      json.dump(summary, fh, indent=1)
  writer.flush()
  eval_writer.flush()
  return summary, model


def _file_safe(text: str) -> str:
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _build_optimizer_state(model, strategy):
  for opt, variables in _optimizer_var_groups(model):
    with strategy.scope():
      getattr(opt, "inner_optimizer", opt).build(variables)


def _optimizer_var_groups(model):
  if isinstance(model, TNet):
    head, backbone = model.split_variables()
    groups = [(model.optimizer, head)]
    if backbone:
      groups.append((model.backbone_optimizer, backbone))
    return groups
  return [(model.optimizer, model.trainable_variables)]


def _current_lr(optimizer) -> float:
  lr = optimizer.learning_rate
  if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
    lr = lr(optimizer.iterations)
  return float(tf.convert_to_tensor(lr).numpy())


def _attention_summary(model, dataset, settings, writer, step, chief: bool,
                       count: int = 4) -> None:
  """Overlays of the attended regions on a few evaluation images, at the
  evaluated setting with the most locations (TensorBoard "attention").
  Every worker runs the model (its ops may be collective); the chief
  draws."""
  from tnet_tf import visualize  # local: matplotlib only when drawing
  from tnet_tf.model import total_locations
  images = next(iter(dataset.unbatch().batch(count).take(1)))[0]
  locations = max(settings, key=total_locations)
  out = model(images, training=False, locations=locations)
  if not chief:
    return
  records = []
  for i in range(int(images.shape[0])):
    records.append({"boxes": out["boxes"][i].numpy(),
                    "levels": out["levels"].numpy()})
    if model.config.feature_weighting:
      records[-1]["feature_weights"] = out["feature_weights"][i].numpy()
  png = visualize.attention_png(list(images.numpy()), records)
  with writer.as_default(step=step):
    tf.summary.image(f"attention/locations_{'_'.join(map(str, locations))}",
                     tf.image.decode_png(png, channels=3)[None])


def _evaluate(model, dataset, settings, strategy, writer, step,
              chief: bool = True):
  if isinstance(model, TNet):
    _attention_summary(model, dataset, settings, writer, step, chief)
  rows = evaluate_at_locations(model, dataset, settings, strategy)
  with writer.as_default(step=step):
    for row in rows:
      tag = "locations_" + ("_".join(map(str, row["locations"])) or "0")
      for metric in ("top1", "top5", "loss"):
        tf.summary.scalar(f"{metric}/{tag}", row[metric])
  for row in rows:
    logging.info("step %d eval locations=%s top1=%.4f top5=%.4f loss=%.4f",
                 step, row["locations"], row["top1"], row["top5"],
                 row["loss"])
  return rows


def _baseline_value(model) -> float:
  baseline = getattr(model, "baseline", None)
  return float("nan") if baseline is None else float(
      tf.convert_to_tensor(baseline).numpy())


def _weights_digest(model) -> str:
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
  return digest.hexdigest()


def _versions() -> dict:
  return {"tnet_tf": tnet_tf.__version__, "tensorflow": tf.__version__,
          "tf_keras": keras.__version__, "numpy": np.__version__,
          "python": platform.python_version()}


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    configs = configs_from_flags()
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  except FileNotFoundError as err:
    raise SystemExit(f"error: {err}") from None
  model_cfg, loss_cfg, train_cfg, data_cfg, kind = configs
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  try:
    summary, model = train_and_evaluate(
        kind, model_cfg, loss_cfg, train_cfg, data_cfg, FLAGS.eval_examples,
        FLAGS.mode)
  except (ValueError, FileNotFoundError) as err:
    logging.error("%s", err)
    raise SystemExit(f"error: {err}") from None
  if FLAGS.mode == "train" and FLAGS.export:
    if summary["chief"]:
      export_run(model, model_cfg, data_cfg, train_cfg.run_dir, summary)
    else:  # saving is collective: the other workers write a scratch copy
      scratch = tempfile.mkdtemp(prefix="tnet_export_")
      export_run(model, model_cfg, data_cfg, scratch, summary)
      shutil.rmtree(scratch, ignore_errors=True)
  for row in summary["eval"]:
    print(f"locations={row['locations']} top1={row['top1']:.4f} "
          f"top5={row['top5']:.4f} loss={row['loss']:.4f}")


def export_run(model: keras.Model, model_cfg: ModelConfig,
               data_cfg: DataConfig, run_dir: str, summary: dict) -> str:
  """The serving SavedModel and class names of a finished run."""
  classes = summary.get("data", {}).get("classes") or [
      str(i) for i in range(model_cfg.num_classes)]
  channels = 1 if data_cfg.name == "megapixel_digits" else 3
  path = export.export_saved_model(
      model, os.path.join(run_dir, "saved_model"), classes,
      channels=channels if isinstance(model, TNet) else 3)
  with open(os.path.join(run_dir, "classes.json"), "w") as fh:
    json.dump(classes, fh, indent=1)
  logging.info("exported %s", path)
  return path


def run(defaults: Optional[dict] = None, entry=None) -> None:
  """Entry point; an experiment module presets flags with ``defaults`` and
  may bring its own ``entry`` (default: train and evaluate one model)."""
  for name, value in (defaults or {}).items():
    FLAGS.set_default(name, value)
  app.run(entry or main)


if __name__ == "__main__":
  run()
