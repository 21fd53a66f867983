import itertools

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.config import ModelConfig, PolicyConfig, preset
from tnet_tf.model import tnet as model_lib
from tnet_tf.model.layers import grid
from tnet_tf.model.inputs import features_per_level
from tnet_tf.model.tnet import TNet, gumbel_top_k


def _images(rng, shape=(2, 128, 128, 3)):
  return rng.integers(0, 256, shape).astype(np.uint8)


# ------------------------------------------------------------------ selection
def test_plackett_luce_log_probs_by_enumeration():
  """n² = 4, k = 2: the probabilities of the 12 ordered draws sum to 1 and
  match the frequencies of Gumbel-top-k draws; the sum of marginal
  log-probabilities (what was used before) does not."""
  p = np.array([0.5, 0.3, 0.15, 0.05])
  log_p = tf.math.log(tf.constant(p[None], tf.float32))
  pairs = list(itertools.permutations(range(4), 2))
  idx = tf.constant(pairs, tf.int32)
  terms = model_lib.plackett_luce_log_probs(tf.tile(log_p, [12, 1]), idx)
  prob = np.exp(terms.numpy().sum(-1))
  np.testing.assert_allclose(prob, [p[i] * p[j] / (1 - p[i])
                                    for i, j in pairs], rtol=1e-5)
  assert prob.sum() == pytest.approx(1.0, abs=1e-5)
  marginal = np.array([p[i] * p[j] for i, j in pairs])
  assert marginal.sum() < 0.7  # not a distribution over ordered draws
  draws = 60000
  tf.random.set_seed(2)
  got = gumbel_top_k(tf.tile(log_p, [draws, 1]), 2).numpy()
  freq = np.array([np.mean((got[:, 0] == i) & (got[:, 1] == j))
                   for i, j in pairs])
  np.testing.assert_allclose(freq, prob, atol=0.01)


def test_sampled_training_records_plackett_luce_log_probs(rng):
  model = TNet(tiny_config(levels=2, locations=(3,),
                           policy=PolicyConfig(selection="sampling")))
  out = model(_images(rng), training=True)
  probs = out["location_probs"][0].numpy()[:, 0]  # [B, 9]
  idx = out["location_indices"][0].numpy()[:, 0]  # [B, 3], draw order
  for b in range(2):
    taken, want = 0.0, []
    for i in idx[b]:
      want.append(np.log(probs[b, i]) - np.log(1 - taken))
      taken += probs[b, i]
    np.testing.assert_allclose(out["location_log_probs"][b], want,
                               rtol=1e-4)
  # greedy (the default) and inference keep each cell's own log p
  greedy = TNet(tiny_config(levels=2, locations=(3,)))
  out = greedy(_images(rng), training=True)
  chosen = np.take_along_axis(out["location_probs"][0].numpy()[:, 0],
                              out["location_indices"][0].numpy()[:, 0], 1)
  np.testing.assert_allclose(out["location_log_probs"], np.log(chosen),
                             rtol=1e-4)


def test_gumbel_top_k_matches_plackett_luce():
  """Ordered pairs drawn by Gumbel-top-2 follow p_i · p_j / (1 − p_i)."""
  p = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
  draws = 40000
  tf.random.set_seed(1)
  idx = gumbel_top_k(tf.math.log(tf.constant(np.tile(p, [draws, 1]),
                                             tf.float32)), 2).numpy()
  assert np.all(idx[:, 0] != idx[:, 1])  # without replacement
  observed = np.zeros((5, 5))
  np.add.at(observed, (idx[:, 0], idx[:, 1]), 1)
  pairs = [(i, j) for i, j in itertools.permutations(range(5), 2)]
  expected = np.array([p[i] * p[j] / (1 - p[i]) for i, j in pairs]) * draws
  obs = np.array([observed[i, j] for i, j in pairs])
  chi2 = np.sum((obs - expected) ** 2 / expected)
  # 19 degrees of freedom: the 99.9% quantile is 43.8
  assert chi2 < 43.8, chi2
  # and a wrong law is rejected: sampling *with* replacement, p_i · p_j
  wrong = np.array([p[i] * p[j] for i, j in pairs])
  wrong = wrong / wrong.sum() * draws
  assert np.sum((obs - wrong) ** 2 / wrong) > 100


