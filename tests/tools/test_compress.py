"""Compression: each method for 2 fine-tuning steps on a tiny TNet, through
TFLite conversion to the interpreter; the errors a user can run into."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from tnet_tf.tools import compress
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.inference import tflite
from tnet_tf.config import (DataConfig, Experiment, RuntimeConfig,
                            TrainConfig, preset)
from tnet_tf.model.tnet import TNet

MODEL = preset("toy")  # tiny CNN, 3x3 grid, 2 levels, 64 px inputs
DATA = DataConfig(name="toy", image_size=(64, 64), num_examples=16)


def _trained_run(run_dir, kind="tnet") -> str:
  """A 'trained' run: its initial weights in a checkpoint, config.json."""
  model = MODEL if kind == "tnet" else MODEL.replace(levels=1, locations=())
  experiment = Experiment(model=model, data=DATA, kind=kind,
                          train=TrainConfig(eval_locations=((), (2,))))
  task = tasks.build(experiment)  # compiled, as the trainer saves
  task.optimizer.iterations.assign(2500)  # as after training
  tf.train.Checkpoint(model=task).write(str(run_dir / "checkpoints" /
                                            "ckpt-1"))
  with open(run_dir / "checkpoints" / "checkpoint", "w") as fh:
    fh.write('model_checkpoint_path: "ckpt-1"\n')
  runs.write_record(str(run_dir), experiment)
  return str(run_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
  return _trained_run(tmp_path_factory.mktemp("trained"))


def _images(n=2):
  return np.random.default_rng(0).integers(
      0, 256, (n, 64, 64, 3)).astype(np.uint8)


def _two_steps(model: TNet) -> tasks.TNetClassifier:
  task = tasks.TNetClassifier(model)
  task.compile(keras.optimizers.Adam(1e-3))
  step = task.make_train_function()
  labels = np.array([0, 1], np.int32)
  batches = iter(tf.data.Dataset.from_tensors((_images(), labels)).repeat())
  for i in range(2):
    for wrapper in compress._wrappers(task, compress.PruneLowMagnitude):
      wrapper.pruning_step.assign(i)
    step(batches)
  return task


def _interpreter_runs(data: bytes) -> np.ndarray:
  run = tflite.Interpreter(data)
  probs = run(_images(1), [2])
  assert probs.shape == (1, MODEL.num_classes)
  np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-2)  # int8 softmax
  return probs


@pytest.mark.slow
def test_prune_end_to_end_through_the_trainer(trained, tmp_path):
  flagged = Experiment(model=MODEL, data=DATA, train=TrainConfig(
      batch_size=4, train_steps=2, eval_locations=((2,),)),
      runtime=RuntimeConfig(checkpoint_every=2, log_every=1),
      eval_examples=4)
  experiment = compress.source_experiment(trained, flagged)
  assert experiment.train.eval_locations == ((2,),)
  assert experiment.train.train_steps == 2 and not experiment.export
  run_dir = str(tmp_path / "prune")
  out = compress.compress("prune", experiment, run_dir, trained,
                          compress.Options(pruning_end=0.5,
                                           pruning_frequency=1))
  model = out["model"]
  assert not compress._wrappers(model, compress.PruneLowMagnitude)
  kernels = [v.numpy() for v in model.trainable_variables
             if "kernel" in v.name]
  zeros = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
  assert 0.45 < zeros < 0.55  # the target sparsity, reached at step 1
  assert os.path.exists(os.path.join(run_dir, "summary.json"))
  # the stripped weights load into a plain TNet
  plain = tasks.create("tnet", MODEL)
  runs.read_weights(plain, os.path.join(run_dir, "weights", "ckpt"),
                    "stripped weights")
  want = tf.nn.softmax(plain(_images(1), training=False,
                             locations=(2,))["logits"])
  with open(out["tflite"], "rb") as fh:
    got = _interpreter_runs(fh.read())
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_two_by_four_sparsity_after_two_steps():
  model = compress.add_pruning(TNet(MODEL), "prune_2x4", compress.Options(),
                               2)
  model = compress.strip_pruning(_two_steps(model).network)
  kernel = model.classification_module.linear.kernel.numpy()  # [in, out]
  blocks = np.abs(kernel.T).reshape(kernel.shape[1], -1, 4)
  assert np.all((blocks == 0).sum(-1) >= 2)
  _interpreter_runs(tflite.convert(model, (64, 64), 3))


def test_a_rewritten_tnet_keeps_the_trained_weights():
  model = TNet(MODEL)
  same = compress.rewrite(model, lambda layer: layer)
  images = _images()
  np.testing.assert_allclose(same(images)["logits"], model(images)["logits"],
                             atol=1e-6)
  assert same.location_module.fuse is model.location_module.fuse


@pytest.mark.parametrize("method", ["ptq_int8", "qat_int8"])
def test_int8_methods_convert_and_run(method):
  model = TNet(MODEL)
  if method == "qat_int8":
    model = _two_steps(compress.add_quantization(model)).network
  calibration = tflite.representative_data(
      [_images(1)], [(2,), (0,)], MODEL.levels)
  data = tflite.convert(model, (64, 64), 3, quantization="int8",
                        representative=calibration)
  model_t = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
  types = {t.type for graph in model_t.subgraphs for t in graph.tensors}
  assert schema.TensorType.INT8 in types  # convolutions run in int8
  _interpreter_runs(data)


def test_batch_norms_fold_into_their_convolutions(rng):
  # a Conv2D -> BN, a DepthwiseConv2D (multiplier 2) -> BN, and a BN whose
  # convolution feeds something else too (kept as it is)
  inputs = keras.Input([9, 9, 3])
  x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
  x = keras.layers.BatchNormalization(name="bn")(x)
  x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
  x = keras.layers.BatchNormalization(name="dw_bn")(x)
  y = keras.layers.Conv2D(8, 1, name="shared")(x)
  z = keras.layers.BatchNormalization(name="kept_bn")(y)
  functional = keras.Model(inputs, keras.layers.Add()([y, z]))
  for layer in functional.layers:  # non-trivial statistics
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.set_weights([rng.uniform(0.5, 2, w.shape).astype(np.float32)
                         if i in (0, 3) else
                         rng.normal(size=w.shape).astype(np.float32)
                         for i, w in enumerate(layer.get_weights())])
  folded = compress.fold_batch_norms(functional)
  kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
  assert kinds["bn"] == kinds["dw_bn"] == "Identity"
  assert kinds["kept_bn"] == "BatchNormalization"
  images = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
  np.testing.assert_allclose(folded(images, training=False),
                             functional(images, training=False), atol=1e-4)


def test_qat_wraps_an_activation_tfmot_cannot_with_its_own_config():
  # the BagNet location module's convs use leaky ReLU
  model = compress.add_quantization(
      TNet(MODEL.replace(location_variant="bagnet")))
  fuse = model.location_module.fuse
  assert isinstance(fuse.quantize_config, compress.OutputQuantizeConfig)
  assert model(_images(), training=True)["logits"].shape == (2, 4)


# ------------------------------------------------------------ bad input
def test_unknown_method_is_named():
  with pytest.raises(ValueError, match="unknown method 'zip'; known: "
                     r"\['prune', 'prune_2x4', 'ptq_int8', 'qat_int8'\]"):
    compress.check_methods(["prune", "zip"])


@pytest.mark.parametrize("sparsity", [0.0, 1.0, -0.5, 1.5])
def test_sparsity_outside_zero_one(sparsity):
  with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\)"):
    compress.Options(sparsity=sparsity)


def test_a_baseline_run_is_not_a_tnet(tmp_path):
  run_dir = _trained_run(tmp_path, kind="baseline")
  with pytest.raises(ValueError, match="needs a TNet"):
    compress.compress("ptq_int8", runs.read_experiment(run_dir),
                      str(tmp_path / "out"), run_dir)
  other = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
  prefix = tf.train.Checkpoint(model=other).write(str(tmp_path / "ckpt"))
  with pytest.raises(ValueError, match="does not match this model"):
    runs.read_weights(tasks.create("tnet", MODEL), prefix, "that file")


def test_missing_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint in"):
    runs.checkpoint_path(str(tmp_path))
