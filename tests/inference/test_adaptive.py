"""Adaptive attention: each image stops once its running prediction is
confident, and what it read is what fixed k would have read."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import tiny_config
from fakes import runs as fake_runs
from tnet_tf.inference import adaptive
from tnet_tf.training import runs
from tnet_tf.inference import attention
from tnet_tf.inference import export
from tnet_tf.inference import predict
from tnet_tf.model import adaptive as adaptive_model
from tnet_tf.model.adaptive import call_adaptive
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.model.tnet import TNet

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
  out = call_adaptive(model, images, 0.0)
  assert (out["num_locations"].numpy() == 0).all()
  np.testing.assert_allclose(out["logits"], model(images, locations=[0])[
      "logits"], atol=1e-5)
  assert (out["attended"].numpy()[:, 1:] == 0).all()


def test_a_threshold_above_one_is_the_fixed_k_model(model, images):
  out = call_adaptive(model, images, 1.01)
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
  out = call_adaptive(model, images, threshold)
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
  paired = call_adaptive(model, images, threshold, group=2)
  expected = np.minimum(2 * np.ceil(_stops(conf[:, ::2], threshold) *
                                    1.0).astype(int), K)
  expected = np.where(_stops(conf[:, ::2], threshold) >= conf[:, ::2].shape[
      1], K, expected)
  np.testing.assert_array_equal(paired["num_locations"], expected)
  for i, n in enumerate(paired["num_locations"].numpy()):
    np.testing.assert_allclose(paired["logits"][i], model(
        images[i:i + 1], locations=[int(n)])["logits"][0], atol=1e-4)
  # the margin rule
  margin = call_adaptive(model, images, threshold / 2, rule="margin")
  assert margin["num_locations"].shape == counts.shape
  with pytest.raises(ValueError, match="rule must be one of"):
    call_adaptive(model, images, 0.5, rule="entropy")


def test_the_graph_and_the_saved_model_give_the_keras_outputs(model, images,
                                                              tmp_path):
  threshold = _mixed_threshold(_confidence(model, images))
  eager = call_adaptive(model, images, threshold)
  graph = tf.function(lambda x, t, k: call_adaptive(model, x, t, k))(
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
    call_adaptive(TNet(tiny_config()), np.zeros([1, 64, 64, 3], np.uint8),
                  0.5)
  with pytest.raises(ValueError, match="feature weighting"):
    call_adaptive(TNet(tiny_config(levels=2, locations=(2,),
                                   feature_weighting=True)),
                  np.zeros([1, 64, 64, 3], np.uint8), 0.5)


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
  for i, model in enumerate((predict.load_model(run_dir),
                             predict.load_model(saved))):
    for threshold, expected in ((0.0, 0), (1.01, 4)):
      summary = predict.run(model, paths, [4],
                            str(tmp_path / f"out{i}_{threshold}"),
                            progress=None, threshold=threshold)
      with open(summary["jsonl"]) as f:
        rows = [json.loads(line) for line in f]
      assert [r["num_locations"] for r in rows] == [expected] * 3
      assert all(len(r["boxes"]) == expected + 1 for r in rows)


# ------------------------------------------------------------ learned halting
def _halting():
  """A halting module whose score grows with the top probability and with
  the cells read: images stop at different steps."""
  module = halting_lib.HaltingModule(hidden=2)
  kernel = np.zeros([len(halting_lib.FEATURES), 2], np.float32)
  kernel[halting_lib.FEATURES.index("top1"), 0] = 1.0
  kernel[halting_lib.FEATURES.index("read"), 1] = 1.0
  module.hidden.set_weights([kernel, np.zeros([2], np.float32)])
  module.out.set_weights([np.full([2, 1], 6.0, np.float32),
                          np.full([1], -6.0, np.float32)])
  return module


def _random_halting(seed):
  keras.utils.set_random_seed(seed)
  return halting_lib.HaltingModule(hidden=8)


def _learned_stops(model, images, module, threshold, group=1, first=None):
  """Where the learned rule stops each image, from
  ``adaptive_model.running`` (the traversal read whole) and ``halting.trace``: the first decision point
  whose score reaches the threshold (K if none)."""
  out = adaptive_model.running(model, images, K)
  x, points = halting_lib.trace(out["logits"], out["cell_logits"],
                                out["cell_probs"], group, first)
  score = tf.sigmoid(module(tf.reshape(x, [-1, x.shape[-1]]))).numpy()
  hit = score.reshape(x.shape[:2]) >= threshold
  return np.where(hit.any(1), points[hit.argmax(1)], K), out["logits"]


def test_running_logits_are_the_fixed_k_models(model, images):
  out = adaptive_model.running(model, images, K)
  assert out["logits"].shape == (len(images), K + 1, 5)
  for k in range(K + 1):
    np.testing.assert_allclose(out["logits"][:, k], model(
        images, locations=[k])["logits"], atol=1e-4)
  # each cell's own logits average to the running ones
  np.testing.assert_allclose(
      (out["logits"][:, 0] + tf.reduce_sum(out["cell_logits"], 1)) / (K + 1),
      out["logits"][:, K], atol=1e-4)


def test_halting_features_by_hand():
  probs = tf.constant([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]])
  previous = tf.constant([[0.5, 0.4, 0.1], [0.6, 0.3, 0.1]])
  votes = tf.constant([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
  x, run = halting_lib.features(probs, previous, tf.constant([1.0, 2.0]),
                                votes, tf.constant([3, 3]),
                                tf.constant([0.2, 0.1]),
                                tf.constant([0.5, 0.3]), 6)
  got = dict(zip(halting_lib.FEATURES, np.asarray(x).T))
  np.testing.assert_allclose(got["top1"], [0.7, 0.5], atol=1e-6)
  np.testing.assert_allclose(got["margin"], [0.5, 0.1], atol=1e-6)
  np.testing.assert_allclose(got["entropy"], [
      -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
      -(0.4 * np.log(0.4) + 0.5 * np.log(0.5) + 0.1 * np.log(0.1))],
      atol=1e-5)
  np.testing.assert_allclose(got["change"], [
      0.7 * np.log(0.7 / 0.5) + 0.2 * np.log(0.2 / 0.4),
      0.4 * np.log(0.4 / 0.6) + 0.5 * np.log(0.5 / 0.3)], atol=1e-5)
  np.testing.assert_allclose(got["previous_of_top"], [0.5, 0.3], atol=1e-6)
  # the top class held for the first image (run 1 → 2), not the second
  np.testing.assert_array_equal(got["same"], [1, 0])
  np.testing.assert_allclose(run, [2, 0])
  np.testing.assert_allclose(got["run"], [2 / 6, 0])
  np.testing.assert_allclose(got["votes_top"], [2 / 6, 1 / 6])
  np.testing.assert_allclose(got["votes_second"], [1 / 6, 1 / 6])
  np.testing.assert_allclose(got["votes_for_top"], [2 / 6, 1 / 6])
  np.testing.assert_allclose(got["read"], [0.5, 0.5])
  np.testing.assert_allclose(got["next"], [0.2, 0.1], atol=1e-6)
  np.testing.assert_allclose(got["remaining"], [0.5, 0.3], atol=1e-6)


@pytest.mark.parametrize("group,first", [(1, None), (2, None), (1, 3)])
def test_the_learned_rule_stops_where_the_halting_score_says(model, images,
                                                             group, first):
  module = _halting()
  out = adaptive_model.running(model, images, K)
  x, points = halting_lib.trace(out["logits"], out["cell_logits"],
                                out["cell_probs"], group, first)
  assert points.tolist() == {(1, None): [0, 1, 2, 3, 4], (2, None): [0, 2, 4],
                             (1, 3): [0, 3, 4]}[(group, first)]
  score = tf.sigmoid(module(tf.reshape(x, [-1, x.shape[-1]]))).numpy()
  threshold = _mixed_threshold(score.reshape(x.shape[:2]))
  expected, running = _learned_stops(model, images, module, threshold, group,
                                     first)
  assert len(set(expected.tolist())) >= 2
  got = call_adaptive(model, images, threshold, rule="learned", group=group,
                            halting=module, first=first)
  np.testing.assert_array_equal(got["num_locations"], expected)
  np.testing.assert_allclose(
      got["logits"], np.asarray(running)[np.arange(len(images)), expected],
      atol=1e-4)
  graph = tf.function(lambda x, t: call_adaptive(
      model, x, t, rule="learned", group=group, halting=module, first=first))(
          tf.constant(images), tf.constant(threshold))
  np.testing.assert_array_equal(graph["num_locations"], expected)
  # 0 stops after level 1; above 1 reads every cell
  assert (call_adaptive(model, images, 0.0, rule="learned", halting=module)[
      "num_locations"].numpy() == 0).all()
  assert (call_adaptive(model, images, 1.01, rule="learned", halting=module)[
      "num_locations"].numpy() == K).all()
  with pytest.raises(ValueError, match="fitted halting module"):
    call_adaptive(model, images, 0.5, rule="learned")


def test_fitting_learns_when_the_running_prediction_is_final():
  # agreement decided by two of the statistics: a fit that does not learn
  # stays near the base rate (60%)
  rng = np.random.default_rng(0)
  x = rng.normal(size=[400, 6, len(halting_lib.FEATURES)]).astype(np.float32)
  agree = (x[..., 0] + 0.5 * x[..., 3] > -0.3)
  module, fit = adaptive.fit_halting({"x": x, "agree": agree}, None, 6,
                                     steps=1500, say=lambda *_: None)
  assert fit["accuracy"] > 0.95
  assert abs(fit["agree_fraction"] - agree.mean()) < 1e-6
  score = tf.sigmoid(module(x.reshape(-1, x.shape[-1]))).numpy()
  assert ((score >= 0.5) == agree.reshape(-1)).mean() > 0.95
  with pytest.raises(ValueError, match="too few"):
    adaptive.fit_halting({"x": x[:2, :2], "agree": agree[:2, :2]}, None, 6)


def test_a_saved_halting_module_loads_for_its_checkpoint_only(tmp_path):
  module = _random_halting(1)
  x = np.random.default_rng(2).normal(size=[7, len(halting_lib.FEATURES)])
  runs.save_halting(module, str(tmp_path), "/r/checkpoints/ckpt-5",
                        {"split": "validation"}, "ab" * 32)
  loaded = runs.load_halting(str(tmp_path), "/r/checkpoints/ckpt-5",
                                 "ab" * 32)
  np.testing.assert_allclose(loaded(x), module(x), atol=1e-6)
  with pytest.raises(ValueError, match="ckpt-5.*ckpt-6"):
    runs.load_halting(str(tmp_path), "/r/checkpoints/ckpt-6")
  # the same checkpoint name, other weights (a run trained again)
  with pytest.raises(ValueError, match="trained again"):
    runs.load_halting(str(tmp_path), "/r/checkpoints/ckpt-5", "cd" * 32)
  assert runs.load_halting(str(tmp_path / "none"), "ckpt-5") is None


def test_the_saved_model_stops_by_its_halting_module(model, images,
                                                     tmp_path):
  module = _halting()
  out = adaptive_model.running(model, images, K)
  x, _ = halting_lib.trace(out["logits"], out["cell_logits"],
                           out["cell_probs"])
  threshold = _mixed_threshold(tf.sigmoid(module(tf.reshape(
      x, [-1, x.shape[-1]]))).numpy().reshape(x.shape[:2]))
  eager = call_adaptive(model, images, threshold, rule="learned",
                              halting=module)
  path = str(tmp_path / "saved")
  export.export_saved_model(model, path, [f"c{i}" for i in range(5)],
                            halting=module)
  loaded = tf.saved_model.load(path)
  served = loaded.signatures["serve_adaptive"](
      images=tf.constant(images), threshold=tf.constant(threshold),
      max_locations=tf.constant(K))
  np.testing.assert_array_equal(served["num_locations"],
                                eager["num_locations"])
  np.testing.assert_allclose(served["logits"], eager["logits"], atol=1e-4)
  assert loaded.signatures["metadata"]()["adaptive_rule"].numpy() == (
      b"learned")


def test_the_attention_record_holds_what_each_image_read(model, images):
  conf = _confidence(model, images)
  threshold = _mixed_threshold(conf)
  labels = np.zeros([len(images)], np.int64)
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
  rows = attention.collect(model, dataset, [K], threshold=threshold)
  expected = _stops(conf, threshold)
  assert [r["num_locations"] for r in rows] == expected.tolist()
  fixed = model(images, locations=[K])["boxes"].numpy()
  for row, n, boxes in zip(rows, expected, fixed):
    assert len(row["attended"]) == n + 1
    np.testing.assert_allclose([a["box"] for a in row["attended"]],
                               boxes[:n + 1], atol=1e-3)
    assert all(abs(a["feature_weight"] - 1 / (n + 1)) < 1e-6
               for a in row["attended"])
  summary = attention.summary(rows)
  assert abs(summary["mean_locations"] - expected.mean()) < 1e-9
