"""Tasks: a network and the rule that trains it.

The trainer, evaluation, export and compression talk to one interface,
``Classifier`` (Model Garden's task; keras-hub's task over a backbone):
``task(images, locations=...)`` returns the attention record (``logits``
and the boxes, levels, weights of what was looked at: a dict,
``tnet_tf.model.outputs.TNetOutput``'s fields), ``levels`` and
``default_locations`` say what the network can be asked, and ``train_step``
applies the learning rule with one or two optimisers. Two tasks:

- ``TNetClassifier``: a ``TNet`` trained by the paper's rule — hybrid
  cross-entropy + REINFORCE with an EMA baseline of the rewards (§4).
- ``ImageClassifier``: a backbone on the whole image (the paper's
  baselines): cross-entropy. Its record is that of one level.

``build`` / ``create`` are the one factory from an experiment.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import baselines
from tnet_tf.model import inputs
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import losses
from tnet_tf.training import optim
from tnet_tf.config import (Experiment, ExplorationConfig, LossConfig,
                            ModelConfig)
from tnet_tf.model.tnet import TNet, build_backbone


class Classifier(keras.Model):
  """A network plus its learning rule (see the module docstring)."""

  # scalar means every task reports; subclasses add theirs
  METRICS: tuple[str, ...] = ("loss", "ce", "contrastive", "l2")
  # whether --jit_compile compiles the whole training step with XLA
  xla_step: bool = True

  def __init__(self, network: keras.Model,
               loss_config: Optional[LossConfig] = None, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.loss_config = loss_config or LossConfig()
    self.backbone_optimizer = None
    self._task_metrics: dict = {}

  # ------------------------------------------------- what the network is
  levels: int = 1
  default_locations: tuple[int, ...] = ()

  def settings(self, requested: Sequence[Sequence[int]] = ()
               ) -> tuple[tuple[int, ...], ...]:
    """The locations settings to evaluate: ``requested`` in normal form
    (the default locations if none); a one-level network has one."""
    if self.levels == 1:
      return ((),)
    return tuple(self.check_locations(s) for s in requested) or (
        self.default_locations,)

  def check_locations(self, locations) -> tuple[int, ...]:
    raise NotImplementedError

  def backbone_variables(self) -> list:
    """The variables a second optimiser (``backbone_optimizer``) updates."""
    raise NotImplementedError

  # ------------------------------------------------------ the learning rule
  def loss_terms(self, record: dict, labels: tf.Tensor) -> dict:
    """``per_example`` ``[B]`` (what is minimised) and the terms to log."""
    raise NotImplementedError

  def after_train_step(self, terms: dict) -> None:
    """State the rule keeps across steps (e.g. a reward baseline)."""

  def extra_metrics(self, terms: dict, record: dict) -> dict:
    """Values of the subclass's ``METRICS`` beyond the common ones."""
    return {}

  def l2_variables(self) -> list:
    """What the ``l2`` term penalises (``LossConfig.l2_rule``): every kernel,
    or (the authors') the first optimiser's variables but batch norm's."""
    if self.loss_config.l2_rule == "kernels":
      return [v for v in self.trainable_variables if len(v.shape) > 1]
    norms = {id(w) for layer in self.submodules
             if isinstance(layer, keras.layers.BatchNormalization)
             for w in layer.weights}
    return [v for v in self.optimizer_groups()[0][1] if id(v) not in norms]

  def objective(self, record: dict, labels: tf.Tensor,
                training: bool) -> tuple[tf.Tensor, dict]:
    """This replica's mean loss and its terms (for the metrics)."""
    cfg = self.loss_config
    terms = self.loss_terms(record, labels)
    total = tf.reduce_mean(terms["per_example"])
    terms["contrastive"] = tf.constant(0.0)
    terms["l2"] = tf.constant(0.0)
    if cfg.contrastive_weight:
      terms["contrastive"] = losses.cosine_contrastive(
          TNetOutput.of(record).embedding, labels, cfg.contrastive_margin,
          cfg.contrastive_diagonal)
      total += cfg.contrastive_weight * terms["contrastive"]
    if cfg.l2 and training:
      terms["l2"] = losses.l2_penalty(self.l2_variables(),
                                      half=cfg.l2_rule == "kernels")
      total += cfg.l2 * terms["l2"]
    return total, terms

  # ------------------------------------------------------------- Keras
  def compile(self, optimizer="adam", backbone_optimizer=None, **kwargs):
    """Keras ``compile``; with ``backbone_optimizer`` the backbone's
    variables are updated by it (e.g. a smaller learning rate for a
    pre-trained backbone) and the rest by ``optimizer``."""
    kwargs.pop("loss", None)
    super().compile(optimizer=optimizer, **kwargs)
    self.backbone_optimizer = (keras.optimizers.get(backbone_optimizer)
                               if backbone_optimizer is not None else None)
    self._task_metrics = {n: keras.metrics.Mean(n) for n in self.METRICS}
    self._task_metrics["top1"] = keras.metrics.SparseCategoricalAccuracy(
        "top1")
    self._task_metrics["top5"] = (
        keras.metrics.SparseTopKCategoricalAccuracy(5, "top5"))

  @property
  def metrics(self):
    return list(self._task_metrics.values())

  @property
  def optimizers(self) -> list:
    return [self.optimizer] + ([self.backbone_optimizer]
                               if self.backbone_optimizer else [])

  def optimizer_groups(self) -> list[tuple]:
    """(optimiser, variables) pairs; one pair without a backbone one."""
    if self.backbone_optimizer is None:
      return [(self.optimizer, self.trainable_variables)]
    backbone = self.backbone_variables()
    ids = {id(v) for v in backbone}
    head = [v for v in self.trainable_variables if id(v) not in ids]
    return [(self.optimizer, head), (self.backbone_optimizer, backbone)]

  def train_step(self, data):
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
    samples = self.loss_config.num_samples
    if samples > 1:  # M Monte-Carlo samples of a stochastic model
      images = tf.concat([images] * samples, axis=0)
      labels = tf.concat([labels] * samples, axis=0)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    groups = self.optimizer_groups()
    variables = [v for _, group in groups for v in group]
    scaling = isinstance(self.optimizer,
                         keras.mixed_precision.LossScaleOptimizer)
    with tf.GradientTape() as tape:
      record = self.training_forward(images)
      total, terms = self.objective(record, labels, training=True)
      # gradients are summed over replicas: scale to the global mean
      objective = total / replicas
      if scaling:
        objective = self.optimizer.get_scaled_loss(objective)
    grads = tape.gradient(objective, variables)
    if scaling:
      grads = self.optimizer.get_unscaled_gradients(grads)
    start = 0
    for i, (optimizer, group) in enumerate(groups):
      pairs = zip(grads[start:start + len(group)], group)
      start += len(group)
      if i == 0:  # its loss scale decides whether the step counts
        optimizer.apply_gradients([(g, v) for g, v in pairs
                                   if g is not None])
      else:  # a step the first one skips must not move these either
        optimizer.apply_gradients(
            [(tf.where(tf.math.is_finite(g), g, tf.zeros_like(g)), v)
             for g, v in pairs if g is not None])
    self.after_train_step(terms)
    return self._update_metrics(total, terms, record, labels)

  def training_forward(self, images) -> dict:
    """The record a training step learns from."""
    return self(images, training=True)

  def test_step(self, data):
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
    record = self(images, training=False)
    total, terms = self.objective(record, labels, training=False)
    return self._update_metrics(total, terms, record, labels)

  def predict_step(self, data):
    images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return self(images, training=False)

  def _update_metrics(self, total, terms, record, labels):
    values = {"loss": total, "ce": terms["ce"],
              "contrastive": terms["contrastive"], "l2": terms["l2"],
              **self.extra_metrics(terms, record)}
    m = self._task_metrics
    for name in self.METRICS:
      m[name].update_state(values[name])
    logits = TNetOutput.of(record).logits
    m["top1"].update_state(labels, logits)
    m["top5"].update_state(labels, logits)
    return {name: metric.result() for name, metric in m.items()}


