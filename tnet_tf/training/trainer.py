"""The generic trainer: one ``Experiment`` → a trained, evaluated run.

``train_and_evaluate(experiment, run_dir)`` opens the run directory (a rerun
of the same experiment resumes from its latest checkpoint; another
architecture is refused), builds the task in the distribution strategy's
scope, trains step by step with checkpoints, evaluates at every requested
number of locations and writes ``summary.json``. What happens around the
steps — TensorBoard summaries, the progress bar, pruning's step counter —
are ``Callback`` objects; nothing patches the model. It reads no flags.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from typing import Callable, Optional, Sequence

from absl import logging
import tensorflow as tf
import tf_keras as keras

from tnet_tf import data as data_lib
from tnet_tf.training import callbacks as callbacks_lib
from tnet_tf.training import runs
from tnet_tf.training.callbacks import Callback, Run
from tnet_tf.training import tasks
from tnet_tf.config import Experiment, RuntimeConfig
from tnet_tf.data import pipeline
from tnet_tf.data import regions
from tnet_tf.training.evaluation import Evaluator
from tnet_tf.training.evaluation import evaluate as evaluate_cases


# ------------------------------------------------------------- the set-up
@contextlib.contextmanager
def precision_policy(mixed: bool):
  """``mixed_float16`` for the run (when asked), the previous policy after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_float16" if mixed
                                          else "float32")
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def make_strategy(cfg: RuntimeConfig) -> tf.distribute.Strategy:
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


def check_run_dir(run_dir: str, experiment: Experiment) -> None:
  """Refuses to resume a run directory made for another architecture."""
  old = runs.read_record(run_dir)
  if old is None:
    return
  # a record of an earlier layout, read as this version writes it
  old = Experiment.from_record(old).to_record()
  new = experiment.to_record()
  old_model, new_model = _flat(old["model"]), _flat(new["model"])
  diffs = [f"{key}: {old_model.get(key)!r} -> {value!r}"
           for key, value in new_model.items()
           if not key.startswith("backbone_kwargs")
           and old_model.get(key) != value]
  if old.get("model_kind") != new["model_kind"]:
    diffs.insert(0, f"model: {old.get('model_kind')} -> {new['model_kind']}")
  if diffs:
    raise ValueError(
        f"run directory {run_dir} holds a run of a different architecture "
        f"({'; '.join(diffs)}); use a new --run_dir")


def _flat(record: dict, prefix: str = "") -> dict:
  """{"policy": {"selection": v}} → {"policy.selection": v}."""
  out = {}
  for key, value in record.items():
    if isinstance(value, dict) and key != "backbone_kwargs":
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def open_run(experiment: Experiment, run_dir: str) -> Run:
  """The strategy and the run directory, checked (and recorded)."""
  strategy = make_strategy(experiment.runtime)
  run = Run(experiment, run_dir, strategy, is_chief(strategy))
  check_run_dir(run_dir, experiment)
  tf.io.gfile.makedirs(run_dir)
  if run.chief and experiment.mode == "train":
    runs.write_record(run_dir, experiment)
  replicas = strategy.num_replicas_in_sync
  if experiment.train.batch_size % replicas:
    raise ValueError(f"--batch_size={experiment.train.batch_size} is not "
                     f"divisible by the {replicas} replicas")
  return run


def checkpoint_of(run: Run) -> tuple[tf.train.Checkpoint, tf.Variable]:
  """The objects a checkpoint holds: the task, its optimisers, the step."""
  task = run.task
  with run.strategy.scope():
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    objects = {"model": task, "optimizer": task.optimizer, "step": step}
    if task.backbone_optimizer is not None:
      objects["backbone_optimizer"] = task.backbone_optimizer
    return tf.train.Checkpoint(**objects), step


def build_optimizer_state(run: Run) -> None:
  """Optimiser slots exist only after the first step: create them now so
  that a restore fills them instead of deferring."""
  for optimizer, variables in run.task.optimizer_groups():
    with run.strategy.scope():
      getattr(optimizer, "inner_optimizer", optimizer).build(variables)


