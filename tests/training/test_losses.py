"""The learning rule, checked against a hand computation in numpy."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.training import losses
from tnet_tf.model.tnet import TNet


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def hand_loss(logits, feature_logits, loc_logp, labels, b, lc, lr, lf):
  """Eq. 3 for one batch, written out term by term."""
  bsz, n, _ = feature_logits.shape
  ce = -_log_softmax(logits)[np.arange(bsz), labels]
  r = (logits.argmax(-1) == labels).astype(float)
  fce = -np.stack([_log_softmax(feature_logits[:, j])[np.arange(bsz), labels]
                   for j in range(n)], 1)
  rk = (feature_logits[:, 1:].argmax(-1) == labels[:, None]).astype(float)
  total = 0.0
  for i in range(bsz):
    total += lc * ce[i] / bsz
    total += lf * lr * (r[i] - b) * (-loc_logp[i].sum()) / bsz
    total += (1 - lc) * fce[i].sum() / (n * bsz)
    total += lf * (1 - lr) * np.sum((rk[i] - b) * -loc_logp[i]) / (
        (n - 1) * bsz)
  target = lr * r.mean() + (1 - lr) * rk.mean()
  return total, 0.9 * b + 0.1 * target


def test_baseline_update_formula():
  target = losses.baseline_target(3.0, 4.0, 2.0, 8.0, lambda_r=0.3)
  assert float(target) == pytest.approx(0.3 * 0.75 + 0.7 * 0.25)
  assert float(losses.updated_baseline(0.5, target)) == pytest.approx(
      0.9 * 0.5 + 0.1 * (0.3 * 0.75 + 0.7 * 0.25))
  # no attended location: only the final reward counts
  assert float(losses.baseline_target(1.0, 4.0, 0.0, 0.0, 0.3)) == 0.25


def test_perfreg_cap_drops_deeper_levels():
  record = {
      "logits": tf.constant([[2.0, 0.0]]),
      "feature_logits": tf.constant([[[2.0, 0.0], [0.0, 2.0], [0.0, 9.0]]]),
      "location_log_probs": tf.constant([[-1.0, -2.0]]),
      "levels": tf.constant([1, 2, 3]),
  }
  labels = tf.constant([0])
  full = losses.tnet_loss_terms(record, labels, 0.5, losses.LossConfig())
  capped = losses.tnet_loss_terms(record, labels, 0.5,
                                  losses.LossConfig(perfreg_cap=2))
  ce = lambda z: np.log(np.exp(z).sum()) - z[0]
  np.testing.assert_allclose(full["perfeature_ce"],
                             [(ce(np.array([2., 0])) + ce(np.array([0., 2]))
                               + ce(np.array([0., 9]))) / 3], rtol=1e-5)
  np.testing.assert_allclose(capped["perfeature_ce"],
                             [(ce(np.array([2., 0])) + ce(np.array([0., 2])))
                              / 2], rtol=1e-5)
  # per-location REINFORCE: only the level-2 location, reward 0
  np.testing.assert_allclose(capped["perfeature_reinforce"],
                             [(0 - 0.5) * 1.0], rtol=1e-6)
  # the whole-sequence term keeps every level: reward 1
  np.testing.assert_allclose(capped["seq_reinforce"], [(1 - 0.5) * 3.0])


def test_zero_locations_has_no_reinforce_terms():
  record = {"logits": tf.constant([[1.0, 0.0]]),
            "feature_logits": tf.constant([[[1.0, 0.0]]]),
            "location_log_probs": tf.zeros([1, 0]),
            "levels": tf.constant([1])}
  terms = losses.tnet_loss_terms(record, tf.constant([0]), 0.5,
                                 losses.LossConfig())
  assert float(terms["seq_reinforce"][0]) == 0.0
  assert float(terms["perfeature_reinforce"][0]) == 0.0


def test_reinforce_changes_only_the_location_module(rng):
  """REINFORCE terms reach only location-module weights; CE terms never do."""
  model = TNet(tiny_config(levels=2, locations=(2,)))
  images = rng.integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
  labels = tf.constant([0, 1, 2, 3])
  location_ids = {id(v) for v in model.location_module.trainable_variables}
  with tf.GradientTape(persistent=True) as tape:
    record = model(images, training=True)
    terms = losses.tnet_loss_terms(record, labels, 0.1, losses.LossConfig())
    reinforce = tf.reduce_mean(terms["seq_reinforce"] +
                               terms["perfeature_reinforce"])
    cross_entropy = tf.reduce_mean(terms["ce"] + terms["perfeature_ce"])
  variables = model.trainable_variables
  for v, g in zip(variables, tape.gradient(reinforce, variables)):
    if id(v) in location_ids:
      continue
    assert g is None or not np.any(g.numpy()), v.name
  assert any(g is not None and np.any(g.numpy()) for g in tape.gradient(
      reinforce, model.location_module.trainable_variables))
  assert all(g is None for g in tape.gradient(
      cross_entropy, model.location_module.trainable_variables))


def test_cosine_contrastive_by_hand():
  emb = tf.constant([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
  labels = tf.constant([0, 0, 1])
  c = 1 / np.sqrt(2)
  pairs = {(0, 1): 1 - c, (0, 2): max(0.0 - 0.4, 0), (1, 2): max(c - 0.4, 0)}
  # the authors' mean: all 9 pairs, the 3 diagonal ones (0) included
  assert float(losses.cosine_contrastive(emb, labels, 0.4)) == pytest.approx(
      2 * sum(pairs.values()) / 9, rel=1e-5)
  assert float(losses.cosine_contrastive(
      emb, labels, 0.4, include_diagonal=False)) == pytest.approx(
          2 * sum(pairs.values()) / 6, rel=1e-5)


def test_loss_config_validation():
  with pytest.raises(ValueError, match="lambda_c"):
    losses.LossConfig(lambda_c=1.5)
  with pytest.raises(ValueError, match="num_samples"):
    losses.LossConfig(num_samples=0)