def test_training_samples_distinct_cells_and_inference_is_top_k(rng):
  model = TNet(tiny_config(locations=(4, 2)))
  images = _images(rng, (3, 128, 128, 3))
  out = model(images, training=True)
  for idx in out["location_indices"]:
    idx = idx.numpy().reshape(-1, idx.shape[-1])
    assert all(len(set(row)) == len(row) for row in idx)
  out = model(images, training=False)
  for probs, idx in zip(out["location_probs"], out["location_indices"]):
    order = np.argsort(-probs.numpy(), axis=-1, kind="stable")
    top = order[..., :idx.shape[-1]]
    np.testing.assert_array_equal(np.sort(idx.numpy(), -1), np.sort(top, -1))


def test_greedy_selection_in_training(rng):
  model = TNet(tiny_config(policy=PolicyConfig(selection="greedy")))
  images = _images(rng)
  for _ in range(3):  # training-mode probabilities (batch-norm statistics)
    out = model(images, training=True)
    probs = out["location_probs"][0].numpy()
    top = np.argsort(-probs, axis=-1, kind="stable")[..., :2]
    np.testing.assert_array_equal(out["location_indices"][0].numpy(), top)


def test_overlap_suppression_attends_cells_that_do_not_overlap(rng):
  """With suppression each attended cell is the most probable one clear of
  the cells taken before it (the most probable not taken once none is
  clear: 3×3 half-side cells overlap their neighbours); the log p are the
  chosen cells'; without it, plain top-k (test above)."""
  model = TNet(tiny_config(
      locations=(4, 1), policy=PolicyConfig(overlap_suppression=True)))
  images = _images(rng, (3, 128, 128, 3))
  over = grid.overlapping_cells(3, 0.5)
  for training in (False, True):
    out = model(images, training=training)
    idx = out["location_indices"][0].numpy().reshape(-1, 4)
    probs = out["location_probs"][0].numpy().reshape(-1, 9)
    for row, p in zip(idx, probs):
      taken = []
      for cell in row:
        clear = [c for c in range(9)
                 if c not in taken and not any(over[c, t] for t in taken)]
        pool = clear or [c for c in range(9) if c not in taken]
        assert cell == max(pool, key=lambda c: p[c])
        taken.append(cell)
    logp = out["location_log_probs"].numpy()[:, :4].reshape(-1)
    np.testing.assert_allclose(
        logp, np.log(np.take_along_axis(probs, idx, -1)).reshape(-1),
        rtol=1e-5, atol=1e-6)