def restore_or_initialise(run: Run, manager: tf.train.CheckpointManager,
                          step: tf.Variable) -> None:
  """The latest checkpoint of the run, else ``init_checkpoint``'s weights
  (optimisers restart), else nothing; a resume is logged."""
  latest = manager.latest_checkpoint
  init = run.experiment.train.init_checkpoint
  if latest:
    try:
      manager.checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
      raise ValueError(f"checkpoint {latest} does not match this model: "
                       f"{str(err).splitlines()[0][:400]}") from err
    run.resumed_from = latest
  elif init:
    path = runs.checkpoint_path(init)
    runs.read_weights(run.task, path, f"--init_checkpoint {path}")
    # weights only: the optimisers restart (their step count came along
    # with the model and would put schedules and warm-ups past their end)
    for optimizer in run.task.optimizers:
      optimizer.iterations.assign(0)
  run.start_step = int(step.numpy())
  if run.experiment.mode == "eval" and not (latest or init):
    raise FileNotFoundError(f"--mode=eval: no checkpoint in {run.run_dir}/"
                            "checkpoints and no --init_checkpoint")
  if latest and run.experiment.mode == "train":
    _log_resume(run, latest)


def _log_resume(run: Run, checkpoint: str) -> None:
  task = run.task
  entry = {"step": run.start_step, "checkpoint": checkpoint,
           "baseline": _baseline_value(task),
           "optimizer_iterations": int(task.optimizer.iterations.numpy()),
           "optimizer_checksum": _optimizer_checksum(task.optimizers),
           "time": time.time()}
  logging.info("Resumed from %s at step %d (baseline %s)", checkpoint,
               run.start_step, entry["baseline"])
  if run.chief:
    with open(os.path.join(run.run_dir, "resume_log.jsonl"), "a") as fh:
      fh.write(json.dumps(entry) + "\n")


def open_data(run: Run) -> None:
  """Batched training (shuffled, repeated, augmented, reseeded after a
  resume) and evaluation datasets, each with its own skip counter."""
  experiment = run.experiment
  cfg, batch = experiment.data, experiment.train.batch_size
  run.counters = {cfg.train_split: pipeline.SkipCounter(cfg.train_split),
                  cfg.eval_split: pipeline.SkipCounter(cfg.eval_split)}
  train = data_lib.build(cfg.train_split, cfg, training=True,
                         seed=experiment.train.seed + run.start_step,
                         counter=run.counters[cfg.train_split])
  run.train_data = train.batch(batch, drop_remainder=True).prefetch(
      tf.data.AUTOTUNE)
  evaluation = data_lib.build(cfg.eval_split, cfg,
                              counter=run.counters[cfg.eval_split])
  if experiment.eval_examples:
    evaluation = evaluation.take(experiment.eval_examples)
  run.eval_data = evaluation.batch(batch).prefetch(tf.data.AUTOTUNE)
  # a few images to draw: their partial reads are not evaluation passes
  run.picture_data = data_lib.build(cfg.eval_split, cfg, counter=(
      pipeline.SkipCounter(f"{cfg.eval_split} (pictures)")))
  count = experiment.train.monitor_examples
  if count and experiment.mode == "train":
    # (images as a training step gets them, unaugmented; uncounted: the
    # counters count passes over the splits)
    for name, split in (("heldout", cfg.eval_split),
                        ("train_images", cfg.train_split)):
      run.monitor_data[name] = data_lib.build(split, cfg, counter=(
          pipeline.SkipCounter(f"{split} (monitor)"))).take(count).cache(
          ).batch(batch)
  table = data_lib.slide_table(cfg)
  if table is not None:
    tasks.require_tnet(run.task, f"{cfg.data_dir} holds slides, read region "
                       "by region: training on them")
    run.task.image_source = regions.reader(table)
  run.iterator = iter(run.strategy.experimental_distribute_dataset(
      run.train_data))
  if run.chief:
    run.train_writer = tf.summary.create_file_writer(
        os.path.join(run.run_dir, "train"))
    run.eval_writer = tf.summary.create_file_writer(
        os.path.join(run.run_dir, "eval"))
  else:
    run.train_writer = run.eval_writer = tf.summary.create_noop_writer()


