"""What a run in progress shares with its hooks (``Run``), the hooks' interface
(``Callback``), and what a training run shows while it runs.

``defaults(run)`` are the ones every run gets: a progress bar, and
TensorBoard scalars (training metrics every ``log_every`` steps, evaluation
per locations setting), optional weight / gradient histograms, and overlays
of the attended regions of a few evaluation images.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import inputs
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.config import Experiment
from tnet_tf.training import losses
from tnet_tf.training import tasks


@dataclasses.dataclass
class Run:
  """What the trainer and its callbacks share about a run in progress."""
  experiment: Experiment
  run_dir: str
  strategy: tf.distribute.Strategy
  chief: bool
  task: Optional[tasks.Classifier] = None
  counters: dict = dataclasses.field(default_factory=dict)
  train_data: Optional[tf.data.Dataset] = None
  eval_data: Optional[tf.data.Dataset] = None
  picture_data: Optional[tf.data.Dataset] = None  # eval images, uncounted
  # a few held-out and training images, cached, checked in inference mode
  # while training (``monitor``)
  monitor_data: dict = dataclasses.field(default_factory=dict)
  monitor_logs: dict = dataclasses.field(default_factory=dict)
  iterator: Optional[object] = None
  train_writer: Optional[tf.summary.SummaryWriter] = None
  eval_writer: Optional[tf.summary.SummaryWriter] = None
  start_step: int = 0
  resumed_from: Optional[str] = None
  train_seconds: float = 0.0  # in the training loop, this process

  def skipped(self) -> dict[str, int]:
    """Images that failed to decode so far, per split."""
    return {name: c.skipped for name, c in self.counters.items()}


class Callback:
  """Hooks of a run (all optional). ``on_log`` runs every ``log_every``
  steps with the step's metrics; ``on_evaluate`` after each evaluation."""

  def on_train_begin(self, run: Run) -> None:
    pass

  def on_step_begin(self, step: int, run: Run) -> None:
    pass

  def on_log(self, step: int, logs: dict, run: Run) -> None:
    pass

  def on_evaluate(self, step: int, rows: list[dict], run: Run) -> None:
    pass

  def on_train_end(self, summary: dict, run: Run) -> None:
    pass


def defaults(run: Run) -> list[Callback]:
  return [ProgressBar(run), TensorBoard(run)]


def top_probability_cap(cells: int, learned_scale: bool) -> float:
  """The largest probability one of ``cells`` cells can get. With the
  paper's fixed scale the logits are L2-normalised (norm 1): the peak is
  the unit vector closest to one axis, ``z = (a, -b, …, -b)`` with
  ``a = √((n−1)/n)``, ``b = 1/√(n(n−1))`` — 0.104 for 25 cells. A learned
  scale lifts the cap to 1."""
  if learned_scale:
    return 1.0
  a, b = math.sqrt((cells - 1) / cells), 1 / math.sqrt(cells * (cells - 1))
  return math.exp(a) / (math.exp(a) + (cells - 1) * math.exp(-b))


def policy_line(logs: dict, cells: int, learned_scale: bool = False,
                greedy: bool = False) -> str:
  """One line on whether the attention policy has left the uniform
  distribution: how far its top cell's probability has gone from uniform
  (1/cells) towards the most the location module's scale allows. Greedy
  selection follows the ranking only: a distribution near uniform may
  already rank the evidence first (Megapixel MNIST: 0.02 on 256 cells
  with most first looks on a digit), which the line says."""
  uniform = 1.0 / cells
  cap = top_probability_cap(cells, learned_scale)
  progress = (logs["top_probability"] - uniform) / (cap - uniform)
  state = ("still uniform: the location module has not learnt where to "
           "look yet" if progress < 0.1 else
           "learning where to look" if progress < 0.5 else "peaked")
  return (f"attention policy {state} ({100 * progress:.0f}% of the way "
          f"from uniform to the peak its scale allows: top cell p = "
          f"{logs['top_probability']:.3f}, uniform {uniform:.3f}, at most "
          f"{cap:.3f}; entropy {logs['entropy']:.3f} of "
          f"{math.log(cells):.3f} nats)" + (
              "; greedy selection takes the top-ranked cells, so a flat "
              "distribution can still look in the right places: the "
              "per-location reward and the localisation rate tell"
              if greedy and progress < 0.5 else ""))


# points between two accuracies that the progress line calls a gap
MONITOR_GAP = 0.15


