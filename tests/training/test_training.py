"""Optimisers, schedules, evaluation at several locations, weights loading."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.model import backbones
from tnet_tf.config import RuntimeConfig, TrainConfig
from tnet_tf.training.evaluation import evaluate_at_locations
from tnet_tf.model.tnet import TNet
from tnet_tf.training.optim import WarmupSchedule


def test_step_decay_and_cosine_schedules():
  step = WarmupSchedule(1e-3, "step", decay_steps=(10, 20), decay_factor=0.1)
  assert [float(step(s)) for s in (0, 9, 10, 19, 20)] == pytest.approx(
      [1e-3, 1e-3, 1e-4, 1e-4, 1e-5])
  cos = WarmupSchedule(1.0, "cosine", total_steps=100)
  assert float(cos(0)) == pytest.approx(1.0)
  assert float(cos(50)) == pytest.approx(0.5)
  assert float(cos(100)) == pytest.approx(0.0, abs=1e-7)
  warm = WarmupSchedule(1.0, "constant", warmup_steps=4)
  assert float(warm(0)) == pytest.approx(0.25)
  assert float(warm(10)) == pytest.approx(1.0)


def test_train_config_rejects_unknown_values():
  with pytest.raises(ValueError, match="strategy must be one of"):
    RuntimeConfig(strategy="horovod")
  with pytest.raises(ValueError, match="optimizer must be one of"):
    TrainConfig(optimizer="sgd")


def test_evaluate_at_locations_in_one_pass(tiny_tnet, rng):
  images = rng.integers(0, 256, (10, 128, 128, 3)).astype(np.uint8)
  labels = rng.integers(0, 5, 10).astype(np.int32)
  ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
  rows = evaluate_at_locations(tiny_tnet, ds, [(), (1,), (2, 1)])
  assert [r["locations"] for r in rows] == [[], [1], [2, 1]]
  assert [r["total_locations"] for r in rows] == [0, 1, 4]
  for row, locs in zip(rows, [(), (1,), (2, 1)]):
    logits = tiny_tnet(images, training=False, locations=locs)["logits"]
    top1 = np.mean(np.argmax(logits, -1) == labels)
    ce = np.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels,
                                                                logits))
    assert row["examples"] == 10
    assert row["top1"] == pytest.approx(top1)
    assert row["loss"] == pytest.approx(ce, rel=1e-5)


def test_pretrained_backbone_restored_while_modules_start_fresh(tmp_path):
  source = backbones.tiny_cnn_model((32, 32, 3))
  path = str(tmp_path / "tiny.h5")
  source.save_weights(path)
  model = TNet(tiny_config(backbone_kwargs={"weights": path}))
  for a, b in zip(source.get_weights(),
                  model.feature_extraction.model.get_weights()):
    np.testing.assert_array_equal(a, b)


