import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import backbones
from tnet_tf.model.backbones import efficientnet as eff


def test_bagnet77_f_and_v_shapes():
  fe = backbones.build("bagnet77")
  f_map, v = fe(tf.zeros([2, 77, 77, 3]), training=False)
  assert f_map.shape == (2, 5, 5, 1024) and v.shape == (2, 512)
  stage3 = fe.model.get_layer("stage3_block6_out").output
  assert tuple(stage3.shape[1:3]) == (9, 9)
  assert fe.f_indices == [0, 2, 4, 6, 8]
  assert not any(isinstance(l, keras.layers.BatchNormalization)
                 for l in fe.model.layers)


def test_bagnet77_receptive_field_is_bounded():
  """An output cell of stage 4 does not see pixels beyond 77 px away."""
  model = backbones.bagnet77_model((160, 160, 3))
  v_at = keras.Model(model.inputs,
                     model.get_layer("stage4_block3_out").output)
  x = tf.Variable(tf.zeros([1, 160, 160, 3]))
  with tf.GradientTape() as tape:
    y = v_at(x)[0, 0, 0, :]
    total = tf.reduce_sum(y)
  grad = tf.reduce_sum(tf.abs(tape.gradient(total, x)), axis=[0, 3]).numpy()
  rows, cols = np.nonzero(grad)
  assert rows.max() - rows.min() + 1 <= 77
  assert cols.max() - cols.min() + 1 <= 77


def test_bagnet_wrong_grid():
  with pytest.raises(ValueError, match="not 3x3"):
    backbones.build("bagnet77", grid_size=3)


# the authors' taps (CUB/models_cub.py, NABirds/models_nab.py for 5×5,
# fMoW/models_fMoW.py for 3×3)
@pytest.mark.parametrize("variant,grid_size,shape,layer,indices", [
    ("b0", 5, (5, 5, 80), "block4a_project_bn", [2, 4, 6, 8, 10]),
    ("b1", 5, (5, 5, 40), "block3b_add", [5, 9, 13, 17, 21]),
    ("b0", 3, (3, 3, 80), "block4c_add", [2, 6, 10]),
])
def test_efficientnet_f_taps(variant, grid_size, shape, layer, indices):
  fe = backbones.build(f"efficientnet-{variant}", grid_size=grid_size,
                       cell_fraction=0.35 if grid_size == 5 else 0.5)
  images = tf.random.uniform([2, 224, 224, 3], 0, 255)
  f_map, v = fe(images, training=False)
  assert f_map.shape == (2, *shape) and v.shape == (2, 1280)
  assert fe.initializers == "efficientnet"
  assert fe.f_indices == indices
  tap = keras.Model(fe.model.inputs, fe.model.get_layer(layer).output)
  full = tap(images, training=False).numpy()
  np.testing.assert_allclose(f_map, full[:, indices][:, :, indices],
                             atol=1e-5)


def test_taps_of_every_variant():
  assert {v: eff.tap(v, 5) for v in ("b0", "b3", "b5", "b6", "b7")} == {
      "b0": ("block4a_project_bn", [2, 4, 6, 8, 10]),
      "b3": ("block3b_add", [5, 9, 13, 17, 21]),
      "b5": ("block3b_add", [5, 9, 13, 17, 21]),
      "b6": ("block3a_project_bn", [5, 9, 13, 17, 21]),
      "b7": ("block3a_project_bn", [5, 9, 13, 17, 21])}


def test_stochastic_depth_counts_blocks_from_one():
  """Block b (1-based) of N drops with rate·b/N, as the authors' code; Keras
  counts from 0."""
  rates = lambda m: {l.name: l.rate for l in m.layers
                     if l.name.endswith("_drop")}
  ours = rates(eff.efficientnet_model("b0", block_drop_rate=0.5))
  keras_ = rates(eff.efficientnet_model("b0", block_drop_rate=0.5,
                                        block_drop_schedule="keras"))
  # B0 has 16 blocks (1a, 2a, 2b, ...): block2b is the 3rd, the 0.09375 of
  # the authors' first dropped block; block7a (no skip) is the 16th
  assert ours["block2b_drop"] == pytest.approx(0.5 * 3 / 16)
  assert keras_["block2b_drop"] == pytest.approx(0.5 * 2 / 16)
  assert max(ours.values()) == pytest.approx(0.5 * 15 / 16)  # block6d
  assert set(ours) == set(keras_)


