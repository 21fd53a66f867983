"""The authors' released checkpoints into tnet-tf, without their code.

``data/authors_checkpoints.json`` records, for each released kind of model,
the names and shapes of the variables the authors' ``train.py`` saves
(written by ``fidelity/authors_code.py --record`` running their model code;
the same script compares outputs with theirs outside CI). Here checkpoints
with those names and random values are converted and every variable must
land where the mapping says, with named errors for what does not fit."""
import json
import os

from absl import flags
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tnet_tf.cli import convert as convert_cli
from tnet_tf.cli import flags as experiment_flags
from tnet_tf.config import Experiment, preset
from tnet_tf.model.backbones import efficientnet
from tnet_tf.training import authors
from tnet_tf.training import runs
from tnet_tf.training import tasks

with open(os.path.join(os.path.dirname(__file__), "data",
                       "authors_checkpoints.json")) as fh:
  RECORDED = json.load(fh)

# recorded case → our experiment (what its recipe builds)
EXPERIMENTS = {
    "imagenet": ("tnet", preset("imagenet")),
    "fmow": ("tnet", preset("fmow_stage2")),
    "cub": ("tnet", preset("cub")),
    "imagenet_bagnet77": ("baseline", preset("imagenet", levels=1,
                                             locations=())),
    "fmow_en_b0": ("baseline", preset("fmow", levels=1, locations=(),
                                      input_size=(224, 224))),
    "cub_en_b0": ("baseline", preset("cub", levels=1, locations=())),
}


def _experiment(case: str) -> Experiment:
  kind, model = EXPERIMENTS[case]
  return Experiment(kind=kind, model=model)


