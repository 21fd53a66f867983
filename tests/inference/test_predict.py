"""``python -m tnet_tf.cli.predict``: rows for every file, error rows for the
bad ones, the SavedModel's outputs, slides read region by region."""
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tifffile

from tnet_tf.inference import predict
from tnet_tf.data import regions
from tnet_tf.data import slides

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture(scope="module")
def run(fake_run):
  return fake_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("mixed")
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, [120, 100, 3], np.uint8)).save(
      root / "a.jpg", quality=95)
  Image.fromarray(rng.integers(0, 256, [120, 100, 3], np.uint8)).save(
      root / "b.png")
  tifffile.imwrite(root / "c16.tif",
                   rng.integers(0, 65536, [80, 96, 3], np.uint16))
  slides.write(str(root / "slide.tif"),
               slides.SlideSpec(size=2048, min_level_px=256, lesion_px=64))
  data = (root / "slide.tif").read_bytes()
  (root / "truncated.tif").write_bytes(data[:len(data) // 2])
  (root / "notes.txt").write_text("not an image\n")
  return str(root)


def _rows(summary):
  with open(summary["jsonl"]) as f:
    return [json.loads(line) for line in f]


def test_a_mixed_folder_gets_a_row_per_file_and_errors_for_the_bad_ones(
    run, folder, tmp_path):
  run_dir, _ = run
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.predict", f"--model={run_dir}",
       f"--output={out}", "--overlays", folder], cwd=REPO,
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 1, result.stderr[-2000:]  # two failed
  assert "6 images, 2 failed" in result.stdout
  assert "images/s" in result.stderr
  with open(out / "predictions.jsonl") as f:
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, f)}
  assert sorted(rows) == ["a.jpg", "b.png", "c16.tif", "notes.txt",
                          "slide.tif", "truncated.tif"]
  for name in ("a.jpg", "b.png", "c16.tif", "slide.tif"):
    row = rows[name]
    assert row["error"] is None
    assert len(row["top5"]) == 3
    assert abs(sum(t["probability"] for t in row["top5"]) - 1) < 1e-5
    assert [b["level"] for b in row["boxes"]] == [1, 2, 2, 3, 3]
    assert os.path.isfile(row["overlay"])
  assert rows["slide.tif"]["read"] == "regions"
  assert rows["slide.tif"]["pyramid_levels"] == 4
  assert rows["slide.tif"]["boxes"][0]["y1"] == 2048.0  # level-0 pixels
  assert rows["c16.tif"]["height"] == 80 and rows["c16.tif"]["read"] == (
      "whole")
  assert "truncated.tif: level 0: the file is truncated" in rows[
      "truncated.tif"]["error"]
  assert "notes.txt: cannot decode the image" in rows["notes.txt"]["error"]
  with open(rows["slide.tif"]["geojson"]) as f:
    collection = json.load(f)
  assert collection["type"] == "FeatureCollection"
  assert len(collection["features"]) == 4  # levels 2 and 3
  ring = collection["features"][0]["geometry"]["coordinates"][0]
  box = rows["slide.tif"]["boxes"][1]
  assert ring[0] == [box["x0"], box["y0"]] and ring[2] == [box["x1"],
                                                           box["y1"]]
  with open(out / "predictions.csv") as f:
    table = list(csv.DictReader(f))
  assert [os.path.basename(r["path"]) for r in table] == sorted(rows)
  assert table[0]["top1_class"] == rows["a.jpg"]["top5"][0]["class"]


def test_outputs_equal_the_saved_models_on_the_same_images(run, folder,
                                                          tmp_path):
  run_dir, saved = run
  paths = [os.path.join(folder, n) for n in ("a.jpg", "b.png", "c16.tif")]
  keras_rows = _rows(predict.run(predict.load_model(run_dir), paths,
                                 (2, 1), str(tmp_path / "k"),
                                 progress=None))
  saved_model = predict.load_model(saved)
  assert isinstance(saved_model, predict.SavedModel)
  saved_rows = _rows(predict.run(saved_model, paths, (2, 1),
                                 str(tmp_path / "s"), progress=None))
  serve = tf.saved_model.load(saved).signatures["serving_default"]
  for path, k, s in zip(paths, keras_rows, saved_rows):
    pixels = regions.open_source(path).read(0, 0, k["height"], 0,
                                            k["width"])
    direct = serve(images=tf.constant(pixels[None]),
                   locations=tf.constant([2, 1], tf.int32))
    for row in (k, s):
      np.testing.assert_allclose([t["probability"] for t in row["top5"]],
                                 direct["top5_probabilities"][0], atol=1e-5)
      np.testing.assert_allclose(
          [[b["y0"], b["x0"], b["y1"], b["x1"]] for b in row["boxes"]],
          direct["boxes"][0], atol=1e-3)
  # a slide is read region by region: through the SavedModel's regions
  # signatures as through the run directory
  slide = [os.path.join(folder, "slide.tif")]
  by_saved = _rows(predict.run(saved_model, slide, (2, 1),
                               str(tmp_path / "s2"), progress=None))[0]
  by_run = _rows(predict.run(predict.load_model(run_dir), slide, (2, 1),
                             str(tmp_path / "k2"), progress=None))[0]
  assert by_saved["read"] == by_run["read"] == "regions"
  _same_prediction(by_saved, by_run)
  assert by_saved["pixels_read_fraction"] == by_run["pixels_read_fraction"]


