"""Batch prediction on Apache Beam: the rows equal predict's, on a mixed
folder of images, slides and damaged files; a failing batch becomes error
rows, never a failed pipeline."""
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem
import numpy as np
import pytest

from tnet_tf.inference import beam as beam_lib
from tnet_tf.inference import predict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
VARYING = ("ms", "geojson")  # timings; where each writes the annotations


@pytest.fixture(scope="module")
def run(fake_run):
  return fake_run[0]


@pytest.fixture(scope="module")
def mixed(damaged):
  return [p for p, _ in damaged]


def _assert_same_row(a, b):
  """Equal but for what varies run to run, probabilities to 1e-5 (the
  batches differ: float rounding)."""
  def split(row):
    probs = [t["probability"] for t in row["top5"]] + [
        x["probability"] or 0.0 for x in row["boxes"]]
    rest = {k: v for k, v in row.items() if k not in VARYING}
    rest["top5"] = [t["class"] for t in row["top5"]]
    rest["boxes"] = [{k: v for k, v in x.items() if k != "probability"}
                     for x in row["boxes"]]
    return rest, probs
  (rest_a, probs_a), (rest_b, probs_b) = split(a), split(b)
  assert rest_a == rest_b, a["path"]
  np.testing.assert_allclose(probs_a, probs_b, atol=1e-5)


def test_beam_rows_equal_predicts_rows(run, mixed, tmp_path):
  listing = tmp_path / "files.txt"
  listing.write_text("\n".join(mixed) + "\n")
  out = tmp_path / "beam"
  result = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.beam_predict", f"--model={run}",
       f"--output={out}", "--batch_size=4", str(listing), "--",
       "--runner=DirectRunner", "--direct_num_workers=2",
       "--direct_running_mode=multi_processing"],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  rows = beam_lib.read_rows(str(out))
  with open(predict.run(predict.load_model(run), mixed, (2, 1),
                        str(tmp_path / "predict"),
                        progress=None)["jsonl"]) as f:
    expected = [json.loads(line) for line in f]
  failed = sum(r["error"] is not None for r in expected)
  assert result.returncode == 1  # some failed
  assert f"{len(mixed)} images, {failed} failed" in result.stdout
  assert 0 < failed < len(mixed)
  by_path = {r["path"]: r for r in rows}
  assert len(rows) == len(by_path) == len(mixed)  # one row each
  for row in expected:
    _assert_same_row(by_path[row["path"]], row)
  # the dead-letter output: the error rows, and only those
  errors = []
  for path in glob.glob(str(out / "errors*.jsonl")):
    with open(path) as f:
      errors += [json.loads(line) for line in f]
  assert sorted(r["path"] for r in errors) == sorted(
      r["path"] for r in expected if r["error"])
  table = []
  for path in glob.glob(str(out / "predictions*.csv")):
    with open(path) as f:
      table += list(csv.DictReader(f))
  assert sorted(r["path"] for r in table) == sorted(mixed)
  slides = [r for r in rows if r["read"] == "regions" and not r["error"]]
  assert slides and all(os.path.isfile(r["geojson"]) for r in slides)


class _FailingHandler(beam_lib.TNetModelHandler):
  """A worker whose model call fails for any batch holding ``bad``."""

  def __init__(self, model, bad):
    super().__init__(model, batch_size=2)
    self._bad = bad

  def run_inference(self, batch, model, inference_args=None):
    if any(p.endswith(self._bad) for p in batch):
      raise RuntimeError("the accelerator fell over")
    return super().run_inference(batch, model, inference_args)


def test_a_batch_that_fails_becomes_error_rows(run, mixed, tmp_path):
  paths = [p for p in mixed if os.path.dirname(p) == os.path.dirname(
      mixed[0])]  # the good ones
  out = str(tmp_path / "out")
  with beam.Pipeline() as pipeline:
    beam_lib.predict_pipeline(pipeline, paths,
                              _FailingHandler(run, "photo.png"), out)
  rows = {r["path"]: r for r in beam_lib.read_rows(out)}
  assert sorted(rows) == sorted(paths)
  bad = rows[[p for p in paths if p.endswith("photo.png")][0]]
  assert "the accelerator fell over" in bad["error"]
  assert bad["path"] in bad["error"]
  assert any(r["error"] is None for r in rows.values())


