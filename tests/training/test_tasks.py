"""Tasks: the learning rule applied by train_step, one or two optimisers,
the whole-image classifier's record, and the one factory."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import tiny_config
from test_losses import hand_loss
from tnet_tf.training import losses
from tnet_tf.training import tasks
from tnet_tf.config import Experiment, TrainConfig
from tnet_tf.model.tnet import TNet


def test_train_step_loss_matches_hand_computation(rng):
  """2 images, 2 levels, 3 locations: train_step's loss to 1e-5."""
  tf.random.set_seed(3)
  cfg = losses.LossConfig(lambda_c=0.3, lambda_r=0.2, lambda_f=0.7)
  model = tasks.TNetClassifier(TNet(tiny_config(
      levels=2, locations=(3,), num_classes=4)), cfg)
  model.compile(keras.optimizers.SGD(0.1))
  images = rng.integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
  labels = np.array([1, 3])
  model.reward_baseline.assign(0.25)
  record = model(images, training=True)  # same forward as the step
  # make rewards non-trivial: label 1 = the model's own prediction of image 0
  labels[0] = int(np.argmax(record["logits"][0]))
  expected, expected_b = hand_loss(
      record["logits"].numpy().astype(float),
      record["feature_logits"].numpy().astype(float),
      record["location_log_probs"].numpy().astype(float),
      labels, 0.25, 0.3, 0.2, 0.7)
  # log p of the chosen cells are the model's own probabilities
  probs = record["location_probs"][0].numpy()[:, 0]
  chosen = record["location_indices"][0].numpy()[:, 0]
  np.testing.assert_allclose(
      record["location_log_probs"],
      np.log(np.take_along_axis(probs, chosen, 1)), rtol=1e-5)
  logs = model.train_step((tf.constant(images), tf.constant(labels)))
  assert float(logs["loss"]) == pytest.approx(expected, abs=1e-5)
  assert float(model.reward_baseline) == pytest.approx(expected_b, abs=1e-6)
  assert float(logs["locations"]) == 3.0


def test_backbone_optimizer_updates_only_the_backbone(rng):
  model = tasks.TNetClassifier(TNet(tiny_config(levels=2, locations=(2,))))
  model.compile(keras.optimizers.SGD(0.1),
                backbone_optimizer=keras.optimizers.SGD(0.0))
  tnet = model.network
  before_backbone = [v.numpy().copy()
                     for v in tnet.feature_extraction.trainable_variables]
  before_head = [v.numpy().copy()
                 for v in tnet.classification_module.trainable_variables]
  images = rng.integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
  model.train_step((tf.constant(images), tf.constant([0, 1, 2, 3])))
  for old, var in zip(before_backbone,
                      tnet.feature_extraction.trainable_variables):
    np.testing.assert_array_equal(old, var.numpy())
  assert any(np.any(old != var.numpy()) for old, var in zip(
      before_head, tnet.classification_module.trainable_variables))


def test_num_samples_repeats_the_batch(rng):
  model = tasks.TNetClassifier(TNet(tiny_config(levels=2, locations=(2,))),
                               losses.LossConfig(num_samples=3))
  model.compile(keras.optimizers.SGD(0.0))
  images = rng.integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
  seen = []
  original = model.call
  def spy(x, **kwargs):
    seen.append(int(x.shape[0]))
    return original(x, **kwargs)
  model.call = spy
  model.train_step((tf.constant(images), tf.constant([0, 1])))
  assert seen == [6]


def test_image_classifier_gives_the_record_of_one_level(rng):
  cfg = tiny_config(levels=1, locations=(), num_classes=4)
  task = tasks.create("baseline", cfg)
  grey = rng.integers(0, 256, (2, 40, 56, 1)).astype(np.uint8)
  out = task(grey, training=False)
  rgb = task(np.repeat(grey, 3, axis=-1), training=False)
  np.testing.assert_allclose(out["logits"], rgb["logits"], atol=1e-6)
  np.testing.assert_allclose(out["feature_logits"][:, 0], out["logits"])
  np.testing.assert_array_equal(out["boxes"], [[[0, 0, 40, 56]]] * 2)
  np.testing.assert_array_equal(out["levels"], [1])
  np.testing.assert_array_equal(out["feature_weights"], [[1.0], [1.0]])
  assert out["location_log_probs"].shape == (2, 0)
  assert task.settings([(1,), (2,)]) == ((),)  # nothing to attend