def _arrays(case: str, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  out = {name: rng.normal(0, 0.1, shape).astype(np.float32)
         for name, shape in RECORDED[case]["variables"].items()}
  for name in out:  # variances are positive
    if name.endswith("moving_variance"):
      out[name] = np.abs(out[name]) + 0.5
  return out


def write_theirs(folder: str, arrays: dict, step: int = 7) -> str:
  """A checkpoint laid out as the authors' train.py writes it: each
  variable under its name, the optimiser (with slots) and its step."""
  variables = {name: tf.Variable(value) for name, value in arrays.items()}
  optimizer = keras.optimizers.Adam(1e-3)
  trainable = [v for v in variables.values() if v.shape.rank]
  optimizer.apply_gradients(
      zip([tf.zeros_like(v) for v in trainable], trainable))
  optimizer.iterations.assign(step)
  checkpoint = tf.train.Checkpoint(optimizer=optimizer,
                                   iteration=optimizer.iterations,
                                   **variables)
  return checkpoint.save(os.path.join(folder, "ckpt"))


def test_their_checkpoint_is_read_by_name_without_the_optimiser(tmp_path):
  arrays = _arrays("imagenet")
  prefix = write_theirs(str(tmp_path), arrays)
  read, step = authors.read_checkpoint(prefix)
  assert step == 7
  assert sorted(read) == sorted(arrays)  # no slots, no optimiser state
  for name, value in arrays.items():
    np.testing.assert_array_equal(read[name], value)
  # the folder works as well as the prefix
  assert sorted(authors.read_checkpoint(str(tmp_path))[0]) == sorted(arrays)


@pytest.mark.parametrize("case", [
    "imagenet", "fmow", "imagenet_bagnet77",
    # feature weighting and the birds' tap: slow (the default suite's budget)
    pytest.param("cub", marks=pytest.mark.slow),
    # the EfficientNet baselines: the backbone's mapping is the TNets'
    pytest.param("fmow_en_b0", marks=pytest.mark.slow),
    pytest.param("cub_en_b0", marks=pytest.mark.slow)])
def test_every_variable_of_a_release_lands_in_the_recipes_model(tmp_path,
                                                                 case):
  arrays = _arrays(case)
  prefix = write_theirs(str(tmp_path / "theirs"), arrays)
  run_dir = str(tmp_path / "run")
  report = authors.convert(_experiment(case), prefix, run_dir)
  assert report["variables"] == len(arrays) and report["step"] == 7
  loaded = runs.load(run_dir)  # the run loads as any other
  experiment = loaded.experiment
  places = authors.authors_names(loaded.task, experiment.model.backbone)
  placed = set()
  for place in places:
    want = place.combine([arrays[name] for name in place.names])
    np.testing.assert_array_equal(place.variable.numpy(), want,
                                  err_msg=str(place.names))
    placed.add(id(place.variable))
  # nothing of the network is left at its initial value but the input
  # normalisation, which is set to the authors' input range
  network = tasks.network_of(loaded.task)
  left = [w.name for w in network.weights if id(w) not in placed]
  assert all("normalization" in name for name in left), left
  if experiment.model.backbone.startswith("efficientnet"):
    model = (network.feature_extraction.model if experiment.kind == "tnet"
             else network)
    mean, variance, _ = efficientnet.normalization_of(model).get_weights()
    assert np.allclose(mean, 0.5) and np.allclose(variance, 0.25)
  # their 3×1 SE convs are our dense layers; their two scalings our pairs
  if case == "fmow":
    location = network.location_module
    np.testing.assert_array_equal(
        location.se_reduce.kernel.numpy(),
        arrays["location_prediction/se/conv2d_1/kernel"][0, 0])
    np.testing.assert_array_equal(
        location.coordinates.scale.numpy(),
        [arrays["location_prediction/height_scaling/kernel"].item(),
         arrays["location_prediction/width_scaling/kernel"].item()])
  if experiment.kind == "tnet":
    np.testing.assert_allclose(loaded.task.reward_baseline.numpy(),
                               arrays["baseline_var"])
    size = experiment.model.input_size
    out = network(np.zeros([1, *size, 3], np.uint8), training=False)
    assert np.isfinite(out["logits"].numpy()).all()


def test_a_mismatch_names_every_variable_and_loads_nothing(tmp_path):
  arrays = _arrays("imagenet")
  del arrays["feature_posBurn/linear/bias"]
  arrays["feature_extraction/part7/conv2d/kernel"] = np.zeros([1, 1, 2, 2])
  arrays["location_prediction_earlyLocs/conv2d/bias"] = np.zeros([7])
  prefix = write_theirs(str(tmp_path / "theirs"), arrays)
  with pytest.raises(authors.CheckpointMismatch) as err:
    authors.convert(_experiment("imagenet"), prefix, str(tmp_path / "run"))
  message = str(err.value)
  assert "1 missing from the checkpoint: feature_posBurn/linear/bias" in (
      message)
  assert ("1 in the checkpoint with no place in the model: "
          "feature_extraction/part7/conv2d/kernel") in message
  assert ("1 of another shape: location_prediction_earlyLocs/conv2d/bias "
          "[7] (expected [512])") in message
  assert not os.path.exists(tmp_path / "run" / runs.CONFIG)
  assert not os.path.exists(tmp_path / "run" / runs.CHECKPOINTS)


def test_a_release_of_another_experiment_is_refused(tmp_path):
  prefix = write_theirs(str(tmp_path / "theirs"), _arrays("cub"))
  with pytest.raises(authors.CheckpointMismatch,
                     match="no place in the model: feat_weighting/"):
    authors.convert(_experiment("fmow"), prefix, str(tmp_path / "run"))


def test_a_model_the_authors_never_had_is_named(tmp_path):
  prefix = write_theirs(str(tmp_path / "theirs"), _arrays("imagenet"))
  with pytest.raises(ValueError, match="the authors have no 'tiny_cnn'"):
    authors.convert(Experiment(model=preset("toy")), prefix,
                    str(tmp_path / "run"))


def test_noisy_student_starts_the_backbone_as_theirs_does(tmp_path):
  """A tensorflow/tpu EfficientNet-B0 checkpoint (NoisyStudent) as
  --backbone_weights: each weight comes from the variable the authors'
  restore dictionary names for it (their name → ours by
  ``efficientnet.authors_layer``)."""
  recorded = RECORDED["noisy_student_b0"]["variables"]
  rng = np.random.default_rng(3)
  values = {tpu: rng.normal(0, 0.1, shape).astype(np.float32)
            for tpu, shape in recorded.values()}
  values["efficientnet-b0/head/dense/kernel/ExponentialMovingAverage"] = (
      np.zeros([1280, 1000], np.float32))  # their classifier: left out
  prefix = str(tmp_path / "model.ckpt")
  names = sorted(values)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[""] * len(names),
                    tensors=[values[n] for n in names])
  model = efficientnet.efficientnet_model("b0", (224, 224, 3), prefix,
                                          block_drop_rate=0.0)
  layers = {layer.name: layer for layer in model.layers}
  checked = 0
  for theirs, (tpu, _) in recorded.items():
    layer_path, attr = theirs.rsplit("/", 1)
    layer = next(name for name in layers if efficientnet.authors_layer(
        name) == layer_path.removeprefix("feature_extraction/"))
    weight = next(w for w in layers[layer].weights
                  if w.name.split("/")[-1].split(":")[0] == attr)
    np.testing.assert_array_equal(weight.numpy(), values[tpu],
                                  err_msg=theirs)
    checked += 1
  assert checked == len(recorded) == 309
  mean, variance, _ = efficientnet.normalization_of(model).get_weights()
  assert np.allclose(mean, 0.5) and np.allclose(variance, 0.25)
  # a checkpoint of another variant names what it lacks
  with pytest.raises(ValueError, match="not a tensorflow/tpu checkpoint of "
                     "EfficientNet-B1: .* missing: efficientnet-b1/"):
    efficientnet.efficientnet_model("b1", (240, 240, 3), prefix)


