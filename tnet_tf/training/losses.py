"""The learning rule (paper §4, eqs. 1–3) as pure functions of tensors.

Per image, with ``N = 1 +`` attended locations, reward ``R`` (1 if the final
prediction is right), per-location rewards ``R_k`` and the EMA baseline ``b``::

  λc · CE(final logits)
  + λf·λr · (R − b) · (−Σ_k log p(l_k))              whole sequence
  + (1−λc) · 1/N · Σ_n CE(per-feature logits_n)       per-feature
  + λf(1−λr) · 1/(N−1) · Σ_k (R_k − b) · (−log p(l_k))

averaged over the batch; ``(R − b)`` is a constant. The baseline moves after
each batch: ``b ← 0.9·b + 0.1·[λr·mean(R) + (1−λr)·mean(R_k)]``.
"""
from __future__ import annotations

import tensorflow as tf

from tnet_tf.config import LossConfig
from tnet_tf.model.outputs import TNetOutput


def correct(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """1.0 where ``argmax(logits) == labels`` (any leading shape), else 0.0."""
  pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.cast(tf.equal(pred, tf.cast(labels, tf.int32)), tf.float32)


def rewards(logits: tf.Tensor, labels: tf.Tensor, kind: str) -> tf.Tensor:
  """Per prediction (any leading shape): 1 if right (``"correct"``) or the
  probability given to the label (``"probability"``)."""
  if kind == "correct":
    return correct(logits, labels)
  probs = tf.nn.softmax(logits)
  return tf.gather(probs, tf.cast(labels, tf.int32), axis=-1, batch_dims=(
      len(labels.shape)))


def image_baseline(feature_reward: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """``[B, N−1]``: for each attended location the mean reward of the other
  locations of the same image that count (``mask`` ``[N−1]``); an image
  with one location compares it with 0."""
  counted = feature_reward * mask[None, :]
  others = tf.reduce_sum(counted, axis=1, keepdims=True) - counted
  return tf.math.divide_no_nan(others, tf.reduce_sum(mask) - mask[None, :])


def location_target_loss(log_p: tf.Tensor, feature_logits: tf.Tensor,
                         labels: tf.Tensor, levels: tf.Tensor,
                         temperature: float) -> tf.Tensor:
  """``[B]``: cross-entropy of the location distribution restricted to the
  cells attended at the first decision (level 2) against where the
  per-feature classifier found the label: ``q_k ∝ p_k(y)^(1/T)``. Where
  REINFORCE only nudges the cells it tried, this tells the location module
  which of them held the evidence (a distillation from the classifier)."""
  first = tf.cast(levels[1:] == 2, tf.float32)[None, :]  # [1, N-1]
  log_pk = -tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.repeat(labels[:, None], tf.shape(feature_logits)[1] - 1, axis=1),
      feature_logits[:, 1:])  # [B, N-1]: log p_k(y)
  masked = lambda x: x + (first - 1.0) * 1e9  # other levels: weight 0
  target = tf.stop_gradient(tf.nn.softmax(masked(log_pk / temperature)))
  restricted = tf.nn.log_softmax(masked(log_p))  # π over the tried cells
  return -tf.reduce_sum(target * restricted * first, axis=1)


def tnet_loss_terms(record: dict, labels: tf.Tensor, baseline: tf.Tensor,
                    cfg: LossConfig) -> dict:
  """Per-image terms of the learning rule and the rewards.

  Args:
    record: TNet's output (``logits``, ``feature_logits``, ``levels``,
      ``location_log_probs``).
    labels: ``[B]`` integer class labels.
    baseline: scalar EMA baseline ``b``.
  Returns:
    ``per_example`` ``[B]`` (the weighted sum), each unweighted term ``[B]``,
    rewards ``R`` ``[B]`` and ``R_k`` ``[B, N−1]`` with the mask of the
    attended features that count, ``attended_mask`` ``[N−1]``.
  """
  labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
  out = TNetOutput.of(record)
  logits = tf.cast(out.logits, tf.float32)
  feature_logits = tf.cast(out.feature_logits, tf.float32)
  log_p = tf.cast(out.location_log_probs, tf.float32)  # [B, N-1]
  levels = out.levels  # [N]
  b = tf.stop_gradient(tf.cast(baseline, tf.float32))

  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  reward = rewards(logits, labels, cfg.reward)
  num = tf.shape(feature_logits)[1]
  feature_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.repeat(labels[:, None], num, axis=1), feature_logits)  # [B, N]
  feature_reward = rewards(feature_logits[:, 1:], tf.repeat(
      labels[:, None], num - 1, axis=1), cfg.reward)

  if cfg.perfreg_cap is None:
    feature_mask = tf.ones_like(levels, tf.float32)
  else:
    feature_mask = tf.cast(levels <= cfg.perfreg_cap, tf.float32)
  attended_mask = feature_mask[1:]
  n_features = tf.reduce_sum(feature_mask)
  n_attended = tf.reduce_sum(attended_mask)

  seq = tf.stop_gradient(reward - b) * -tf.reduce_sum(log_p, axis=1)
  pf_ce = tf.reduce_sum(feature_ce * feature_mask, axis=1) / n_features
  compared = (b if cfg.location_baseline == "ema" else
              image_baseline(feature_reward, attended_mask))
  pf_rl = tf.math.divide_no_nan(
      tf.reduce_sum(tf.stop_gradient(feature_reward - compared) * -log_p *
                    attended_mask, axis=1), n_attended)
  per_example = (cfg.lambda_c * ce + cfg.lambda_f * cfg.lambda_r * seq +
                 (1.0 - cfg.lambda_c) * pf_ce +
                 cfg.lambda_f * (1.0 - cfg.lambda_r) * pf_rl)
  target = tf.zeros_like(ce)
  if cfg.location_target:
    target = location_target_loss(log_p, feature_logits, labels, levels,
                                  cfg.location_target_temperature)
    per_example += cfg.location_target * target
  return {"per_example": per_example, "ce": ce, "seq_reinforce": seq,
          "location_target": target,
          "perfeature_ce": pf_ce, "perfeature_reinforce": pf_rl,
          "reward": reward, "feature_reward": feature_reward,
          "attended_mask": attended_mask}


