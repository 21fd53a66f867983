"""Adaptive attention: each image stops once its running prediction is
confident, and what it read is what fixed k would have read."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import tiny_config
from fakes import runs as fake_runs
from tnet_tf import export
from tnet_tf import predict
from tnet_tf.model import TNet

K = 5


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(4)  # Keras' initialisers too
  net = TNet(tiny_config(levels=2, locations=(K,), grid_size=4,
                         cell_fraction=0.4))
  # sharper logits than at initialisation: confidences that differ from
  # image to image and from step to step
  kernel = net.classification_module.trainable_weights[0]
  kernel.assign(kernel * 40.0)
  return net


@pytest.fixture(scope="module")
def images():
  # noise, blobs and stripes at different contrasts: images the random
  # model is more and less sure of, at different steps
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:96, :80]
  out = []
  for i in range(12):
    noise = rng.uniform(0, 255, [96, 80, 3])
    stripes = 127.5 + 127.5 * np.sin(xx / (2 + i) + yy / (3 + i % 4))
    blob = 255.0 * (np.hypot(yy - rng.uniform(0, 96), xx - rng.uniform(
        0, 80)) < rng.uniform(5, 40))
    mix = rng.dirichlet([1, 1, 1])
    image = (mix[0] * noise + mix[1] * stripes[..., None] +
             mix[2] * blob[..., None]) * rng.uniform(0.2, 1.0)
    out.append(np.clip(image, 0, 255).astype(np.uint8))
  return np.stack(out)


def _confidence(net, images):
  """[B, K + 1]: the top probability of the fixed-k model at k = 0 … K."""
  return np.stack([tf.nn.softmax(net(images, locations=[k])["logits"])
                   .numpy().max(-1) for k in range(K + 1)], axis=1)


def test_threshold_zero_attends_nothing_past_level_one(model, images):
  out = model.call_adaptive(images, 0.0)
  assert (out["num_locations"].numpy() == 0).all()
  np.testing.assert_allclose(out["logits"], model(images, locations=[0])[
      "logits"], atol=1e-5)
  assert (out["attended"].numpy()[:, 1:] == 0).all()


def test_a_threshold_above_one_is_the_fixed_k_model(model, images):
  out = model.call_adaptive(images, 1.01)
  ref = model(images, locations=[K])
  assert (out["num_locations"].numpy() == K).all()
  np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-4)
  np.testing.assert_allclose(out["boxes"], ref["boxes"], atol=1e-4)
  assert out["levels"].numpy().tolist() == [1] + [2] * K


def _stops(conf, threshold):
  """Where each image's first confident step is (K: none is)."""
  hit = conf >= threshold
  return np.where(hit.any(1), hit.argmax(1), K)


def _mixed_threshold(conf):
  """A threshold halfway between two of the confidences (no near-ties)
  with the most different stops."""
  values = np.unique(conf)
  candidates = [t for t in (values[1:] + values[:-1]) / 2
                if np.abs(conf - t).min() > 1e-4]
  return float(max(candidates, key=lambda t: (
      len(set(_stops(conf, t).tolist())), -abs(t - np.median(conf)))))


def test_each_image_stops_at_its_first_confident_step(model, images):
  conf = _confidence(model, images)
  threshold = _mixed_threshold(conf)
  out = model.call_adaptive(images, threshold)
  counts = out["num_locations"].numpy()
  np.testing.assert_array_equal(counts, _stops(conf, threshold))
  assert len(set(counts.tolist())) >= 2  # images stop at different steps
  for i, n in enumerate(counts):
    # the running prediction after n cells is the fixed-k model's at n
    np.testing.assert_allclose(out["logits"][i], model(
        images[i:i + 1], locations=[int(n)])["logits"][0], atol=1e-4)
    assert (conf[i, :n] < threshold).all()
    assert n == K or conf[i, n] >= threshold
    assert out["attended"].numpy()[i].tolist() == [1] * (n + 1) + [0] * (
        K - n)
  # two cells a step: the rule applies after 0, 2, 4 and K cells
  paired = model.call_adaptive(images, threshold, group=2)
  expected = np.minimum(2 * np.ceil(_stops(conf[:, ::2], threshold) *
                                    1.0).astype(int), K)
  expected = np.where(_stops(conf[:, ::2], threshold) >= conf[:, ::2].shape[
      1], K, expected)
  np.testing.assert_array_equal(paired["num_locations"], expected)
  for i, n in enumerate(paired["num_locations"].numpy()):
    np.testing.assert_allclose(paired["logits"][i], model(
        images[i:i + 1], locations=[int(n)])["logits"][0], atol=1e-4)
  # the margin rule
  margin = model.call_adaptive(images, threshold / 2, rule="margin")
  assert margin["num_locations"].shape == counts.shape
  with pytest.raises(ValueError, match="rule must be one of"):
    model.call_adaptive(images, 0.5, rule="entropy")


def test_the_graph_and_the_saved_model_give_the_keras_outputs(model, images,
                                                              tmp_path):
  threshold = _mixed_threshold(_confidence(model, images))
  eager = model.call_adaptive(images, threshold)
  graph = tf.function(lambda x, t, k: model.call_adaptive(x, t, k))(
      tf.constant(images), tf.constant(threshold), tf.constant(K))
  path = str(tmp_path / "saved")
  export.export_saved_model(model, path, [f"c{i}" for i in range(5)])
  served = tf.saved_model.load(path).signatures["serve_adaptive"](
      images=tf.constant(images), threshold=tf.constant(threshold),
      max_locations=tf.constant(K))
  for out in (graph, served):
    np.testing.assert_array_equal(out["num_locations"],
                                  eager["num_locations"])
    np.testing.assert_array_equal(out["attended"], eager["attended"])
    np.testing.assert_allclose(out["logits"], eager["logits"], atol=1e-4)
  with pytest.raises(tf.errors.InvalidArgumentError, match="<= 16"):
    tf.saved_model.load(path).signatures["serve_adaptive"](
        images=tf.constant(images), threshold=tf.constant(0.5),
        max_locations=tf.constant(17))


def test_models_adaptive_attention_cannot_serve_are_named():
  with pytest.raises(ValueError, match="two-level TNet"):
    TNet(tiny_config()).call_adaptive(np.zeros([1, 64, 64, 3], np.uint8),
                                      0.5)
  with pytest.raises(ValueError, match="feature weighting"):
    TNet(tiny_config(levels=2, locations=(2,), feature_weighting=True)
         ).call_adaptive(np.zeros([1, 64, 64, 3], np.uint8), 0.5)


def test_predict_reports_the_locations_each_image_read(tmp_path):
  run_dir = str(tmp_path / "run")
  _, saved = fake_runs.make_run(run_dir, levels=2, locations=(4,))
  rng = np.random.default_rng(1)
  from PIL import Image
  paths = []
  for i in range(3):
    paths.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(rng.integers(0, 256, [64, 64, 3], np.uint8)).save(
        paths[-1])
  for model in (predict.load_model(run_dir), predict.load_model(saved)):
    for threshold, expected in ((0.0, 0), (1.01, 4)):
      summary = predict.run(model, paths, [4], str(tmp_path / "out"),
                            progress=None, threshold=threshold)
      with open(summary["jsonl"]) as f:
        rows = [json.loads(line) for line in f]
      assert [r["num_locations"] for r in rows] == [expected] * 3
      assert all(len(r["boxes"]) == expected + 1 for r in rows)
