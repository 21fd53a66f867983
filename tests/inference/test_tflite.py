"""TFLite TNet: the builtin-ops crop, and the converted model against the
SavedModel in a process that never imports the project."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert
import tensorflow as tf
import tf_keras as keras

from conftest import tiny_config
from tnet_tf.inference import tflite
from tnet_tf.inference.export import export_saved_model
from tnet_tf.model.tnet import TNet


def test_builtin_crop_matches_crop_and_resize(rng):
  images = rng.integers(0, 256, (2, 37, 53, 3)).astype(np.uint8)
  boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.55, 0.9],
                    [0.3, 0.3, 0.31, 0.32], [0.5, 0.0, 1.0, 0.5]],
                   np.float32)
  indices = np.array([0, 1, 1, 0], np.int32)
  for size in ([8, 8], [5, 11], [1, 1]):
    want = tf.image.crop_and_resize(images, boxes, indices, size)
    got = tflite.crop_and_resize(tf.constant(images), boxes, indices, size)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_builtin_crop_converts_without_select_ops(rng):
  fn = tf.function(
      lambda x, b: tflite.crop_and_resize(x, b, tf.zeros([2], tf.int32),
                                          [4, 4]),
      input_signature=[tf.TensorSpec([1, 20, 20, 1], tf.uint8),
                       tf.TensorSpec([2, 4], tf.float32)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [fn.get_concrete_function()], fn)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  run = litert.Interpreter(model_content=converter.convert())
  run.allocate_tensors()
  image = rng.integers(0, 256, (1, 20, 20, 1)).astype(np.uint8)
  boxes = np.array([[0.1, 0.1, 0.9, 0.7], [0, 0, 1, 1]], np.float32)
  inputs = {d["dtype"]: d["index"] for d in run.get_input_details()}
  run.set_tensor(inputs[np.uint8], image)
  run.set_tensor(inputs[np.float32], boxes)
  run.invoke()
  want = tf.image.crop_and_resize(image, boxes, [0, 0], [4, 4])
  # pixel values up to 255: TFLite's float kernels round differently
  np.testing.assert_allclose(
      run.get_tensor(run.get_output_details()[0]["index"]), want, rtol=1e-5)


# Runs with TensorFlow, LiteRT and numpy only: the SavedModels and the
# .tflite file must stand on their own.
_CLEAN_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    args = json.loads(sys.argv[1])
    images = np.load(args["images"])
    run = Interpreter(model_path=args["tflite"])
    inputs = {d["dtype"]: d for d in run.get_input_details()}
    worst = {}
    serve = tf.saved_model.load(args["saved_model"]).signatures[
        "serving_default"]
    for counts in args["locations"]:
      want = serve(images=tf.constant(images),
                   locations=tf.constant(counts, tf.int32))
      want = want["probabilities"].numpy()
      run.resize_tensor_input(inputs[np.uint8]["index"], images.shape)
      run.allocate_tensors()
      run.set_tensor(inputs[np.uint8]["index"], images)
      run.set_tensor(inputs[np.int32]["index"], np.array(counts, np.int32))
      run.invoke()
      got = run.get_tensor(run.get_output_details()[0]["index"])
      worst[",".join(map(str, counts))] = float(np.abs(got - want).max())
    assert not [m for m in sys.modules if m.startswith("tnet_tf")]
    print(json.dumps(worst))
    """)


@pytest.mark.parametrize("config, settings", [
    (dict(levels=2, locations=(2,)), [[0], [1], [2]]),
    # a 0 stops the traversal: [0, 3] is [0, 0]; feature weights masked
    # ~30 s: with the slow tests (the default suite's 10-minute budget)
    pytest.param(dict(levels=3, locations=(2, 1), feature_weighting=True),
                 [[0, 0], [1, 0], [2, 1], [0, 3]], marks=pytest.mark.slow),
], ids=["2_levels", "3_levels_weighted"])
def test_float_tflite_matches_saved_model_in_a_clean_process(
    tmp_path, rng, config, settings):
  tf.random.set_seed(3)
  model = TNet(tiny_config(**config))
  images = rng.integers(0, 256, (2, 96, 80, 3)).astype(np.uint8)
  path = str(tmp_path / "model.tflite")
  with open(path, "wb") as fh:
    fh.write(tflite.convert(model, (96, 80), 3))
  saved = export_saved_model(model, str(tmp_path / "saved_model"),
                             channels=3)
  np.save(tmp_path / "images.npy", images)
  args = json.dumps({"images": str(tmp_path / "images.npy"), "tflite": path,
                     "saved_model": saved, "locations": settings})
  proc = subprocess.run(
      [sys.executable, "-c", _CLEAN_CHECK, args], capture_output=True,
      text=True, timeout=300, cwd=str(tmp_path),
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  worst = json.loads(proc.stdout.strip().splitlines()[-1])
  assert sorted(worst) == sorted(",".join(map(str, s)) for s in settings)
  assert max(worst.values()) < 1e-4, worst


def _graph(data: bytes):
  model = tflite.schema.ModelT.InitFromObj(
      tflite.schema.Model.GetRootAsModel(data, 0))
  names = {code: name for name, code
           in vars(tflite.schema.BuiltinOperator).items()
           if not name.startswith("_")}
  codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)]
           for c in model.operatorCodes]
  return model, codes