# ---------------------------------------------------------------- the loop
MONITOR_KEYS = {"heldout": "heldout_top1",
                "train_images": "train_images_top1"}


def monitor(run: Run, evaluator: Evaluator) -> dict:
  """Top-1 in inference mode (the default locations) on the cached
  held-out and training images: ``heldout_top1`` and
  ``train_images_top1``. Beside the training accuracy they tell a run
  that will not hold up in inference while it trains: one that memorises
  its training images (held-out far below training images), or one that
  leans on its training batch (training images in inference mode far
  below the training accuracy: batch statistics)."""
  return {MONITOR_KEYS[name]: evaluator(data)[0][0]["top1"]
          for name, data in run.monitor_data.items()}


def train_loop(run: Run, manager: tf.train.CheckpointManager,
               step_var: tf.Variable, callbacks: Sequence[Callback]) -> dict:
  """Trains from the restored step to ``train_steps``; returns the metrics
  of the last logged step."""
  cfg, runtime = run.experiment.train, run.experiment.runtime
  task = run.task
  train_fn = task.make_train_function()
  evaluator = (Evaluator(task, task.settings(), (), run.strategy)
               if run.monitor_data else None)
  logs: dict = {}
  step, t0 = run.start_step, time.time()
  started = t0
  while step < cfg.train_steps:
    for callback in callbacks:
      callback.on_step_begin(step, run)
    batch_logs = train_fn(run.iterator)
    step += 1
    step_var.assign(step)
    if evaluator is not None and (step % cfg.monitor_every == 0 or
                                  step == cfg.train_steps):
      run.monitor_logs = monitor(run, evaluator)
    if step % runtime.log_every == 0 or step == cfg.train_steps:
      logs = {k: float(v) for k, v in batch_logs.items()}
      logs.update(run.monitor_logs)
      logs["learning_rate"] = _current_lr(task.optimizer)
      logs["steps_per_second"] = runtime.log_every / max(time.time() - t0,
                                                         1e-9)
      logs["skipped_images"] = float(sum(run.skipped().values()))
      t0 = time.time()
      for callback in callbacks:
        callback.on_log(step, logs, run)
      task.reset_metrics()
    if step % runtime.checkpoint_every == 0 or step == cfg.train_steps:
      manager.save(checkpoint_number=step)
    if cfg.eval_every and step % cfg.eval_every == 0 and (
        step < cfg.train_steps):
      evaluate(run, step, callbacks)
  run.train_seconds += time.time() - started
  return logs


def evaluate(run: Run, step: int, callbacks: Sequence[Callback],
             final: bool = False) -> tuple[list[dict], list[dict]]:
  """Top-1/top-5/loss at every requested locations setting and, at the end
  (``final``), adaptive attention at ``eval_thresholds`` (the
  top-probability rule, the trained locations at most), in one pass."""
  settings = run.task.settings(run.experiment.train.eval_locations)
  thresholds = run.experiment.train.eval_thresholds if final else ()
  rows, adaptive_rows = evaluate_cases(
      run.task, run.eval_data, settings,
      [{"threshold": t, "max_locations": run.task.default_locations[0]}
       for t in thresholds], run.strategy)
  for row in rows:
    logging.info("step %d eval locations=%s top1=%.4f top5=%.4f loss=%.4f",
                 step, row["locations"], row["top1"], row["top5"],
                 row["loss"])
  for row in adaptive_rows:
    logging.info("step %d eval adaptive threshold=%g mean_locations=%.2f "
                 "top1=%.4f top5=%.4f loss=%.4f", step, row["threshold"],
                 row["mean_locations"], row["top1"], row["top5"],
                 row["loss"])
  for callback in callbacks:
    callback.on_evaluate(step, rows, run)
  return rows, adaptive_rows


