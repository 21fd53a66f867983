"""Batch prediction on Apache Beam: collections that outgrow one machine.

  python -m tnet_tf.cli.beam_predict --model=RUN_DIR|SAVED_MODEL \\
      --output=DIR_OR_BUCKET PATH... -- --runner=... [Beam's options]

The pipeline (``predict_pipeline``) runs Beam's ``RunInference`` with
``TNetModelHandler``: each worker loads the model once (a run directory or
a serving SavedModel, with its regions signatures for slides) and predicts
its share of the files as ``tnet_tf.inference.predict`` does, reading
slides region by region on the worker; the rows are ``predict``'s rows. A
file that fails is its error row; a batch that fails as a whole (the
worker's model call itself) comes out of RunInference's dead-letter output
and becomes error rows too: the pipeline never fails for a file. Files
that are not local (``gs://``, ``s3://``, ...) are copied to the worker's
disk through Beam's file systems, in chunks, and removed after.

Outputs, sharded (``-SSSSS-of-NNNNN``): ``OUTPUT/predictions*.jsonl`` and
``predictions*.csv`` (every row, with ``predict``'s CSV header in each
shard), ``OUTPUT/errors*.jsonl`` (the error rows only: the dead-letter
output) and, per slide, ``OUTPUT/annotations/<name>-<hash>.geojson``.
Needs the extra ``beam`` (``pip install -e ".[beam]"``).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging as std_logging
import os
import shutil
import tempfile
from typing import Any, Iterable, Optional, Sequence

try:
  import apache_beam as beam
  from apache_beam.io.filesystems import FileSystems
  from apache_beam.ml.inference import base as inference
except ImportError as err:  # the optional extra
  raise ImportError("tnet_tf.inference.beam needs Apache Beam: pip install "
                    "-e '.[beam]' (apache-beam)") from err

from tnet_tf.data import regions
from tnet_tf.inference import predict

COPY_CHUNK = 16 * 2 ** 20  # bytes per read when a remote file is copied


def _remote(path: str) -> bool:
  return "://" in path and not path.startswith("file://")


def _copy(remote: str, target: str) -> None:
  """A file of Beam's file systems to a local file, in chunks."""
  with FileSystems.open(remote) as source, open(target, "wb") as f:
    shutil.copyfileobj(source, f, COPY_CHUNK)


@contextlib.contextmanager
def local_copy(path: str):
  """A local path of ``path``: itself, or a temporary copy of a remote
  file (read through Beam's file systems in chunks), removed after."""
  if not _remote(path):
    yield path
    return
  folder = tempfile.mkdtemp(prefix="tnet_beam_")
  target = os.path.join(folder, os.path.basename(path) or "file")
  try:
    _copy(path, target)
    yield target
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def expand(patterns: Sequence[str]) -> list[str]:
  """The files of the PATH arguments: local ones as ``predict`` expands
  them (folders, globs, lists); remote globs through Beam's file systems
  (a pattern that matches nothing stays: its row says so)."""
  out = []
  for pattern in patterns:
    if not _remote(pattern):
      out += predict.expand_paths([pattern])
      continue
    try:
      found = sorted(m.path for m in FileSystems.match([pattern])[0]
                     .metadata_list)
    except Exception:  # a bucket that cannot be listed: the row says so
      found = []
    out += found or [pattern]
  return out


class _NoTorchNotice(std_logging.Filter):
  """Drops the warning RunInference logs around every model load where its
  model manager cannot be imported (it imports torch): "Resource module is
  not available ...", which is not true of this platform."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return "Resource module is not available" not in record.getMessage()


def quiet_model_loads() -> None:
  """Installs ``_NoTorchNotice`` on the root logger's handlers (in the
  process that runs the pipeline and in each worker)."""
  root = std_logging.getLogger()
  for target in [root, *root.handlers]:
    if not any(isinstance(f, _NoTorchNotice) for f in target.filters):
      target.addFilter(_NoTorchNotice())


quiet_model_loads()  # workers import this module to unpickle the handler


class TNetModelHandler(inference.ModelHandler):
  """``RunInference``'s handler of TNet: examples are file paths, results
  ``predict``'s rows (dicts). The model loads once per worker process."""

  def __init__(self, model: str, checkpoint: Optional[str] = None,
               locations: Optional[Sequence[int]] = None,
               batch_size: int = 8,
               max_pixels: int = regions.MAX_PIXELS,
               threshold: Optional[float] = None):
    super().__init__()
    self._path = model
    self._checkpoint = checkpoint
    self._locations = None if locations is None else tuple(locations)
    self._batch_size = max(1, batch_size)
    self._max_pixels = max_pixels
    self._threshold = threshold

  def load_model(self) -> predict.Predictor:
    quiet_model_loads()
    with local_copy_tree(self._path) as path:
      model = predict.load_model(path, self._checkpoint)
    default = (model.adaptive_locations if self._threshold is not None
               else model.default_locations)
    # nothing is written beside the rows (WriteAnnotations does, with
    # Beam's file systems): no output folder
    return predict.Predictor(
        model, self._locations or default, "", self._batch_size,
        max_pixels=self._max_pixels, threshold=self._threshold,
        annotations=False)

  def run_inference(self, batch: Sequence[str], model: predict.Predictor,
                    inference_args: Optional[dict] = None
                    ) -> Iterable[inference.PredictionResult]:
    """Local files in one go (images of a size batched); remote ones one
    at a time, each copied to the worker's disk while it is read."""
    if not any(_remote(p) for p in batch):
      for path, row in zip(batch, model.rows(list(batch))):
        yield inference.PredictionResult(path, row)
      return
    for path in batch:
      with local_copy(path) as local:
        for row in model.rows([local]):
          row["path"] = path
          if row["error"]:
            row["error"] = row["error"].replace(local, path)
          yield inference.PredictionResult(path, row)

  def batch_elements_kwargs(self) -> dict:
    return {"min_batch_size": 1, "max_batch_size": self._batch_size}

  def get_metrics_namespace(self) -> str:
    return "tnet"