def baseline_target(reward_sum, count, feature_reward_sum, feature_count,
                    lambda_r: float) -> tf.Tensor:
  """``λr·mean(R) + (1−λr)·mean(R_k)`` from (cross-replica) sums.

  With no attended location counted, the target is ``mean(R)``.
  """
  mean_r = reward_sum / count
  mean_rk = tf.math.divide_no_nan(feature_reward_sum, feature_count)
  mixed = lambda_r * mean_r + (1.0 - lambda_r) * mean_rk
  return tf.where(feature_count > 0, mixed, mean_r)


def updated_baseline(baseline, target, decay: float = 0.9) -> tf.Tensor:
  """The EMA step ``b ← decay·b + (1 − decay)·target``."""
  return decay * baseline + (1.0 - decay) * target


def cosine_contrastive(embedding: tf.Tensor, labels: tf.Tensor,
                       margin: float = 0.4,
                       include_diagonal: bool = True) -> tf.Tensor:
  """``mean(same·(1−cos) + diff·max(cos − margin, 0))`` over the pairs of a
  batch: all ``B²`` (the diagonal, 0, included: the authors') or ``i ≠ j``."""
  z = tf.math.l2_normalize(tf.cast(embedding, tf.float32), axis=-1)
  cos = tf.matmul(z, z, transpose_b=True)
  labels = tf.reshape(labels, [-1])
  same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32)
  pair = same * (1.0 - cos) + (1.0 - same) * tf.nn.relu(cos - margin)
  counted = tf.ones_like(pair)
  if not include_diagonal:
    counted -= tf.eye(tf.shape(z)[0])
  return tf.math.divide_no_nan(tf.reduce_sum(pair * counted),
                               tf.reduce_sum(counted))


def l2_penalty(variables, half: bool = True) -> tf.Tensor:
  """``Σ ||v||²`` over ``variables`` (halved with ``half``, as
  ``tf.nn.l2_loss``)."""
  if not variables:
    return tf.constant(0.0)
  total = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
                    for v in variables])
  return 0.5 * total if half else total


def location_entropy(location_probs) -> tf.Tensor:
  """Mean entropy (nats) of all location distributions of a record."""
  if not location_probs:
    return tf.constant(0.0)
  ents = [tf.reshape(-tf.reduce_sum(p * tf.math.log(p + 1e-12), -1), [-1])
          for p in location_probs]
  return tf.reduce_mean(tf.concat(ents, 0))