def test_unknown_backbone_and_variant():
  with pytest.raises(ValueError, match="unknown backbone"):
    backbones.build("resnet-9000")
  with pytest.raises(ValueError, match="EfficientNet variant"):
    eff.efficientnet_model("b9")


def test_any_functional_model_by_naming_f_layer():
  inp = keras.Input((48, 48, 3))
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c1")(inp)
  x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="c2")(x)
  x = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="c3")(x)
  model = keras.Model(inp, x)
  fe = backbones.from_keras_model(model, "c2", grid_size=3, cell_fraction=0.5)
  f_map, v = fe(tf.zeros([1, 48, 48, 3]))
  assert f_map.shape == (1, 3, 3, 16) and v.shape == (1, 32)
  assert fe.f_indices == [3, 6, 9]  # cell centres 0.25, 0.5, 0.75 of 12
  with pytest.raises(ValueError, match="'c9' is not a layer"):
    backbones.from_keras_model(model, "c9", 3, 0.5)
  with pytest.raises(ValueError, match="fixed square size"):
    inp2 = keras.Input((None, None, 3))
    backbones.from_keras_model(
        keras.Model(inp2, keras.layers.Conv2D(4, 3, name="c")(inp2)), "c",
        3, 0.5)


def test_efficientnet_weights_from_local_h5(tmp_path):
  src = eff.efficientnet_model("b0")
  path = str(tmp_path / "b0_notop.h5")
  src.save_weights(path)
  fe = backbones.build("efficientnet-b0", grid_size=3, cell_fraction=0.5,
                       weights=path)
  images = tf.random.uniform([1, 224, 224, 3], 0, 255)
  np.testing.assert_allclose(fe(images, training=False)[1],
                             src(images, training=False), atol=1e-5)
  with pytest.raises(FileNotFoundError, match="weights file not found"):
    backbones.build("efficientnet-b0", weights=str(tmp_path / "none.h5"))


def _stem_input(model):
  """What the stem convolution of a Keras EfficientNet reads."""
  return keras.Model(model.input, eff.normalization_of(model).output)


def test_a_fresh_efficientnet_stem_reads_the_authors_range():
  """A randomly initialised EfficientNet reads pixels as the authors feed
  theirs: image / 255 (convert_image_dtype), minus 0.5, times 2 — in
  [-1, 1] (fMoW/input_fMoW.py; the same in CUB and NABirds)."""
  images = np.random.default_rng(0).integers(
      0, 256, [2, 32, 32, 3]).astype(np.float32)
  images[0, 0, 0], images[0, 0, 1] = 0.0, 255.0
  for variant in ("b0", "b3"):
    stem = _stem_input(eff.efficientnet_model(variant, (32, 32, 3)))(images)
    np.testing.assert_allclose(stem, (images / 255.0 - 0.5) * 2.0, atol=1e-6)
    assert float(np.min(stem)) == -1.0 and float(np.max(stem)) == 1.0


def test_a_weights_file_keeps_its_own_input_statistics(tmp_path):
  """Keras' ImageNet weights bring their normalisation (here: a file with
  statistics of its own); the authors' range is for fresh models only."""
  src = eff.efficientnet_model("b0", (32, 32, 3))
  norm = eff.normalization_of(src)
  mean, variance, count = norm.get_weights()
  norm.set_weights([np.array([0.485, 0.456, 0.406], np.float32),
                    np.array([0.229, 0.224, 0.225], np.float32) ** 2, count])
  path = str(tmp_path / "b0_notop.h5")
  src.save_weights(path)
  loaded = eff.efficientnet_model("b0", (32, 32, 3), weights=path)
  images = np.full([1, 32, 32, 3], 255.0, np.float32)
  np.testing.assert_allclose(
      _stem_input(loaded)(images)[0, 0, 0],
      (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224,
                                                          0.225]),
      rtol=1e-5)
  del mean, variance


def test_bagnet_weights_mismatch_is_a_clear_error(tmp_path):
  path = str(tmp_path / "tiny.h5")
  backbones.tiny_cnn_model((77, 77, 3)).save_weights(path)
  with pytest.raises(ValueError, match="do not match the layers"):
    backbones.build("bagnet77", weights=path)