def test_location_log_probs_are_the_chosen_cells(tiny_tnet, rng):
  out = tiny_tnet(_images(rng), training=False)
  logp = out["location_log_probs"].numpy()
  # level 2: 2 cells of the root grid; level 3: 1 cell of each level-2 grid
  p2, i2 = out["location_probs"][0].numpy(), out["location_indices"][0].numpy()
  p3, i3 = out["location_probs"][1].numpy(), out["location_indices"][1].numpy()
  for b in range(2):
    expected = [np.log(p2[b, 0, i2[b, 0, 0]]), np.log(p2[b, 0, i2[b, 0, 1]]),
                np.log(p3[b, 0, i3[b, 0, 0]]), np.log(p3[b, 1, i3[b, 1, 0]])]
    np.testing.assert_allclose(logp[b], expected, rtol=1e-5)
  np.testing.assert_allclose(p2.sum(-1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------ geometry
def test_record_boxes_nest_and_tile(tiny_tnet, rng):
  """Level-2 boxes are cells of the image; level-3 boxes lie in their parent."""
  h, w = 128, 192  # non-square
  out = tiny_tnet(_images(rng, (2, h, w, 3)), training=False)
  boxes = out["boxes"].numpy()
  np.testing.assert_array_equal(out["levels"].numpy(), [1, 2, 2, 3, 3])
  cells = grid.cell_boxes(3, 0.5) * [h, w, h, w]
  idx2 = out["location_indices"][0].numpy()
  idx3 = out["location_indices"][1].numpy()
  for b in range(2):
    np.testing.assert_allclose(boxes[b, 0], [0, 0, h, w])
    np.testing.assert_allclose(boxes[b, 1:3], cells[idx2[b, 0]], atol=1e-3)
    for child, parent in ((3, 1), (4, 2)):
      py0, px0, py1, px1 = boxes[b, parent]
      cy0, cx0, cy1, cx1 = boxes[b, child]
      assert py0 - 1e-3 <= cy0 < cy1 <= py1 + 1e-3
      assert px0 - 1e-3 <= cx0 < cx1 <= px1 + 1e-3
      # half the parent's height and width
      np.testing.assert_allclose([cy1 - cy0, cx1 - cx0],
                                 [(py1 - py0) / 2, (px1 - px0) / 2], rtol=1e-5)
    # positions: children of (0,0,0) at cell (i, j) -> (i, j, 1)
    pos = out["positions"].numpy()[b]
    np.testing.assert_allclose(pos[0], [0, 0, 0])
    for slot, cell in zip((1, 2), idx2[b, 0]):
      np.testing.assert_allclose(pos[slot], [cell // 3, cell % 3, 1])
    for slot, parent_slot in ((3, 1), (4, 2)):
      cell = idx3[b, parent_slot - 1, 0]
      py, px, _ = pos[parent_slot]
      np.testing.assert_allclose(pos[slot],
                                 [py * 3 + cell // 3, px * 3 + cell % 3, 2])


def _resized(images, size, resampling):
  """Level 1 as each resampling reads it (64 → 32 px)."""
  x = images.astype(np.float32)
  if resampling == "align_corners":
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)
  if resampling == "authors":  # half-pixel centres: a 2×2 mean at 2×
    return tf.image.resize(x, size, "bilinear", antialias=False)
  return tf.image.resize(x, size, "area")  # a box filter


@pytest.mark.parametrize("resampling", ["align_corners", "authors",
                                        "antialias"])
def test_backbone_sees_exact_slices_of_the_full_resolution_input(rng,
                                                                 resampling):
  """With pixel-aligned cells of r px, each crop is the slice of the input;
  level 1 is the image resized as the resampling says."""
  model = TNet(tiny_config(levels=2, locations=(3,), resampling=resampling))
  seen = []
  original = model.feature_extraction.call
  def spy(images, training=None):
    seen.append(images.numpy())
    return original(images, training=training)
  model.feature_extraction.call = spy
  images = _images(rng, (2, 64, 64, 3))  # cells: 32 px at offsets 0, 16, 32
  out = model(images, training=False)
  assert [s.shape for s in seen] == [(2, 32, 32, 3), (6, 32, 32, 3)]
  boxes = out["boxes"].numpy().round().astype(int)
  for b in range(2):
    for slot in range(3):
      y0, x0, y1, x1 = boxes[b, 1 + slot]
      np.testing.assert_allclose(seen[1][b * 3 + slot],
                                 images[b, y0:y1, x0:x1], atol=1e-3)
  np.testing.assert_allclose(seen[0], _resized(images, [32, 32],
                                               resampling), atol=1e-3)


# ------------------------------------------------------------- invariances
def test_zero_locations_equals_level_one_only(tiny_tnet, rng):
  images = _images(rng)
  out = tiny_tnet(images, training=False, locations=[])
  assert out["feature_logits"].shape[1] == 1
  np.testing.assert_allclose(
      tiny_tnet(images, training=False, locations=[0])["logits"],
      out["logits"], atol=1e-6)
  # by hand: whole image at r -> backbone -> position (0,0,0) -> classifier
  crops = _resized(images, [32, 32], tiny_tnet.config.resampling)
  _, v = tiny_tnet.feature_extraction(crops, training=False)
  feat = tiny_tnet.positional_module([v, tf.zeros([2, 3])])
  logits = tiny_tnet.classification_module(feat, training=False)
  np.testing.assert_allclose(out["logits"], logits, atol=1e-4)


def test_batch_invariance_at_inference(tiny_tnet, rng):
  images = _images(rng, (4, 96, 128, 3))
  full = tiny_tnet(images, training=False)
  for i in range(4):
    single = tiny_tnet(images[i:i + 1], training=False)
    np.testing.assert_allclose(single["logits"][0], full["logits"][i],
                               atol=1e-5)
    np.testing.assert_allclose(single["boxes"][0], full["boxes"][i],
                               atol=1e-4)
  reversed_out = tiny_tnet(images[::-1], training=False)
  np.testing.assert_allclose(reversed_out["logits"][::-1], full["logits"],
                             atol=1e-5)


def test_grey_and_dtype_handling(tiny_tnet, rng):
  grey = _images(rng, (2, 128, 128, 1))
  rgb = np.repeat(grey, 3, axis=-1)
  a = tiny_tnet(grey, training=False)["logits"]
  b = tiny_tnet(rgb, training=False)["logits"]
  c = tiny_tnet(rgb.astype(np.float32), training=False)["logits"]
  np.testing.assert_allclose(a, b, atol=1e-5)
  np.testing.assert_allclose(b, c, atol=1e-5)


def test_locations_are_a_call_time_argument(tiny_tnet, rng):
  images = _images(rng)
  for locs, n in (([], 1), ([1], 2), ([3], 4), ([2, 1], 5), ([2, 2], 7),
                  ([9, 1], 19)):
    out = tiny_tnet(images, training=False, locations=locs)
    assert out["feature_logits"].shape[1] == n == sum(features_per_level(locs))
    assert out["location_log_probs"].shape == (2, n - 1)


def test_works_under_tf_function_with_dynamic_shapes(tiny_tnet, rng):
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3],
                                              tf.uint8)])
  def serve(images):
    return tiny_tnet(images, training=False, locations=[2, 1])["logits"]
  for shape in ((1, 128, 128, 3), (3, 200, 150, 3)):
    images = _images(rng, shape)
    np.testing.assert_allclose(serve(images),
                               tiny_tnet(images, training=False)["logits"],
                               atol=1e-5)


def test_feature_weighting_weights_sum_to_one(rng):
  model = TNet(tiny_config(feature_weighting=True))
  out = model(_images(rng), training=False)
  weights = out["feature_weights"].numpy()
  assert weights.shape == (2, 5)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  emb = np.einsum("bn,bnd->bd", weights, np.zeros((2, 5, 1)))
  assert emb.shape == (2, 1)


def test_uniform_weights_without_feature_weighting(tiny_tnet, rng):
  out = tiny_tnet(_images(rng), training=False)
  np.testing.assert_allclose(out["feature_weights"], 0.2)


# ----------------------------------------------------------------- gradients
def test_location_module_has_no_gradient_path_into_backbone(rng):
  model = TNet(tiny_config())
  images = _images(rng)
  with tf.GradientTape(persistent=True) as tape:
    out = model(images, training=True)
    loc_objective = tf.reduce_sum(out["location_log_probs"])
    cls_objective = tf.reduce_sum(out["logits"])
  backbone_vars = model.feature_extraction.trainable_variables
  location_vars = model.location_module.trainable_variables
  assert backbone_vars and location_vars
  assert all(g is None for g in tape.gradient(loc_objective, backbone_vars))
  loc_grads = tape.gradient(loc_objective, location_vars)
  assert any(g is not None and np.any(g.numpy() != 0) for g in loc_grads)
  # the classifier path does reach the backbone, never the location module
  assert any(g is not None
             for g in tape.gradient(cls_objective, backbone_vars))
  assert all(g is None for g in tape.gradient(cls_objective, location_vars))


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize("shape,match", [
    ((128, 128, 3), "rank 4"),
    ((1, 128, 128, 4), "1 or 3 channels"),
    ((1, 0, 128, 3), "zero height"),
    ((1, 128, 0, 3), "zero width"),
    ((0, 128, 128, 3), "zero batch"),
])
def test_bad_image_shapes(tiny_tnet, shape, match):
  with pytest.raises(ValueError, match=match):
    tiny_tnet(np.zeros(shape, np.uint8), training=False)


def test_bad_dtype(tiny_tnet):
  with pytest.raises(TypeError, match="dtype"):
    tiny_tnet(np.zeros((1, 64, 64, 3), bool), training=False)


def test_empty_image_with_unknown_shape(tiny_tnet):
  fn = tf.function(lambda x: tiny_tnet(x, training=False)["logits"],
                   input_signature=[tf.TensorSpec([None, None, None, 3],
                                                  tf.uint8)])
  with pytest.raises(tf.errors.InvalidArgumentError, match="non-empty"):
    fn(np.zeros((1, 0, 5, 3), np.uint8))


@pytest.mark.parametrize("locations,match", [
    ([10], r"level 2 must be in \[0, 9\], got 10"),
    ([-1], r"must be in \[0, 9\], got -1"),
    ([2, 1, 1], r"at most 2 entries"),
    ([0, 1], "no regions to refine"),
    ("two", "list of ints"),
])
def test_bad_locations(tiny_tnet, locations, match):
  with pytest.raises((ValueError, TypeError), match=match):
    tiny_tnet(np.zeros((1, 64, 64, 3), np.uint8), training=False,
              locations=locations)


def test_non_finite_values_when_checking_is_on(rng):
  model = TNet(tiny_config(check_numerics=True))
  images = rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
  images[0, 3, 3, 1] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    model(images, training=False)


def test_config_errors():
  with pytest.raises(ValueError, match="one count per level"):
    ModelConfig(levels=3, locations=(2,))
  with pytest.raises(ValueError, match="selection"):
    PolicyConfig(selection="random")
  with pytest.raises(ValueError, match="smaller than the base resolution"):
    tiny_config(input_size=(40, 40))
  with pytest.raises(ValueError, match="unknown preset"):
    preset("mnist")


def test_summary_says_when_cells_are_upsampled():
  lines = []
  model = TNet(tiny_config(levels=2, locations=(2,), input_size=(48, 48),
                           allow_upsampling=True))
  model.summary(print_fn=lines.append)
  text = "\n".join(lines)
  assert "level 2: regions 24.0x24.0 px" in text
  assert "UPSAMPLED x1.33" in text


def test_get_config_round_trip(tiny_tnet, rng):
  clone = TNet.from_config(tiny_tnet.get_config())
  assert clone.config == tiny_tnet.config
  clone.set_weights(tiny_tnet.get_weights())
  images = _images(rng)
  np.testing.assert_allclose(clone(images, training=False)["logits"],
                             tiny_tnet(images, training=False)["logits"],
                             atol=1e-6)


def test_locations_as_a_tensor_match_python_ints_in_one_graph(tiny_tnet):
  images = tf.constant(np.random.default_rng(3).integers(
      0, 256, (2, 128, 96, 3)), tf.uint8)
  serve = tf.function(
      lambda x, k: tiny_tnet(x, training=False, locations=k),
      input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8),
                       tf.TensorSpec([2], tf.int32)])
  for locations in ([], [1], [2, 1], [3, 2], [2, 0]):
    expected = tiny_tnet(images, training=False, locations=locations)
    got = serve(images, tf.constant((locations + [0, 0])[:2], tf.int32))
    for key in ("logits", "boxes", "feature_weights", "location_log_probs"):
      np.testing.assert_allclose(got[key], expected[key], atol=1e-5)
    np.testing.assert_array_equal(got["levels"], expected["levels"])
  assert serve.experimental_get_tracing_count() == 1
  with pytest.raises(tf.errors.InvalidArgumentError, match="<= 9"):
    serve(images, tf.constant([10, 1], tf.int32))
  with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0"):
    serve(images, tf.constant([-1, 1], tf.int32))
  with pytest.raises(TypeError, match="integer dtype"):
    tiny_tnet(images, locations=tf.constant([1.0, 1.0]))
  with pytest.raises(ValueError, match=r"shape \[2\]"):
    tiny_tnet(images, locations=tf.constant([1, 1, 1]))