def test_same_size_images_are_batched_with_the_same_results(run, tmp_path):
  run_dir, _ = run
  rng = np.random.default_rng(5)
  paths = []
  for i, shape in enumerate([(64, 64), (64, 64), (50, 70), (64, 64)]):
    paths.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(rng.integers(0, 256, [*shape, 3], np.uint8)).save(
        paths[-1])
  model = predict.load_model(run_dir)
  one = _rows(predict.run(model, paths, (2, 1), str(tmp_path / "b1"),
                          batch_size=1, progress=None))
  many = _rows(predict.run(model, paths, (2, 1), str(tmp_path / "b8"),
                           batch_size=8, progress=None))
  assert [r["path"] for r in many] == paths
  for a, b in zip(one, many):
    np.testing.assert_allclose([t["probability"] for t in a["top5"]],
                               [t["probability"] for t in b["top5"]],
                               atol=1e-5)


def test_paths_expand_from_folders_globs_and_lists(tmp_path):
  (tmp_path / "d" / "sub").mkdir(parents=True)
  for name in ("d/x.png", "d/sub/y.jpg", "d/.hidden.png", "z.png"):
    (tmp_path / name).write_bytes(b"")
  (tmp_path / "list.txt").write_text("z.png\n# a comment\n\nd/x.png\n")
  got = predict.expand_paths([str(tmp_path / "d"), str(tmp_path / "*.png"),
                              str(tmp_path / "list.txt"),
                              str(tmp_path / "gone.png")])
  rel = [os.path.relpath(p, tmp_path) for p in got]
  assert rel == ["d/x.png", "d/sub/y.jpg", "z.png", "z.png", "d/x.png",
                 "gone.png"]


# ------------------------------------------------- damaged files, resuming
def _by_path(jsonl):
  with open(jsonl) as f:
    rows = [json.loads(line) for line in f]
  return rows, {r["path"]: r for r in rows}


def _same_prediction(a, b):
  assert a["error"] is None and b["error"] is None, (a["error"], b["error"])
  assert [t["class"] for t in a["top5"]] == [t["class"] for t in b["top5"]]
  np.testing.assert_allclose([t["probability"] for t in a["top5"]],
                             [t["probability"] for t in b["top5"]],
                             atol=1e-6)
  assert [(x["level"], x["y0"], x["x0"], x["y1"], x["x1"])
          for x in a["boxes"]] == [(x["level"], x["y0"], x["x0"], x["y1"],
                                    x["x1"]) for x in b["boxes"]]


def test_no_damaged_file_stops_a_run(run, damaged, tmp_path):
  """Good files among copies damaged in every way (cut short anywhere,
  changed bytes) in one call: one row each, the good rows as in a clean
  call, the bad ones naming file and problem, no traceback."""
  run_dir, _ = run
  paths = [p for p, _ in damaged]
  good = [p for p, what in damaged if what == "good"]
  out = tmp_path / "all"
  result = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.predict", f"--model={run_dir}",
       f"--output={out}", "--batch_size=4", *paths], cwd=REPO,
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert result.returncode == 1, result.stderr[-2000:]
  rows, by_path = _by_path(out / "predictions.jsonl")
  assert [r["path"] for r in rows] == paths  # one each, in input order
  clean = _by_path(predict.run(predict.load_model(run_dir), good, (2, 1),
                               str(tmp_path / "clean"),
                               progress=None)["jsonl"])[1]
  for path in good:
    _same_prediction(by_path[path], clean[path])
  failed = [r for r in rows if r["error"]]
  assert len(failed) >= len(paths) - len(good) - 3  # a few decode anyway
  for row in failed:
    assert row["path"] in row["error"], row
    assert "Traceback" not in row["error"]
  kinds = {os.path.basename(r["path"]): r["error"] for r in rows}
  assert "tile tables are incomplete" in kinds["slide.cut_offsets_table.tif"]
  assert "truncated" in kinds["slide.cut_tile_data.tif"]
  assert "fails to decode" in kinds["slide.coarse_tile_noise.tif"]
  assert "cannot decode the image" in kinds["photo.cut_half.png"]


class _FailsOnBlack:
  """A model whose call fails for any batch holding a black image."""

  def __init__(self, model):
    self._model = model
    self.lazy, self.channels = model.lazy, model.channels

  def __call__(self, images, locations, threshold=None):
    if any(image.max() == 0 for image in images):
      raise RuntimeError("the kernel rejected this input")
    return self._model(images, locations, threshold)