@contextlib.contextmanager
def local_copy_tree(path: str):
  """A local folder of a model folder that may be remote (a run
  directory or a SavedModel in a bucket): copied file by file."""
  if not _remote(path):
    yield path
    return
  folder = tempfile.mkdtemp(prefix="tnet_beam_model_")
  try:
    pattern = path.rstrip("/") + "/**"
    for meta in FileSystems.match([pattern])[0].metadata_list:
      rel = meta.path[len(path.rstrip("/")) + 1:]
      target = os.path.join(folder, rel)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      _copy(meta.path, target)
    yield folder
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def failed_batch_rows(failure) -> Iterable[dict]:
  """Error rows of a batch RunInference could not run (its dead-letter
  output: ``(batch, exception)``)."""
  batch, error = failure
  for path in batch:
    yield predict.error_row(path, error)


def annotation_name(path: str) -> str:
  """The GeoJSON's name of a slide: its stem and a hash of its path (two
  slides of one name in different folders do not collide)."""
  stem = os.path.splitext(os.path.basename(path))[0] or "slide"
  return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}.geojson"


class WriteAnnotations(beam.DoFn):
  """Writes each slide's attended boxes as GeoJSON (``predict.geojson``)
  and names the file in its row."""

  def __init__(self, output: str):
    self._folder = FileSystems.join(output, "annotations")
    self._files = beam.metrics.Metrics.counter("tnet", "files")
    self._failed = beam.metrics.Metrics.counter("tnet", "failed")

  def process(self, row: dict) -> Iterable[dict]:
    self._files.inc()
    self._failed.inc(row["error"] is not None)
    if row["error"] is None and row.get("read") == "regions":
      target = FileSystems.join(self._folder, annotation_name(row["path"]))
      try:
        with FileSystems.create(target) as f:
          f.write(json.dumps(predict.geojson(row)).encode())
        row = {**row, "geojson": target}
      except Exception as err:  # the prediction stays; the row says why
        row = {**row, "error": f"{row['path']}: the annotations were not "
                               f"written to {target} ({err})"}
    yield row


def csv_line(row: dict) -> str:
  buffer = io.StringIO()
  csv.DictWriter(buffer, predict.CSV_FIELDS, lineterminator="").writerow(
      predict.csv_row(row))
  return buffer.getvalue()


def csv_header() -> str:
  return ",".join(predict.CSV_FIELDS)


def predict_pipeline(pipeline: beam.Pipeline, paths: Sequence[str],
                     handler: TNetModelHandler, output: str,
                     timeout: Optional[int] = None) -> Any:
  """Adds the prediction of ``paths`` to ``pipeline`` (see the module);
  returns the PCollection of rows."""
  results, dead = (
      pipeline
      | "Paths" >> beam.Create(list(paths))
      | "Spread" >> beam.Reshuffle()
      | "Predict" >> inference.RunInference(handler).with_exception_handling(
          timeout=timeout))
  predicted = results | "Rows" >> beam.Map(lambda result: result.inference)
  failed = dead.failed_inferences | "FailedRows" >> beam.FlatMap(
      failed_batch_rows)
  rows = ((predicted, failed) | "All" >> beam.Flatten()
          | "Annotations" >> beam.ParDo(WriteAnnotations(output)))
  prefix = FileSystems.join(output, "predictions")
  _ = (rows | "Json" >> beam.Map(json.dumps)
       | "WriteJson" >> beam.io.WriteToText(prefix, ".jsonl"))
  _ = (rows | "Csv" >> beam.Map(csv_line)
       | "WriteCsv" >> beam.io.WriteToText(prefix, ".csv",
                                           header=csv_header()))
  _ = (rows | "Errors" >> beam.Filter(lambda row: row["error"] is not None)
       | "ErrorJson" >> beam.Map(json.dumps)
       | "WriteErrors" >> beam.io.WriteToText(
           FileSystems.join(output, "errors"), ".jsonl"))
  return rows


def read_rows(output: str) -> list[dict]:
  """The rows a pipeline wrote to ``output`` (every shard)."""
  rows = []
  pattern = FileSystems.join(output, "predictions*.jsonl")
  for meta in FileSystems.match([pattern])[0].metadata_list:
    with FileSystems.open(meta.path) as f:
      rows += [json.loads(line) for line in io.TextIOWrapper(f, "utf-8")
               if line.strip()]
  return rows