def test_each_level_is_in_the_file_once(rng):
  # No branches: the backbone's convolutions appear once per level, the
  # location module's once per level with a decision.
  model = TNet(tiny_config(levels=3, locations=(2, 1)))
  images = [rng.integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)]
  for quantization in ("float", "int8"):
    data = tflite.convert(
        model, (64, 64), 3, quantization=quantization,
        representative=tflite.representative_data(images, [(2, 1)], 3))
    flat, codes = _graph(data)
    assert len(flat.subgraphs) == 1
    ops = [codes[op.opcodeIndex] for op in flat.subgraphs[0].operators]
    assert "IF" not in ops
    backbone = sum(isinstance(layer, keras.layers.Conv2D) for layer in
                   model.feature_extraction.submodules)
    location = sum(isinstance(layer, keras.layers.Conv2D) for layer in
                   model.location_module.submodules)
    assert ops.count("CONV_2D") == 3 * backbone + 2 * location, quantization


def test_int8_keeps_tnet_geometry_float(rng):
  model = TNet(tiny_config(levels=2, locations=(2,)))
  images = [rng.integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)]
  data = tflite.convert(
      model, (64, 64), 3, quantization="int8", strip=False,
      representative=tflite.representative_data(images, [(2,)], 2))
  flat, codes = _graph(data)
  graph = flat.subgraphs[0]
  modules = {layer.name for layer in model.layers}
  int8 = tflite.schema.TensorType.INT8
  quantized_convs = 0
  for op in graph.operators:
    out = graph.tensors[op.outputs[0]]
    scopes = set(out.name.decode().split("/")[:-1])
    if codes[op.opcodeIndex] == "CONV_2D":
      quantized_convs += out.type == int8
    elif codes[op.opcodeIndex] != "QUANTIZE" and (
        not scopes & modules or "keep_float" in scopes):
      # box geometry, crops, feature averaging, sinusoids: never int8
      assert out.type != int8, (codes[op.opcodeIndex], out.name)
  assert quantized_convs == sum(
      codes[op.opcodeIndex] == "CONV_2D" for op in graph.operators)


def test_strip_names_keeps_signature_alignment_and_outputs(rng):
  model = TNet(tiny_config(levels=2, locations=(2,)))
  named = tflite.convert(model, (64, 64), 3, strip=False)
  stripped = tflite.strip_names(named)
  assert len(stripped) < len(named)
  flat, _ = _graph(stripped)
  graph = flat.subgraphs[0]
  kept = {i for i, t in enumerate(graph.tensors) if t.name}
  assert kept == set(graph.inputs) | set(graph.outputs)
  # weights start on 16-byte boundaries, as the converter writes them
  root = tflite.schema.Model.GetRootAsModel(stripped, 0)
  for i in range(root.BuffersLength()):
    buffer = root.Buffers(i)
    if buffer.DataLength():
      assert buffer._tab.Vector(buffer._tab.Offset(4)) % 16 == 0
  image = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
  before, after = tflite.Interpreter(named), tflite.Interpreter(stripped)
  for locations in ([0], [2]):
    np.testing.assert_array_equal(after(image, locations),
                                  before(image, locations))
  assert (litert.Interpreter(model_content=stripped).get_signature_list()
          == litert.Interpreter(model_content=named).get_signature_list())


def test_interpreter_checks_its_input_size(rng, tmp_path):
  model = TNet(tiny_config(levels=2, locations=(1,)))
  run = tflite.Interpreter(tflite.convert(model, (64, 64), 3, locations=(1,)))
  image = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
  want = tf.nn.softmax(model(image, training=False, locations=(1,))["logits"])
  np.testing.assert_allclose(run(image), want, atol=1e-5)
  with pytest.raises(ValueError, match="takes 64x64 images"):
    run(rng.integers(0, 256, (1, 32, 64, 3)).astype(np.uint8))


def test_convert_rejects_bad_options():
  model = TNet(tiny_config(levels=2, locations=(1,)))
  with pytest.raises(ValueError, match="quantization must be one of"):
    tflite.convert(model, (64, 64), 3, quantization="int4")
  with pytest.raises(ValueError, match="needs representative"):
    tflite.convert(model, (64, 64), 3, quantization="int8")
  with pytest.raises(ValueError, match="crop must be one of"):
    tflite.convert(model, (64, 64), 3, crop="nearest")


def test_builtin_crop_of_a_box_ending_at_the_last_pixel(rng):
  # float32 puts the last sample of this box 7.6e-6 past pixel 106: its
  # ceil would index a row past the image (seen as an out-of-bounds GATHER
  # of a TNet-B0 at 896 px during int8 calibration)
  image = tf.constant(rng.integers(0, 256, (1, 107, 107, 3)), tf.uint8)
  boxes = tf.constant([[0.20204082, 0.20204082, 1.0, 1.0]])
  got = tflite.crop_and_resize(image, boxes, tf.zeros([1], tf.int32),
                               [32, 32])
  # TF's kernel writes 0 there; the sample belongs to the last pixel
  want = tf.image.crop_and_resize(image, boxes - [0, 0, 1e-6, 1e-6], [0],
                                  [32, 32])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=0.05)