def inference_line(logs: dict, gap: float = MONITOR_GAP) -> str | None:
  """One line on whether the model holds up in inference: the trainer's
  monitor (``heldout_top1``, ``train_images_top1``: inference mode) beside
  the training accuracy ``top1`` (training mode, augmented images). None
  before the first check."""
  if "heldout_top1" not in logs:
    return None
  held, seen, training = (logs["heldout_top1"], logs["train_images_top1"],
                          logs["top1"])
  line = (f"inference check: held-out {100 * held:.1f}%, training images "
          f"{100 * seen:.1f}% (inference mode) vs {100 * training:.1f}% "
          "while training")
  if training - seen > gap:
    return line + (" — WARNING: the model leans on its training batch: "
                   "in inference mode (running statistics) it misses "
                   "what it gets right in training mode; expect the "
                   "held-out figure, not the training one")
  if seen - held > gap:
    return line + (" — WARNING: the model memorises its training images: "
                   "expect the held-out figure, not the training one "
                   "(more images, augmentation or fewer steps help)")
  return line


class ProgressBar(Callback):
  """Keras' progress bar over the training steps, and a line on the
  attention policy."""

  def __init__(self, run: Run):
    self._bar = keras.utils.Progbar(
        run.experiment.train.train_steps, interval=5.0,
        stateful_metrics=[m.name for m in run.task.metrics] + [
            "learning_rate", "steps_per_second", "skipped_images",
            "heldout_top1", "train_images_top1"])

  def on_log(self, step, logs, run):
    self._bar.update(step, list(logs.items()),
                     finalize=step == run.experiment.train.train_steps)
    line = inference_line(logs)
    if line:
      print("\n" + line, flush=True)
    if run.task.levels > 1 and "top_probability" in logs:
      cfg = run.task.config
      print("\n" + policy_line(logs, cfg.grid_size ** 2,
                                cfg.policy.location_scale == "learned",
                                cfg.policy.selection == "greedy"),
            flush=True)


class TensorBoard(Callback):
  """Scalars, histograms and attention overlays (``run_dir/train``,
  ``run_dir/eval``)."""

  def __init__(self, run: Run, overlay_images: int = 4):
    self.kinds = run.experiment.runtime.summaries
    self.overlay_images = overlay_images
    self._gradients = None

  def on_log(self, step, logs, run):
    with run.train_writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(name, value)
      if "weights" in self.kinds:
        for var in run.task.trainable_variables:
          tf.summary.histogram("weights/" + var.name, var)
      if "gradients" in self.kinds:
        grads = self.gradients(run)
        for var, grad in zip(run.task.trainable_variables, grads):
          if grad is not None:
            tf.summary.histogram("gradients/" + var.name, grad)

  def gradients(self, run: Run) -> list:
    """Gradients of the training objective on one batch (first replica)."""
    task = run.task
    if self._gradients is None:
      def replica_fn(images, labels):
        with tf.GradientTape() as tape:
          record = task(images, training=True)
          loss, _ = task.objective(record, labels, training=True)
        return tape.gradient(loss, task.trainable_variables)
      self._gradients = tf.function(replica_fn)  # traced once
    batch = next(run.iterator)
    per_replica = run.strategy.run(self._gradients, args=batch[:2])
    return [run.strategy.experimental_local_results(g)[0]
            if g is not None else None for g in per_replica]

  def on_evaluate(self, step, rows, run):
    with run.eval_writer.as_default(step=step):
      for row in rows:
        tag = "locations_" + ("_".join(map(str, row["locations"])) or "0")
        for metric in ("top1", "top5", "loss"):
          tf.summary.scalar(f"{metric}/{tag}", row[metric])
    if run.task.levels > 1:
      settings = [tuple(r["locations"]) for r in rows]
      self.attention_images(run, max(settings, key=inputs.total_locations),
                            step)

  def attention_images(self, run: Run, locations: Sequence[int],
                       step: int) -> None:
    """Overlays of the attended regions on a few evaluation images.
    Every worker runs the model (its ops may be collective); the chief
    draws."""
    from tnet_tf import visualize  # local: matplotlib only when drawing
    images = next(iter(run.picture_data.batch(self.overlay_images)))[0]
    if images.shape.rank == 1:
      return  # slides (indices into their files): predict --overlays draws
    record = run.task(images, training=False, locations=locations)
    if not run.chief:
      return
    png = visualize.attention_png(list(images.numpy()),
                                  visualize.overlay_records(record))
    n = run.task.config.grid_size
    with run.eval_writer.as_default(step=step):
      tf.summary.image(
          f"attention/locations_{'_'.join(map(str, locations))}",
          tf.image.decode_png(png, channels=3)[None])
      for level, probs in enumerate(TNetOutput.of(record).location_probs,
                                    start=2):
        # the first region's n×n probabilities, brightest = most likely
        maps = tf.reshape(probs[:, 0], [-1, n, n, 1])
        maps /= tf.reduce_max(maps, axis=[1, 2, 3], keepdims=True)
        tf.summary.image(f"attention_maps/level{level}", tf.image.resize(
            maps, [16 * n, 16 * n], "nearest"), max_outputs=len(maps))
        tf.summary.scalar(f"entropy/level{level}",
                          losses.location_entropy([probs]))
