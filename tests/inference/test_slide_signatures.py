"""Slides through a SavedModel: the host reads regions between the
``regions_*`` signatures (``tnet_tf.inference.staged``) and gets the Keras
model's response on ``Regions``; the traversal in stages is ``TNet.call``."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
import tifffile

from conftest import tiny_config
from tnet_tf.data import regions
from tnet_tf.data import slides
from tnet_tf.inference import export
from tnet_tf.inference import staged as slide_model
from tnet_tf.model import sources
from tnet_tf.model import staged
from tnet_tf.model.tnet import TNet

# runs in a subprocess: the SavedModel and the readers, no run directory
CLIENT = r"""
import json, sys
import numpy as np
from tnet_tf.data import regions
from tnet_tf.inference import staged
path, requests, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
model = staged.SlideModel(path)
arrays = {}
for i, req in enumerate(requests):
  reply = model.respond(regions.Regions([regions.open_source(req["file"])]),
                        req["locations"])
  arrays.update({f"{i}/{k}": v for k, v in reply.items()
                 if v.dtype.kind not in "SO"})
np.savez(out, **arrays)
"""


class Recorded(regions.Regions):
  """Regions that keep the crops read."""

  def crops(self, *args, **kwargs):
    out = super().crops(*args, **kwargs)
    self.read = getattr(self, "read", []) + [out.numpy()]
    return out


class Unbounded(Recorded):
  """Regions read without their bounds: a host that forgot them."""

  def crops(self, resampling, sampling, boxes, box_image, r, depth,
            bounds=None):
    return super().crops(resampling, sampling, boxes, box_image, r, depth)


def _model(**overrides) -> TNet:
  keras.utils.set_random_seed(0)
  return TNet(tiny_config(base_resolution=48, backbone_kwargs={
      "widths": (8, 8, 8), "norm": "batch"}, **overrides))


def _exported(tmp_path_factory, **overrides):
  model = _model(**overrides)
  names = [f"class_{i}" for i in range(5)]
  path = str(tmp_path_factory.mktemp("export") / "saved_model")
  export.export_saved_model(model, path, names)
  return export.Serving(model, names), path


@pytest.fixture(scope="module")
def three_levels(tmp_path_factory):
  return _exported(tmp_path_factory, resampling="antialias")


@pytest.fixture(scope="module")
def two_levels(tmp_path_factory):
  return _exported(tmp_path_factory, levels=2, locations=(3,))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """A pyramidal slide, and bright images whose grid does not tile (181 ×
  130: level-3 cells overhang their region; bright, the padding stands
  out)."""
  folder = tmp_path_factory.mktemp("files")
  paths = {"slide": str(folder / "slide.tif"), "odd": str(folder / "odd.tif"),
           "grey": str(folder / "grey.tif")}
  slides.write(paths["slide"], slides.SlideSpec(size=2048, min_level_px=128,
                                                seed=3))
  rng = np.random.default_rng(1)
  for name, channels in (("odd", 3), ("grey", 1)):
    tifffile.imwrite(paths[name], rng.integers(200, 256, [181, 130, channels],
                                               np.uint8),
                     tile=(64, 64), compression="zlib")
  return paths


def _keras(serving, path, locations, kind=regions.Regions):
  images = kind([regions.open_source(path)])
  out = serving.response(images, locations=list(locations))
  return {k: v.numpy() for k, v in out.items()}, images


def _assert_same(got: dict, want: dict) -> float:
  """Cells and boxes identical, logits to 1e-5: the largest logits gap."""
  assert set(got) == set(want)
  for key in ("boxes", "levels", "top5_classes", "top5_names"):
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  for key in ("logits", "probabilities", "location_probabilities",
              "feature_weights"):
    np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
  return float(np.abs(got["logits"] - want["logits"]).max())


def test_stages_in_memory_are_the_traversal_bit_for_bit(rng):
  # plan → encode → grow across pack/unpack (pixels read by the caller)
  # gives what call gives: descend is the same three parts
  images = rng.integers(0, 256, [2, 181, 130, 3], np.uint8)
  for resampling in ("authors", "align_corners"):
    model = _model(resampling=resampling)
    want = model(images, training=False, locations=[3, 2])
    source, r = sources.ImageTensor(tf.constant(images)), 48
    state = staged.start(model, source.whole(model.resampling, model.sampling,
                                             r), tf.shape(images)[1:3])
    for k in (3, 2):
      plan = staged.cells(model, state, k)
      bounds = plan["cell_bounds"]
      crops = source.crops(model.resampling, model.sampling, plan["cells"],
                           plan["cell_image"], r, int(plan["cell_depth"]),
                           bounds if bounds.shape[1] else None)
      state = staged.encode(model, state, plan, crops)
    assert int(state["depth"]) == 3
    got = staged.readout(model, state)
    for key in ("logits", "boxes", "feature_weights", "location_log_probs",
                "positions", "levels"):
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_fresh_process_attends_slides_as_the_keras_model(
    three_levels, files, tmp_path):
  serving, path = three_levels
  requests = [{"file": files[name], "locations": k}
              for name in ("slide", "odd") for k in ([2, 1], [1, 0], [9, 9])]
  (tmp_path / "requests.json").write_text(json.dumps(requests))
  result = subprocess.run(
      [sys.executable, "-c", CLIENT, path, str(tmp_path / "requests.json"),
       str(tmp_path / "out.npz")],
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
      text=True, timeout=300, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  replies = np.load(tmp_path / "out.npz")
  gaps = []
  for i, req in enumerate(requests):
    want, _ = _keras(serving, req["file"], req["locations"])
    got = {k.split("/")[1]: replies[k] for k in replies.files
           if k.startswith(f"{i}/")}
    want.pop("top5_names")
    got["top5_names"] = want["top5_names"] = np.zeros(1)
    gaps.append(_assert_same(got, want))
    n = 1 + req["locations"][0] * (1 + req["locations"][1])
    assert got["boxes"].shape == (1, n, 4)
  assert max(gaps) < 1e-5


def test_cells_read_the_region_they_divide(three_levels, files):
  # the host reads what the Keras model reads, bounds and all; without the
  # bounds the crops and the logits differ (beyond the tolerance above)
  serving, path = three_levels
  model = slide_model.SlideModel(path)
  want, keras_read = _keras(serving, files["odd"], [9, 9], Recorded)
  read = Recorded([regions.open_source(files["odd"])])
  _assert_same(model.respond(read, [9, 9]), want)
  for got, expected in zip(read.read, keras_read.read):
    np.testing.assert_array_equal(got, expected)
  free = Unbounded([regions.open_source(files["odd"])])
  wrong = model.respond(free, [9, 9])
  assert np.abs(free.read[1] - keras_read.read[1]).max() > 50
  assert np.abs(wrong["logits"] - want["logits"]).max() > 1e-4


@pytest.mark.slow  # the default suite's budget; three levels cover the path
def test_two_levels_slides_grey_images_and_requests(two_levels, files):
  serving, path = two_levels
  model = slide_model.SlideModel(path)
  assert (model.levels, model.grid_size, model.base_resolution,
          model.channels, model.resampling.name) == (2, 3, 48, 3, "authors")
  assert model.default_locations == (3,)
  for name in ("slide", "odd", "grey"):
    for k in ([3], [1], [0]):
      want, _ = _keras(serving, files[name], k)
      got = model.respond(regions.Regions([regions.open_source(
          files[name])]), k)
      assert _assert_same(got, want) < 1e-5
      assert got["boxes"].shape == (1, 1 + k[0], 4)
  slide = regions.Regions([regions.open_source(files["slide"])])
  with pytest.raises(ValueError, match="must be in"):
    model.respond(slide, [10])
  with pytest.raises(ValueError, match="levels=2"):
    model.respond(slide, [1, 1])
  state = model._call("regions_start", {
      "view": tf.zeros([1, 48, 48, 3]),
      "image_hw": tf.constant([2048, 2048])})
  with pytest.raises(tf.errors.InvalidArgumentError, match=">= 1"):
    model._call("regions_cells", {**state, "locations": tf.constant(0)})
  state = model.descend(slide, state, 2)
  with pytest.raises(tf.errors.InvalidArgumentError, match="the last"):
    model._call("regions_cells", {**state, "locations": tf.constant(1)})


def test_models_without_stages_say_so():
  assert staged.supports(_model(levels=2, locations=(3,)))
  assert not staged.supports(_model(levels=1, locations=()))
  assert not staged.supports(_model(resampling="align_corners"))
  with pytest.raises(ValueError, match="no regions_start, regions_cells"):
    slide_model.SlideModel(types.SimpleNamespace(signatures={}))