def test_tiny_cnn_depth_adds_stride_one_convs_and_keeps_the_map():
  one = backbones.tiny_cnn_model((32, 32, 3), (8, 16), depth=1)
  two = backbones.tiny_cnn_model((32, 32, 3), (8, 16), depth=2)
  convs = [l for l in two.layers if isinstance(l, keras.layers.Conv2D)]
  assert [l.strides for l in convs] == [(2, 2), (1, 1), (2, 2), (1, 1)]
  assert two.output_shape == one.output_shape == (None, 8, 8, 16)
  assert two.get_layer("stage2").output_shape == (None, 8, 8, 16)
  with pytest.raises(ValueError, match="depth"):
    backbones.tiny_cnn_model((32, 32, 3), depth=0)
  with pytest.raises(ValueError, match="norm"):
    backbones.tiny_cnn_model((32, 32, 3), norm="layer")


def test_default_norm_is_batch_renormalisation():
  """Issue 24: the small CNN renormalises by default (plain batch norm is
  "batch"); ``batch_norm=False`` still means none."""
  norms = [l for l in backbones.tiny_cnn_model((16, 16, 3), (8, 16)).layers
           if isinstance(l, keras.layers.BatchNormalization)]
  assert len(norms) == 2 and all(l.renorm for l in norms)
  plain = backbones.tiny_cnn_model((16, 16, 3), (8,), norm="batch")
  assert not plain.get_layer("bn1").renorm
  assert not [l for l in backbones.tiny_cnn_model(
      (16, 16, 3), (8,), batch_norm=False).layers
              if isinstance(l, keras.layers.BatchNormalization)]


def test_frozen_batch_norm_keeps_the_loaded_statistics_in_training(tmp_path):
  """"frozen_batch" runs batch norm on the loaded statistics in training
  too: the output does not depend on the batch, and a training step leaves
  the statistics alone — plain "batch" normalises by the batch."""
  src = backbones.tiny_cnn_model((16, 16, 3), (8,), norm="batch")
  bn = src.get_layer("bn1")
  bn.set_weights([np.full([8], 1.5, np.float32), np.full([8], 0.2, np.float32),
                  np.full([8], 3.0, np.float32), np.full([8], 4.0, np.float32)])
  path = str(tmp_path / "tiny.h5")
  src.save_weights(path)
  images = tf.random.uniform([4, 16, 16, 3], 0, 255, seed=1)
  for norm, same in (("frozen_batch", True), ("batch", False)):
    model = backbones.tiny_cnn_model((16, 16, 3), (8,), norm=norm)
    model.load_weights(path)
    train = model(images, training=True).numpy()
    infer = model(images, training=False).numpy()
    assert np.allclose(train, infer, atol=1e-5) == same, norm
    single = model(images[:1], training=True).numpy()
    assert np.allclose(single, train[:1], atol=1e-5) == same, norm
  stats = model.get_layer("bn1").get_weights()
  frozen = backbones.tiny_cnn_model((16, 16, 3), (8,), norm="frozen_batch")
  frozen.load_weights(path)
  assert not frozen.get_layer("bn1").trainable_weights
  np.testing.assert_allclose(frozen.get_layer("bn1").get_weights()[2], 3.0)
  assert stats[2][0] != 3.0  # plain batch norm moved its mean


def test_imagenet_weights_offline_name_the_file_to_place(tmp_path,
                                                         monkeypatch):
  # this machine has no internet: Keras' download fails, and the error
  # says where Keras looks for the file
  from tnet_tf.model.backbones import efficientnet
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  with pytest.raises(RuntimeError) as err:
    efficientnet.efficientnet_model("b0", weights="imagenet")
  text = str(err.value)
  assert "keras-applications/efficientnetb0_notop.h5" in text
  assert str(tmp_path / "models" / "efficientnetb0_notop.h5") in text
  from tnet_tf.model import backbones
  with pytest.raises(ValueError, match="no ImageNet weights for"):
    backbones.build("tiny_cnn", base_resolution=32, grid_size=3,
                    cell_fraction=0.5, weights="imagenet")


def test_a_small_folder_trained_from_scratch_gets_a_hint(tmp_path):
  from fakes import folder as fake_folder
  from tnet_tf.config import DataConfig, Experiment, preset
  from tnet_tf.cli import runner
  fake_folder.make_tree(str(tmp_path))
  experiment = Experiment(model=preset("toy"), data=DataConfig(
      name="folder", data_dir=str(tmp_path)))
  assert "pre-trained backbone weights" in runner.pretrained_hint(experiment)
  with_weights = experiment.replace(model=experiment.model.replace(
      backbone_kwargs={"weights": "w.h5"}))
  assert runner.pretrained_hint(with_weights) is None
  assert runner.pretrained_hint(experiment.replace(
      data=DataConfig(name="toy"))) is None