def test_one_saved_model_serves_the_pipeline_slides_included(
    fake_run, mixed, tmp_path):
  """Workers that ship only the SavedModel: the same rows as the run
  directory's, the slides read through its regions signatures."""
  run_dir, saved = fake_run
  paths = [p for p in mixed if os.path.dirname(p) == os.path.dirname(
      mixed[0])] + [p for p in mixed if "cut_half" in p]
  out = str(tmp_path / "out")
  with beam.Pipeline() as pipeline:
    beam_lib.predict_pipeline(
        pipeline, paths, beam_lib.TNetModelHandler(saved, batch_size=2), out)
  rows = {r["path"]: r for r in beam_lib.read_rows(out)}
  with open(predict.run(predict.load_model(run_dir), paths, (2, 1),
                        str(tmp_path / "predict"),
                        progress=None)["jsonl"]) as f:
    expected = [json.loads(line) for line in f]
  assert sorted(rows) == sorted(paths)
  assert any(r["read"] == "regions" and not r["error"] for r in expected)
  for row in expected:
    _assert_same_row(rows[row["path"]], row)


class _Bucket(LocalFileSystem):
  """A remote file system as Beam sees one (scheme ``bucket://``), kept in
  a local folder: the workers' copying of remote files and models."""

  root = None

  @classmethod
  def scheme(cls):
    return "bucket"

  def _local(self, path):
    if not path.startswith("bucket://"):  # LocalFileSystem's own calls
      return path
    return os.path.join(self.root, path[len("bucket://"):])

  def join(self, base, *paths):
    return "/".join([base.rstrip("/"), *paths])

  def split(self, path):
    return tuple(path.rsplit("/", 1))

  def _list(self, prefix):
    for meta in super()._list(self._local(prefix)):
      yield FileMetadata(
          "bucket://" + os.path.relpath(meta.path, self.root),
          meta.size_in_bytes, meta.last_updated_in_seconds)

  def exists(self, path):
    return super().exists(self._local(path))

  def open(self, path, *args, **kwargs):
    return super().open(self._local(path), *args, **kwargs)

  def size(self, path):
    return super().size(self._local(path))

  def metadata(self, path):
    meta = super().metadata(self._local(path))
    return FileMetadata(path, meta.size_in_bytes,
                        meta.last_updated_in_seconds)


def test_remote_files_and_model_are_copied_to_the_worker(fake_run, mixed,
                                                        tmp_path):
  run_dir, _ = fake_run
  _Bucket.root = str(tmp_path / "bucket")
  names = ["slide.tif", "photo.png", "slide.cut_half.tif"]
  local = {os.path.basename(p): p for p in mixed}
  os.makedirs(tmp_path / "bucket" / "scans")
  for name in names:
    shutil.copy(local[name], tmp_path / "bucket" / "scans" / name)
  shutil.copytree(run_dir, tmp_path / "bucket" / "models" / "run")
  paths = beam_lib.expand(["bucket://scans/*"])
  assert sorted(paths) == sorted(f"bucket://scans/{n}" for n in names)
  out = str(tmp_path / "out")
  with beam.Pipeline() as pipeline:
    beam_lib.predict_pipeline(
        pipeline, paths, beam_lib.TNetModelHandler("bucket://models/run"),
        out)
  rows = {r["path"]: r for r in beam_lib.read_rows(out)}
  with open(predict.run(predict.load_model(run_dir),
                        [local[n] for n in names], (2, 1),
                        str(tmp_path / "predict"),
                        progress=None)["jsonl"]) as f:
    expected = {os.path.basename(r["path"]): r for r in map(json.loads, f)}
  for name in names:
    row = rows[f"bucket://scans/{name}"]
    want = dict(expected[name], path=row["path"])
    if want["error"]:  # names the file as the pipeline was given it
      want["error"] = want["error"].replace(local[name], row["path"])
    _assert_same_row(row, want)
  assert rows["bucket://scans/slide.cut_half.tif"]["error"].startswith(
      "bucket://scans/slide.cut_half.tif: ")
  assert not glob.glob(os.path.join(tempfile.gettempdir(), "tnet_beam_*",
                                    "slide.tif"))  # the copies are gone