def write_summary(run: Run, step: int, logs: dict, rows: list[dict],
                  adaptive_rows: Sequence[dict] = ()) -> dict:
  """``summary.json`` (``eval_<split>.json`` for ``mode="eval"``); a worker
  that is not the chief writes ``summary_worker<i>.json``."""
  experiment = run.experiment
  summary = {"config": experiment.to_record(), "step": step,
             "resumed_from": run.resumed_from, "train_metrics": logs,
             "eval_split": experiment.data.eval_split, "eval": rows,
             "eval_adaptive": list(adaptive_rows),
             "versions": runs.versions(),
             "num_replicas": run.strategy.num_replicas_in_sync,
             "weights_sha256": runs.weights_digest(run.task),
             "skipped_images": run.skipped(), "chief": run.chief,
             "data": data_lib.info(experiment.data),
             "baseline": _baseline_value(run.task),
             "train_seconds": run.train_seconds}
  if run.chief:
    name = ("summary.json" if experiment.mode == "train" else
            f"eval_{_file_safe(experiment.data.eval_split)}.json")
  else:
    name = f"summary_worker{run.strategy.cluster_resolver.task_id}.json"
  with open(os.path.join(run.run_dir, name), "w") as fh:
    json.dump(summary, fh, indent=1)
  return summary


# ------------------------------------------------------------ the one call
def train_and_evaluate(
    experiment: Experiment, run_dir: str,
    callbacks: Sequence[Callback] = (),
    build: Callable[[Experiment], tasks.Classifier] = tasks.build,
) -> tuple[dict, tasks.Classifier]:
  """Trains (resuming if possible), evaluates and writes the run summary;
  ``callbacks`` run around the steps and at the end (the export of a
  finished run is one: ``tnet_tf.inference.export.end_of_run``).
  ``build(experiment)`` makes the
  compiled task inside the strategy's scope (default ``tasks.build``;
  ``tnet_tf.tools.compress`` builds a wrapped copy of a trained TNet). Returns
  the summary and the task."""
  runtime = experiment.runtime
  keras.utils.set_random_seed(experiment.train.seed)
  if runtime.deterministic:
    tf.config.experimental.enable_op_determinism()
  with precision_policy(runtime.mixed_precision):
    run = open_run(experiment, run_dir)
    with run.strategy.scope():
      run.task = build(experiment)
    checkpoint, step_var = checkpoint_of(run)
    # everyone restores from the chief's directory; a worker that is not
    # the chief must still save (saving is collective), into scratch
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(run_dir, runs.CHECKPOINTS),
        runtime.keep_checkpoints)
    build_optimizer_state(run)
    restore_or_initialise(run, manager, step_var)
    scratch = None
    if not run.chief:
      scratch = os.path.join(
          run_dir, f".worker_{run.strategy.cluster_resolver.task_id}")
      manager = tf.train.CheckpointManager(checkpoint, scratch, 1)
    open_data(run)
    callbacks = [*callbacks_lib.defaults(run), *callbacks]
    for callback in callbacks:
      callback.on_train_begin(run)
    logs = (train_loop(run, manager, step_var, callbacks)
            if experiment.mode == "train" else {})
    step = int(step_var.numpy())
    summary = write_summary(run, step, logs,
                            *evaluate(run, step, callbacks, final=True))
    if scratch:
      shutil.rmtree(scratch, ignore_errors=True)
    for callback in callbacks:
      callback.on_train_end(summary, run)
  return summary, run.task


# ---------------------------------------------------------------- records
def _file_safe(text: str) -> str:
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _current_lr(optimizer) -> float:
  lr = optimizer.learning_rate
  if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
    lr = lr(optimizer.iterations)
  return float(tf.convert_to_tensor(lr).numpy())


def _optimizer_checksum(optimizers) -> float:
  total = 0.0
  for opt in optimizers:
    for var in opt.variables():
      total += float(tf.reduce_sum(tf.abs(tf.cast(var, tf.float64))))
  return total


def _baseline_value(task) -> Optional[float]:
  """The reward baseline of a task that keeps one, else None."""
  baseline = getattr(task, "reward_baseline", None)
  return None if baseline is None else float(
      tf.convert_to_tensor(baseline).numpy())
