"""Serving export: a fresh process that never imports the project gets the
Keras model's outputs, at any number of locations, from pixels or bytes."""
import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.inference import export
from tnet_tf.model.tnet import TNet

# runs in a subprocess: only TensorFlow, never tnet_tf
SERVER = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "tnet_tf" not in sys.modules
path, requests = sys.argv[1], json.load(open(sys.argv[2]))
model = tf.saved_model.load(path)
serve = model.signatures["serving_default"]
serve_bytes = model.signatures["serve_bytes"]
replies = []
for req in requests:
  try:
    if req["kind"] == "images":
      out = serve(images=tf.constant(np.load(req["file"])),
                  locations=tf.constant(req["locations"], tf.int32))
    elif req["kind"] == "float_images":
      out = serve(images=tf.constant(np.load(req["file"]), tf.float32),
                  locations=tf.constant(req["locations"], tf.int32))
    else:
      data = open(req["file"], "rb").read()
      out = serve_bytes(encoded=tf.constant([data]),
                        locations=tf.constant(req["locations"], tf.int32))
    replies.append({k: v.numpy().tolist() for k, v in out.items()
                    if v.dtype != tf.string})
  except Exception as err:  # the process must survive a bad request
    replies.append({"error": type(err).__name__, "message": str(err)[:300]})
meta = model.signatures["metadata"]()
replies.append({"class_names": [c.decode() for c in
                                meta["class_names"].numpy()],
                "default_locations": meta["default_locations"].numpy().tolist()})
print(json.dumps(replies))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  tf.random.set_seed(1)
  model = TNet(tiny_config(num_classes=7, levels=3, locations=(2, 1)))
  path = str(tmp_path_factory.mktemp("export") / "saved_model")
  names = [f"class_{i}" for i in range(7)]
  export.export_saved_model(model, path, names)
  return model, path, names


def _serve(path, requests, tmp_path):
  req_file = tmp_path / "requests.json"
  req_file.write_text(json.dumps(requests))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(
      [sys.executable, "-c", SERVER, path, str(req_file)], env=env,
      capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_fresh_process_matches_keras_at_0_1_3_locations(exported, tmp_path):
  model, path, names = exported
  images = np.random.default_rng(0).integers(0, 256, (2, 150, 110, 3),
                                             dtype=np.uint8)
  np.save(tmp_path / "images.npy", images)
  settings = [[0, 0], [1, 0], [1, 2], [2, 1]]  # 0, 1, 3 and 4 locations
  replies = _serve(path, [{"kind": "images", "file": "images.npy",
                           "locations": k} for k in settings], tmp_path)
  for k, reply in zip(settings, replies):
    expected = model(images, training=False, locations=k)
    np.testing.assert_allclose(reply["logits"], expected["logits"],
                               atol=1e-5)
    np.testing.assert_allclose(reply["boxes"], expected["boxes"], atol=1e-4)
    n = 1 + k[0] + k[0] * k[1]
    assert np.asarray(reply["boxes"]).shape == (2, n, 4)
    assert np.asarray(reply["levels"])[0].tolist() == (
        [1] + [2] * k[0] + [3] * (k[0] * k[1]))
    np.testing.assert_allclose(np.asarray(reply["probabilities"]).sum(-1),
                               1.0, atol=1e-5)
    assert np.asarray(reply["top5_classes"]).shape == (2, 5)
  assert replies[-1] == {"class_names": names, "default_locations": [2, 1]}


def test_bytes_of_a_real_photo_and_bad_requests(exported, tmp_path):
  from skimage import data as skdata
  model, path, _ = exported
  photo = skdata.astronaut()[::2, ::2]  # 256 × 256 RGB
  buf = io.BytesIO()
  Image.fromarray(photo).save(buf, "JPEG", quality=90)
  (tmp_path / "photo.jpg").write_bytes(buf.getvalue())
  (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  np.save(tmp_path / "one.npy", photo[None])
  replies = _serve(path, [
      {"kind": "bytes", "file": "photo.jpg", "locations": [2, 1]},
      {"kind": "bytes", "file": "bad.jpg", "locations": [2, 1]},
      {"kind": "bytes", "file": "photo.jpg", "locations": [3, 0]},
      {"kind": "images", "file": "one.npy", "locations": [10, 1]},
      {"kind": "images", "file": "one.npy", "locations": [-1, 1]},
      {"kind": "float_images", "file": "one.npy", "locations": [1, 1]},
      {"kind": "images", "file": "one.npy", "locations": [1, 1]},
  ], tmp_path)
  decoded = tf.io.decode_jpeg(buf.getvalue())[None]
  expected = model(decoded, training=False, locations=[2, 1])
  np.testing.assert_allclose(replies[0]["logits"], expected["logits"],
                             atol=1e-5)
  assert replies[1]["error"] == "InvalidArgumentError"
  assert "logits" in replies[2]  # served again after the bad request
  assert "must be <= 9" in replies[3]["message"]
  assert ">= 0" in replies[4]["message"]
  assert "error" in replies[5]  # float32 pixels: the signature wants uint8
  assert "logits" in replies[6]


def test_saved_model_cli_shows_the_signatures(exported):
  _, path, _ = exported
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  result = subprocess.run([cli, "show", "--dir", path, "--all"],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  for name in ("serving_default", "serve_bytes", "metadata", "locations",
               "encoded", "location_probabilities", "feature_weights"):
    assert name in result.stdout