class TNetClassifier(Classifier):
  """TNet trained by the paper's learning rule (``tnet_tf.training.losses``)."""

  METRICS = Classifier.METRICS + (
      "seq_reinforce", "perfeature_ce", "perfeature_reinforce", "reward",
      "baseline", "locations", "entropy", "top_probability",
      "location_target")
  # crop_and_resize has no XLA CPU kernel: XLA compiles the backbone only
  xla_step = False

  def __init__(self, network: TNet, loss_config: Optional[LossConfig] = None,
               exploration_config: Optional[ExplorationConfig] = None,
               **kwargs):
    kwargs.setdefault("name", "tnet_classifier")
    super().__init__(network, loss_config, **kwargs)
    # ``image_source(x)``: what the network reads for a batch's input ``x``
    # (None: ``x`` itself). Training on slides sets it: the dataset yields
    # indices into their table (``tnet_tf.data.regions.reader``).
    self.image_source = None
    self.exploration_config = exploration_config or ExplorationConfig()
    # EMA baseline of the rewards (non-trainable: saved in checkpoints,
    # identical on every replica)
    self.reward_baseline = self.add_weight(
        name="reinforce_baseline", shape=(), dtype=tf.float32,
        initializer=keras.initializers.Constant(0.5), trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  @property
  def config(self) -> ModelConfig:
    return self.network.config

  @property
  def levels(self) -> int:
    return self.network.levels

  @property
  def default_locations(self) -> tuple[int, ...]:
    return self.network.default_locations

  def check_locations(self, locations) -> tuple[int, ...]:
    cfg = self.network.config
    return inputs.check_locations(locations, cfg.levels, cfg.grid_size)

  def call(self, images, training=None, locations=None):
    return self.network(self.read(images), training=training,
                        locations=locations,
                        exploration=(self.exploration() if training
                                     else None))

  def training_forward(self, images):
    """During the first ``scan_steps`` every cell of the first attended
    level is looked at (the classifier sees the evidence in every image, and
    every cell gets a reward); then the configured locations."""
    steps = self.exploration_config.scan_steps
    if not steps or self.optimizer is None:
      return self(images, training=True)
    cfg = self.network.config
    everywhere = (cfg.grid_size ** 2,) + tuple(cfg.locations[1:])
    return tf.cond(
        self.optimizer.iterations < steps,
        lambda: self.network(self.read(images), training=True,
                             locations=everywhere),
        lambda: self(images, training=True))

  def read(self, images):
    """What the network reads for the batch input ``images``."""
    if self.image_source is None:
      return images
    return self.image_source(images)

  def exploration(self):
    """The scale of the selection noise at this training step (None: the
    configured selection): cells at random for ``random_steps``, then a
    noise falling from 1 to 0 over ``anneal_steps``."""
    cfg = self.exploration_config
    if not (cfg.random_steps or cfg.anneal_steps) or self.optimizer is None:
      return None
    step = tf.cast(self.optimizer.iterations, tf.float32)
    anneal = tf.maximum(0.0, 1.0 - (step - cfg.random_steps) / max(
        1, cfg.anneal_steps)) if cfg.anneal_steps else 0.0
    return tf.where(step < cfg.random_steps, 1e4, anneal)

  def backbone_variables(self) -> list:
    return self.network.feature_extraction.trainable_variables

  def loss_terms(self, record, labels):
    return losses.tnet_loss_terms(record, labels, self.reward_baseline,
                                  self.loss_config)

  def after_train_step(self, terms):
    """EMA step with rewards averaged over all replicas' images."""
    mask = terms["attended_mask"][None, :]
    sums = tf.stack([
        tf.reduce_sum(terms["reward"]),
        tf.cast(tf.size(terms["reward"]), tf.float32),
        tf.reduce_sum(terms["feature_reward"] * mask),
        tf.reduce_sum(tf.ones_like(terms["feature_reward"]) * mask)])
    ctx = tf.distribute.get_replica_context()
    if ctx is not None:
      sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    target = losses.baseline_target(sums[0], sums[1], sums[2], sums[3],
                                    self.loss_config.lambda_r)
    self.reward_baseline.assign(losses.updated_baseline(
        self.reward_baseline, target, self.loss_config.baseline_decay))

  def extra_metrics(self, terms, record):
    values = {name: terms[name] for name in (
        "seq_reinforce", "perfeature_ce", "perfeature_reinforce", "reward",
        "location_target")}
    values["baseline"] = self.reward_baseline
    out = TNetOutput.of(record)
    values["locations"] = tf.cast(
        tf.shape(out.location_log_probs)[1], tf.float32)
    values["entropy"] = losses.location_entropy(out.location_probs)
    values["top_probability"] = (
        tf.reduce_mean(tf.concat([tf.reshape(tf.reduce_max(p, -1), [-1])
                                  for p in out.location_probs], 0))
        if out.location_probs else tf.constant(0.0))
    return values


class ImageClassifier(Classifier):
  """A backbone on the whole image → dropout → ``Dense(num_classes)``.

  Takes the images TNet takes (any size, 1 or 3 channels, pixel values in
  [0, 255]) and returns the record of a one-level TNet: the whole image is
  the one region, with weight 1.
  """

  def __init__(self, config: ModelConfig,
               loss_config: Optional[LossConfig] = None, **kwargs):
    kwargs.setdefault("name", "image_classifier")
    kwargs_ = dict(config.backbone_kwargs)
    if config.backbone.startswith("efficientnet"):
      kwargs_ = {k: v for k, v in kwargs_.items()
                 if k in ("weights", "block_drop_rate")}
    network = baselines.build_classifier(
        config.backbone, config.num_classes, config.input_size or
        (None, None), config.dropout, embedding=True, **kwargs_)
    super().__init__(network, loss_config, **kwargs)
    self.config = config

  def call(self, images, training=None, locations=None):
    del locations  # one level: nothing to attend
    images = inputs.check_images(images, self.config.check_numerics)
    if images.shape[-1] == 1:
      images = tf.tile(images, [1, 1, 1, 3])
    out = self.network(tf.cast(images, tf.float32), training=training)
    logits = out["logits"]
    batch = tf.shape(images)[0]
    hw = tf.cast(tf.shape(images)[1:3], tf.float32)
    whole = tf.concat([tf.zeros([2]), hw], 0)
    return TNetOutput(
        logits=logits, feature_logits=logits[:, None],
        feature_weights=tf.ones([batch, 1]),
        embedding=tf.cast(out["embedding"], tf.float32),
        boxes=tf.tile(whole[None, None], [batch, 1, 1]),
        levels=tf.ones([1], tf.int32),
        positions=tf.zeros([batch, 1, 3]),
        location_log_probs=tf.zeros([batch, 0]),
        location_probs=[], location_indices=[]).as_dict()

  def backbone_variables(self) -> list:
    head = {id(v) for v in self.network.get_layer("logits").weights}
    return [v for v in self.trainable_variables if id(v) not in head]

  def loss_terms(self, record, labels):
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, tf.cast(TNetOutput.of(record).logits, tf.float32))
    return {"per_example": ce, "ce": ce}