def test_whole_image_sampling_is_crop_and_resize_of_the_unit_box(rng):
  # level 1 resizes instead of cropping: the same pixels, bit for bit
  sampling = model_lib.Sampling()
  for shape, size in (((2, 37, 53, 3), 8), ((1, 256, 256, 1), 32),
                      ((3, 7, 9, 3), 7), ((1, 1, 5, 1), 4)):
    images = tf.constant(rng.integers(0, 256, shape), tf.uint8)
    boxes = grid.crop_boxes(tf.constant([[0.0, 0.0, 1.0, 1.0]] * shape[0]),
                            tf.shape(images)[1:3])
    want = tf.image.crop_and_resize(images, boxes, tf.range(shape[0]),
                                    [size, size])
    got = sampling.whole(images, [size, size])
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got, want)


def test_efficientnet_side_modules_use_the_authors_initialisers():
  """NABirds/models_nab.py: VarianceScaling(2, fan-out, truncated normal)
  for convs, (1/3, fan-out, uniform) for dense layers; BagNet's modules
  keep Glorot-normal (ImageNet/models.py)."""
  model = TNet(preset("fmow", input_size=None))
  conv = model.location_module.fuse.kernel_initializer
  assert (type(conv).__name__, conv.scale, conv.mode, conv.distribution) == (
      "VarianceScaling", 2.0, "fan_out", "truncated_normal")
  for dense in (model.positional_module.dense,
                model.classification_module.linear):
    init = dense.kernel_initializer
    assert (init.scale, init.mode, init.distribution) == (
        1.0 / 3.0, "fan_out", "uniform")
  bagnet = TNet(preset("imagenet", input_size=None))
  assert type(bagnet.location_module.fuse.kernel_initializer).__name__ == (
      "GlorotNormal")