def _flag_values(argv):
  values = flags.FlagValues()
  experiment_flags.define_flags(values)
  convert_cli.define_flags(values)
  values(["convert", *argv])
  return values


def test_the_command_converts_with_the_checkpoints_classes(tmp_path,
                                                           capsys):
  prefix = write_theirs(str(tmp_path / "theirs"), _arrays("imagenet"))
  names = tmp_path / "names.txt"
  names.write_text("\n".join(f"class {i}" for i in range(1000)))
  run_dir = str(tmp_path / "run")
  values = _flag_values([
      "--flagfile=experiments/imagenet/tnet.flags", f"--run_dir={run_dir}",
      f"--authors_checkpoint={prefix}", f"--class_names={names}"])
  convert_cli.main(["convert"], values)
  report = json.loads(capsys.readouterr().out)
  assert report["variables"] == 121 and report["step"] == 7
  loaded = runs.load(run_dir)
  assert loaded.experiment.model.num_classes == 1000
  assert loaded.class_names[:2] == ["class 0", "class 1"]
  assert os.path.exists(os.path.join(run_dir, authors.PROVENANCE))
  # converting into a run again is refused, not merged
  with pytest.raises(SystemExit, match="already a run directory"):
    convert_cli.main(["convert"], _flag_values([
        "--flagfile=experiments/imagenet/tnet.flags",
        f"--run_dir={run_dir}", f"--authors_checkpoint={prefix}"]))
  with pytest.raises(SystemExit, match="no TensorFlow checkpoint at"):
    convert_cli.main(["convert"], _flag_values([
        "--preset=imagenet", f"--run_dir={tmp_path / 'other'}",
        f"--authors_checkpoint={tmp_path / 'nothing'}"]))


@pytest.mark.slow
def test_a_converted_release_evaluates_exports_and_predicts(tmp_path,
                                                            paper_datasets):
  """The whole path a user takes with a release: convert with the paper
  recipe, evaluate with its _eval recipe, export and predict."""
  from PIL import Image
  import subprocess
  import sys
  from tnet_tf.cli import runner
  from tnet_tf.experiments import imagenet

  data_dir = paper_datasets["imagenet"]["data_dir"]
  prefix = write_theirs(str(tmp_path / "theirs"), _arrays("imagenet"))
  run_dir = str(tmp_path / "run")

  def parsed(recipe, *extra):
    values = _flag_values([])  # defined flags, then the entry's defaults
    for name, value in imagenet.DEFAULTS.items():
      values.set_default(name, value)
    values(["x", f"--flagfile={recipe}", f"--data_dir={data_dir}",
            f"--run_dir={run_dir}", *extra])
    return values

  convert_cli.main(["convert"], parsed("experiments/imagenet/tnet.flags",
                                       f"--authors_checkpoint={prefix}"))
  runner.main(["eval"], parsed("experiments/imagenet/tnet_eval.flags",
                               "--eval_examples=4", "--batch_size=2",
                               "--noexport"))
  with open(os.path.join(run_dir, "eval_validation.json")) as fh:
    rows = json.load(fh)["eval"]
  assert [row["locations"] for row in rows] == [[], [1], [2], [3], [5]]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  exported = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.export", f"--run_dir={run_dir}"],
      capture_output=True, text=True, timeout=600, env=env)
  assert exported.returncode == 0, exported.stderr[-2000:]
  image = tmp_path / "image.png"
  Image.fromarray(np.random.default_rng(0).integers(
      0, 256, [300, 260, 3], np.uint8)).save(image)
  out = tmp_path / "predictions"
  predicted = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.predict",
       f"--model={run_dir}/saved_model", f"--output={out}", str(image)],
      capture_output=True, text=True, timeout=600, env=env)
  assert predicted.returncode == 0, predicted.stderr[-2000:]
  with open(out / "predictions.jsonl") as fh:
    row = json.loads(fh.readline())
  assert len(row["top5"]) == 5 and row["num_locations"] == 3