@pytest.mark.parametrize("kind", ["tnet", "baseline"])
def test_l2_over_every_kernel(kind, rng):
  """l2_rule="kernels": the objective adds λ·Σ||w||²/2 over the kernels,
  for either task."""
  cfg = tiny_config(levels=2, locations=(2,), num_classes=4)
  if kind == "baseline":
    cfg = cfg.replace(levels=1, locations=())
  plain = tasks.create(kind, cfg, losses.LossConfig())
  with_l2 = tasks.create(kind, cfg, losses.LossConfig(l2=0.01,
                                                      l2_rule="kernels"))
  with_l2.set_weights(plain.get_weights())
  images = rng.integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
  labels = tf.constant([0, 3])
  record = plain(images, training=False)
  base, _ = plain.objective(record, labels, training=True)
  total, terms = with_l2.objective(record, labels, training=True)
  kernels = [v.numpy() for v in with_l2.trainable_variables
             if v.shape.rank > 1]
  by_hand = sum(float((k.astype(np.float64) ** 2).sum()) / 2 for k in kernels)
  assert float(terms["l2"]) == pytest.approx(by_hand, rel=1e-5)
  assert float(total) == pytest.approx(float(base) + 0.01 * by_hand,
                                       rel=1e-5)
  # and only in training
  _, eval_terms = with_l2.objective(record, labels, training=False)
  assert float(eval_terms["l2"]) == 0.0


def test_the_factory_builds_each_kind_compiled():
  cfg = tiny_config(levels=2, locations=(2,), num_classes=4)
  exp = Experiment(model=cfg, train=TrainConfig(backbone_learning_rate=1e-4))
  task = tasks.build(exp)
  assert isinstance(task, tasks.TNetClassifier) and task.levels == 2
  assert len(task.optimizers) == 2 and task.default_locations == (2,)
  baseline = tasks.build(exp.replace(
      kind="baseline", model=cfg.replace(levels=1, locations=())))
  assert isinstance(baseline, tasks.ImageClassifier) and baseline.levels == 1
  with pytest.raises(ValueError, match="needs a TNet"):
    tasks.require_tnet(baseline, "compression")
  with pytest.raises(ValueError, match="unknown model kind 'cnn'"):
    tasks.create("cnn", cfg)


def test_baseline_trains_with_two_optimisers(rng):
  cfg = tiny_config(levels=1, locations=(), num_classes=4)
  task = tasks.create("baseline", cfg)
  task.compile(keras.optimizers.SGD(0.1),
               backbone_optimizer=keras.optimizers.SGD(0.0))
  head = task.network.get_layer("logits")
  before_head = [w.copy() for w in head.get_weights()]
  before = [v.numpy().copy() for v in task.backbone_variables()]
  images = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
  logs = task.train_step((tf.constant(images), tf.constant([0, 1, 2, 3])))
  assert np.isfinite(float(logs["loss"]))
  for old, var in zip(before, task.backbone_variables()):
    np.testing.assert_array_equal(old, var.numpy())
  assert any(np.any(a != b) for a, b in zip(before_head, head.get_weights()))


def test_l2_as_the_authors_two_layer_model_by_hand(rng):
  """l2_rule="authors" (CUB/train.py): λ·Σ v² over the first optimiser's
  variables — with a backbone optimiser, the new modules only, biases
  included; batch norm never. A two-layer whole-image model: a conv with BN
  (the backbone) and the classifier."""
  cfg = tiny_config(levels=1, locations=(), num_classes=3,
                    backbone_kwargs={"widths": (4,)})
  task = tasks.create("baseline", cfg, losses.LossConfig(l2=0.5))
  conv, bn = (task.network.get_layer(n) for n in ("conv1", "bn1"))
  head = task.network.get_layer("logits")
  for layer in (conv, bn, head):  # (BN's moving variance must be > 0)
    layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32)
                       for w in layer.get_weights()])
  record = task(rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8))
  sq = lambda layer: sum(float((w.numpy().astype(np.float64) ** 2).sum())
                         for w in layer.trainable_weights)
  # one optimiser: every variable but batch norm's
  task.compile(keras.optimizers.SGD(0.1))
  _, terms = task.objective(record, tf.constant([0, 1]), training=True)
  assert float(terms["l2"]) == pytest.approx(sq(conv) + sq(head), rel=1e-5)
  # the backbone with its own optimiser: only the classifier (kernel, bias)
  task.compile(keras.optimizers.SGD(0.1),
               backbone_optimizer=keras.optimizers.SGD(0.01))
  total, terms = task.objective(record, tf.constant([0, 1]), training=True)
  assert float(terms["l2"]) == pytest.approx(sq(head), rel=1e-5)
  assert float(total) == pytest.approx(
      float(tf.reduce_mean(terms["ce"])) + 0.5 * sq(head), rel=1e-5)