# ----------------------------------------------------------- the factory
def create(kind: str, model: ModelConfig,
           loss: Optional[LossConfig] = None,
           exploration: Optional[ExplorationConfig] = None,
           jit_compile: bool = False) -> Classifier:
  """The task of ``kind`` ("tnet" or "baseline"), not compiled.
  ``jit_compile``: XLA for TNet's backbone (``crop_and_resize`` has no XLA
  CPU kernel); a baseline compiles its whole step (``build``)."""
  if kind == "tnet":
    backbone = build_backbone(model)
    if jit_compile:
      backbone = backbone.replace(jit_compile=True)
    return TNetClassifier(TNet(model, backbone), loss, exploration)
  if kind == "baseline":
    return ImageClassifier(model, loss)
  raise ValueError(f"unknown model kind {kind!r}; known: tnet, baseline")


def model_config_for(kind: str, model: ModelConfig,
                     **changes) -> ModelConfig:
  """The architecture ``kind`` builds from ``model`` with ``changes``: a
  whole-image baseline is one level, with nothing to attend (and no level
  checks)."""
  if kind == "baseline":
    changes.update(levels=1, locations=())
  return model.replace(**changes)


def build(experiment: Experiment) -> Classifier:
  """The compiled task of an experiment (call inside a strategy's scope)."""
  return compile_for(create(experiment.kind, experiment.model,
                            experiment.loss, experiment.exploration,
                            experiment.runtime.jit_compile),
                     experiment)


def compile_for(task: Classifier, experiment: Experiment) -> Classifier:
  """Compiles ``task`` with the experiment's optimisers and schedules."""
  train = experiment.train
  backbone_optimizer = (optim.build_optimizer(train,
                                              train.backbone_learning_rate)
                        if train.backbone_learning_rate is not None else None)
  task.compile(optim.build_optimizer(train, train.learning_rate),
               backbone_optimizer=backbone_optimizer,
               jit_compile=experiment.runtime.jit_compile and task.xla_step)
  return task


def network_of(model: keras.Model) -> keras.Model:
  """The network of a task, or ``model`` itself when it is a network: what
  evaluation, export and attention read, given either."""
  return model.network if isinstance(model, Classifier) else model


def require_tnet(task: Classifier, what: str) -> TNet:
  """The TNet of ``task``, or a ValueError saying ``what`` needs one."""
  if not isinstance(task, TNetClassifier):
    raise ValueError(f"{what} needs a TNet; this run holds a "
                     f"{type(task).__name__} ({task.network.name})")
  return task.network