def test_a_model_call_that_fails_for_one_image_fails_only_its_row(
    run, tmp_path):
  run_dir, _ = run
  rng = np.random.default_rng(2)
  paths = []
  for i in range(4):
    paths.append(str(tmp_path / f"{i}.png"))
    pixels = rng.integers(0, 256, [64, 64, 3], np.uint8) * (i != 2)
    Image.fromarray(pixels.astype(np.uint8)).save(paths[-1])
  model = predict.load_model(run_dir)
  rows = _by_path(predict.run(_FailsOnBlack(model), paths, (2, 1),
                              str(tmp_path / "flaky"),
                              progress=None)["jsonl"])[1]
  clean = _by_path(predict.run(model, paths, (2, 1), str(tmp_path / "ok"),
                               progress=None)["jsonl"])[1]
  assert rows[paths[2]]["error"] == (
      f"{paths[2]}: RuntimeError: the kernel rejected this input")
  for path in (paths[0], paths[1], paths[3]):
    _same_prediction(rows[path], clean[path])


def test_a_run_resumes_from_the_rows_it_wrote(run, damaged, tmp_path):
  """In process: half the files, a row cut short (as by a kill), then all:
  only the missing ones are predicted, each file has one row."""
  run_dir, _ = run
  model = predict.load_model(run_dir)
  paths = [p for p, _ in damaged][:12]
  out = str(tmp_path / "out")
  first = predict.run(model, paths[:5], (2, 1), out, progress=None)
  with open(first["jsonl"], "a") as f:
    f.write('{"path": "' + paths[5])
  again = predict.run(model, paths, (2, 1), out, progress=None)
  assert (again["skipped"], again["images"]) == (5, 7)
  rows, _ = _by_path(again["jsonl"])
  assert [r["path"] for r in rows] == paths
  with open(again["csv"]) as f:
    assert [r["path"] for r in csv.DictReader(f)] == paths
  with pytest.raises(ValueError, match="other settings.*locations"):
    predict.run(model, paths, (1, 1), out, progress=None)
  fresh = predict.run(model, paths[:2], (1, 1), out, progress=None,
                      resume=False)
  assert fresh["images"] == 2 and len(_by_path(fresh["jsonl"])[0]) == 2


def test_a_file_two_runs_died_on_gets_an_error_row(run, damaged, tmp_path):
  """A file in flight when two runs stopped (a reader that crashes the
  process) is not tried a third time unless asked; one stop is a retry."""
  run_dir, _ = run
  model = predict.load_model(run_dir)
  paths = [p for p, what in damaged if what == "good"]
  out = tmp_path / "out"
  predict.run(model, paths[:1], (2, 1), str(out), progress=None)
  inflight = out / "predictions.inflight.json"
  assert not inflight.exists()  # a finished run leaves none
  inflight.write_text(json.dumps({paths[1]: 1, paths[2]: 0}))
  summary = predict.run(model, paths, (2, 1), str(out), progress=None)
  rows, by_path = _by_path(summary["jsonl"])
  assert "2 runs stopped while predicting it" in by_path[paths[1]]["error"]
  assert by_path[paths[2]]["error"] is None  # stopped once: tried again
  assert not inflight.exists()
  retried = predict.run(model, paths, (2, 1), str(out), progress=None,
                        retry_failed=True)
  assert retried["images"] == 1
  assert _by_path(retried["jsonl"])[1][paths[1]]["error"] is None


@pytest.mark.slow
def test_a_killed_run_keeps_its_rows_and_the_same_command_resumes(
    run, damaged, tmp_path):
  run_dir, _ = run
  paths = [p for p, _ in damaged]
  out = tmp_path / "out"
  command = [sys.executable, "-m", "tnet_tf.cli.predict",
             f"--model={run_dir}", f"--output={out}", "--batch_size=1",
             *paths]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  process = subprocess.Popen(command, cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  jsonl = out / "predictions.jsonl"
  try:
    for _ in range(1200):  # until some rows are written
      if jsonl.exists() and jsonl.read_text().count("\n") >= 3:
        break
      time.sleep(0.1)
  finally:
    process.kill()
    process.wait()
  before = jsonl.read_text().splitlines()
  assert 3 <= len(before) < len(paths)
  with open(jsonl, "a") as f:  # a row cut short by the kill
    f.write('{"path": "' + paths[len(before)])
  again = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
  assert f"({len(before)} answered before, skipped)" in again.stdout
  rows, by_path = _by_path(jsonl)
  assert sorted(r["path"] for r in rows) == sorted(paths)
  assert [json.loads(line) for line in before] == rows[:len(before)]
  with open(out / "predictions.csv") as f:
    assert [r["path"] for r in csv.DictReader(f)] == [r["path"]
                                                       for r in rows]
  # the errors again, on request; other settings are refused
  retried = subprocess.run(command + ["--retry_failed"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
  failed = sum(r["error"] is not None for r in rows)
  assert f"{failed} images, {failed} failed" in retried.stdout
  other = subprocess.run(command + ["--locations=1,1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
  assert other.returncode != 0
  assert "other settings" in other.stderr and "locations" in other.stderr
  assert "Traceback" not in other.stderr
