"""Classifies new images and slides with a trained TNet.

  python -m tnet_tf.cli.predict --model=RUN_DIR|SAVED_MODEL [--locations=2,1]
      [--output=predictions] [--overlays] [--batch_size=8] PATH...

PATHs are files, folders (every file below them), globs, or text files of
paths (``.txt`` / ``.lst``, one per line; relative paths are relative to
the list). Writes ``OUTPUT/predictions.csv`` and ``predictions.jsonl``, a
row per file in input order: path, height and width (level 0), pyramid
levels, the top-5 class names and probabilities, the attended boxes
(y0, x0, y1, x1 in full-resolution pixels, with their level and the
location module's probability), ms per image and the error, if any.
``--overlays`` draws the boxes on each image (on the overview of a slide)
in ``OUTPUT/overlays/``; slides also get ``OUTPUT/annotations/*.geojson``,
the boxes as annotations QuPath and OpenSeadragon-based viewers open over
the slide.

Images that fit in memory (up to ``--max_megapixels``) are decoded whole
and batched by size (``--batch_size``); pyramidal or larger files are read
region by region (``tnet_tf.data.regions``), with the run directory or a
SavedModel's regions signatures (``tnet_tf.inference.staged``).

No file can stop a run: whatever fails for one file (it cannot be opened,
read or decoded, it is truncated or damaged anywhere, the model call fails
for it) is that file's row, its error naming the file and the problem, and
the run goes on; the exit status is 1 if any failed. Each row is written
(and flushed) as its file is done, so a killed run keeps its rows, and the
same command again skips the files it answered (``--noresume`` starts over,
``--retry_failed`` tries the error rows again).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tnet_tf import data as data_lib
from tnet_tf.data import regions
from tnet_tf.inference import export
from tnet_tf.inference import staged
from tnet_tf.training import runs

LIST_EXTENSIONS = (".txt", ".lst")
CSV_FIELDS = ("path", "height", "width", "pyramid_levels", "read",
              "top1_class", "top1_probability", "top5_classes",
              "top5_probabilities", "num_locations", "boxes", "ms", "error")


# ------------------------------------------------------------------ paths
def expand_paths(args: Iterable[str]) -> list[str]:
  """Files of the PATH arguments, in order (folders sorted, recursively;
  a glob that matches nothing, and a path that does not exist, stay as
  they are: their rows say so)."""
  out = []
  for arg in args:
    if os.path.isdir(arg):
      for root, dirs, names in os.walk(arg):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, n) for n in sorted(names)
                if not n.startswith(".")]
    elif any(c in arg for c in "*?[") and not os.path.exists(arg):
      out += sorted(glob.glob(arg, recursive=True)) or [arg]
    elif (os.path.isfile(arg) and
          os.path.splitext(arg)[1].lower() in LIST_EXTENSIONS):
      base = os.path.dirname(arg)
      with open(arg, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
      out += expand_paths(
          os.path.join(base, line) if not os.path.isabs(line) else line
          for line in lines if line and not line.startswith("#"))
    else:
      out.append(arg)
  return out


# ---------------------------------------------------------------- models
class KerasModel:
  """A run directory's model: dense batches and lazily read slides."""

  lazy = True

  def __init__(self, path: str, checkpoint: Optional[str] = None):
    self.path, self.checkpoint = os.path.abspath(path), checkpoint
    loaded = runs.load(path, checkpoint)
    self.channels = data_lib.channels(loaded.experiment.data)
    self.serving = export.Serving(
        loaded.task, loaded.class_names, self.channels,
        halting=runs.halting_of(loaded))
    self.levels = loaded.task.levels
    self.default_locations = tuple(loaded.task.default_locations)
    self.adaptive = self.serving.adaptive
    self.adaptive_locations = (self.serving.adaptive_max_locations,)

  def __call__(self, images, locations, threshold=None):
    if threshold is not None:
      out = self.serving.adaptive_response(
          images, tf.constant(threshold, tf.float32),
          tf.constant(locations[0], tf.int32))
    else:
      kwargs = {} if self.levels == 1 else {"locations": list(locations)}
      out = self.serving.response(images, **kwargs)
    return {k: v.numpy() for k, v in out.items()}


class SavedModel:
  """A serving SavedModel (``tnet_tf.inference.export``): dense batches, and
  images read region by region through its ``regions_*`` signatures
  (``tnet_tf.inference.staged``) where it has them."""

  def __init__(self, path: str):
    self.path, self.checkpoint = os.path.abspath(path), None
    self._model = tf.saved_model.load(path)
    self._serve = self._model.signatures["serving_default"]
    meta = self._model.signatures["metadata"]()
    self.levels = int(meta["levels"])
    self.default_locations = tuple(int(k) for k in
                                   meta["default_locations"].numpy())
    spec = self._serve.structured_input_signature[1]["images"]
    self.channels = int(spec.shape[-1])
    self.adaptive = "serve_adaptive" in self._model.signatures
    self.adaptive_locations = ((int(meta["adaptive_max_locations"]),)
                               if "adaptive_max_locations" in meta
                               else self.default_locations[:1])
    self.lazy = all(name in self._model.signatures
                    for name in staged.SIGNATURES)
    self._slides = staged.SlideModel(self._model) if self.lazy else None

  def __call__(self, images, locations, threshold=None):
    if isinstance(images, regions.Regions):
      if threshold is not None:
        raise regions.RegionReadError(
            f"{images.table.paths[0]}: adaptive attention on an image read "
            "region by region needs the run directory (--model=RUN_DIR)")
      return self._slides.respond(images, locations)
    kwargs = {"images": tf.constant(images)}
    if threshold is not None:
      out = self._model.signatures["serve_adaptive"](
          threshold=tf.constant(threshold, tf.float32),
          max_locations=tf.constant(locations[0], tf.int32), **kwargs)
      return {k: v.numpy() for k, v in out.items()}
    if self.levels > 1:
      kwargs["locations"] = tf.constant(list(locations), tf.int32)
    return {k: v.numpy() for k, v in self._serve(**kwargs).items()}


def load_model(path: str, checkpoint: Optional[str] = None):
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return SavedModel(path)
  return KerasModel(path, checkpoint)


# ---------------------------------------------------------------- images
def _channels(pixels: np.ndarray, channels: int) -> np.ndarray:
  if pixels.shape[-1] == channels:
    return pixels
  if channels == 3:
    return np.repeat(pixels, 3, axis=-1)
  return np.round(pixels.astype(np.float32) @ np.array(
      [[0.299], [0.587], [0.114]], np.float32)).astype(np.uint8)


def open_image(path: str, max_pixels: int):
  """``("array", pixels, source)`` for an image decoded whole, or
  ``("lazy", None, source)`` for one read region by region."""
  source = regions.open_source(path, max_pixels)
  h, w = source.level_shapes[0]
  if len(source.level_shapes) == 1 and h * w <= max_pixels:
    pixels = source.read(0, 0, h, 0, w)
    source.close()
    return "array", pixels, source
  return "lazy", None, source


def _row(path: str, source, out: Optional[dict], index: int, ms: float,
         read: str, error: Optional[str] = None) -> dict:
  row = {"path": path, "height": None, "width": None, "pyramid_levels": None,
         "read": read, "top5": [], "boxes": [], "ms": round(ms, 3),
         "error": error}
  if source is not None:
    row["height"], row["width"] = (int(v) for v in source.level_shapes[0])
    row["pyramid_levels"] = len(source.level_shapes)
  if out is not None:
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in out["top5_names"][index]]
    row["top5"] = [{"class": n, "probability": float(p)} for n, p in zip(
        names, out["top5_probabilities"][index])]
    levels = np.asarray(out["levels"])
    levels = levels[index] if levels.ndim == 2 else levels
    boxes = out["boxes"][index]
    probs = (out["location_probabilities"][index]
             if "location_probabilities" in out
             else np.full(len(boxes), np.nan))
    read = (out["attended"][index].astype(bool) if "attended" in out
            else np.ones(len(boxes), bool))
    row["boxes"] = [
        {"level": int(lv), "y0": float(b[0]), "x0": float(b[1]),
         "y1": float(b[2]), "x1": float(b[3]),
         "probability": None if np.isnan(p) else float(p)}
        for b, lv, p, keep in zip(boxes, levels, probs, read) if keep]
    row["num_locations"] = len(row["boxes"]) - 1
  return row


def _message(err: Exception, path: str) -> str:
  """The line of an error that names the file (Keras and TF wrap the
  reader's error in lines about the layer call)."""
  text = err.message if isinstance(err, tf.errors.OpError) else str(err)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  named = [line for line in lines if path in line]
  if named:
    return named[0]
  return f"{path}: {type(err).__name__}: {lines[0] if lines else 'failed'}"


def error_row(path: str, error) -> dict:
  """The row of a file nothing was predicted for: ``error`` an exception
  or a message."""
  if isinstance(error, BaseException):
    message = _message(error, path)
  else:
    message = str(error) if path in str(error) else f"{path}: {error}"
  return _row(path, None, None, 0, 0.0, "", message)


def _dense_error(path: str, source, err: Exception) -> dict:
  """The error row of an image decoded whole (its size is known)."""
  return _row(path, source, None, 0, 0.0, "whole", _message(err, path))


def csv_row(row: dict) -> dict:
  """A row as its CSV line's fields (``CSV_FIELDS``)."""
  top = row["top5"]
  return {
      "path": row["path"], "height": row["height"], "width": row["width"],
      "pyramid_levels": row["pyramid_levels"], "read": row["read"],
      "top1_class": top[0]["class"] if top else "",
      "top1_probability": f"{top[0]['probability']:.6f}" if top else "",
      "top5_classes": ";".join(t["class"] for t in top),
      "top5_probabilities": ";".join(f"{t['probability']:.6f}" for t in top),
      "num_locations": row.get("num_locations", ""),
      "boxes": json.dumps([[b["level"], round(b["y0"], 2), round(b["x0"], 2),
                            round(b["y1"], 2), round(b["x1"], 2)]
                           for b in row["boxes"]]),
      "ms": row["ms"], "error": row["error"] or ""}


# --------------------------------------------------------------- outputs
def geojson(row: dict) -> dict:
  """The attended boxes (past level 1) as a GeoJSON FeatureCollection of
  annotation rectangles in level-0 pixels (x right, y down), as QuPath
  imports them."""
  colours = {2: [255, 0, 0], 3: [0, 160, 255], 4: [255, 200, 0]}
  features = []
  for i, b in enumerate(row["boxes"]):
    if b["level"] <= 1:
      continue
    ring = [[b["x0"], b["y0"]], [b["x1"], b["y0"]], [b["x1"], b["y1"]],
            [b["x0"], b["y1"]], [b["x0"], b["y0"]]]
    features.append({
        "type": "Feature", "id": f"tnet-{i}",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "objectType": "annotation",
            "name": f"TNet level {b['level']} #{i}",
            "classification": {"name": f"TNet level {b['level']}",
                               "color": colours.get(b["level"],
                                                    [200, 200, 200])},
            "measurements": ({"location probability": b["probability"]}
                             if b["probability"] is not None else {})}})
  return {"type": "FeatureCollection", "features": features}


def overview(source, pixels: Optional[np.ndarray], side: int = 1024):
  """The image to draw on, and its scale from level-0 pixels."""
  if pixels is not None:
    return pixels, 1.0
  level = 0
  for lv, (h, w) in enumerate(source.level_shapes):
    if max(h, w) >= side:
      level = lv
  h, w = source.level_shapes[level]
  if h * w > regions.MAX_PIXELS:
    raise regions.RegionReadError(f"{source.name}: no pyramid level small "
                                  "enough to draw the overlay on")
  return source.read(level, 0, h, 0, w), 1.0 / source.downsample(level)[0]


def write_overlay(row: dict, image: np.ndarray, scale: float,
                  path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from tnet_tf import visualize
  boxes = np.array([[b["y0"], b["x0"], b["y1"], b["x1"]]
                    for b in row["boxes"]], np.float64).reshape(-1, 4)
  levels = np.array([b["level"] for b in row["boxes"]], int)
  h, w = image.shape[:2]
  fig, ax = plt.subplots(figsize=(6, 6 * h / w))
  top = row["top5"][0] if row["top5"] else {"class": "?", "probability": 0}
  visualize.draw_attention(
      image, boxes * scale, levels, ax,
      title=f"{os.path.basename(row['path'])}: {top['class']} "
            f"({top['probability']:.2f})")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _stem(path: str, taken: set) -> str:
  stem = os.path.splitext(os.path.basename(path))[0] or "image"
  name, i = stem, 1
  while name in taken:
    i += 1
    name = f"{stem}_{i}"
  taken.add(name)
  return name


# --------------------------------------------------------------- the run
class Predictor:
  """Runs a model over paths (see the module): ``rows(paths)`` yields a row
  per path, in input order, as soon as its file is done (images decoded
  whole wait for at most ``batch_size - 1`` more of their kind). Whatever
  goes wrong with one file becomes that file's error row."""

  def __init__(self, model, locations: Sequence[int], output: str,
               batch_size: int = 8, overlays: bool = False,
               max_pixels: int = regions.MAX_PIXELS,
               threshold: Optional[float] = None, annotations: bool = True):
    self.model = model
    self.threshold = threshold
    self.annotations = annotations  # a slide's GeoJSON beside its row
    self.on_start = None  # called with each path before it is opened
    self.locations = tuple(locations)
    self.output = output
    self.batch_size = max(1, batch_size)
    self.overlays = overlays
    self.max_pixels = max_pixels
    self._stems = set()

  def reserve_names(self, paths: Iterable[str]) -> None:
    """Output names (overlays, GeoJSON) of ``paths`` not to reuse."""
    self._stems.update(os.path.splitext(os.path.basename(p))[0]
                       for p in paths)

  def rows(self, paths: Sequence[str]) -> Iterable[dict]:
    pending = []  # [(path, pixels, source)] decoded whole, not yet run

    def run_pending() -> list[dict]:
      """The pending images' rows (before any later file's: input order)."""
      batch = list(pending)
      pending.clear()
      return self._dense(batch) if batch else []

    for path in paths:
      t0 = time.perf_counter()
      if self.on_start is not None:
        self.on_start(path)
      try:
        kind, pixels, source = open_image(path, self.max_pixels)
      except Exception as err:  # every failure is this file's row
        yield from run_pending()
        yield error_row(path, err)
        continue
      if kind == "array":
        pending.append((path, pixels, source))
        if len(pending) == self.batch_size:
          yield from run_pending()
        continue
      yield from run_pending()
      yield self._lazy(path, source, t0)
    yield from run_pending()

  def _dense(self, items) -> list[dict]:
    """Rows of images decoded whole, batched by size; a batch that fails
    is run image by image, so only the failing images get error rows."""
    rows = [None] * len(items)
    groups = {}
    for i, (path, pixels, source) in enumerate(items):
      try:
        pixels = _channels(pixels, self.model.channels)
      except Exception as err:
        rows[i] = _dense_error(path, source, err)
        continue
      groups.setdefault(pixels.shape, []).append((i, pixels, source))
    for group in groups.values():
      try:
        self._group(items, group, rows)
      except Exception:
        for member in group:
          try:
            self._group(items, [member], rows)
          except Exception as err:
            i, _, source = member
            rows[i] = _dense_error(items[i][0], source, err)
    return rows

  def _group(self, items, group, rows) -> None:
    t0 = time.perf_counter()
    out = self.model(np.stack([p for _, p, _ in group]), self.locations,
                     self.threshold)
    ms = (time.perf_counter() - t0) * 1e3 / len(group)
    for j, (i, pixels, source) in enumerate(group):
      rows[i] = _row(items[i][0], source, out, j, ms, "whole")
      self._extras(rows[i], source, pixels, slide=False)

  def _lazy(self, path, source, t0) -> dict:
    try:
      if not self.model.lazy:
        raise regions.RegionReadError(
            f"{path}: a pyramidal or large image is read region by region, "
            "which needs the run directory (--model=RUN_DIR) or a "
            "SavedModel with the regions signatures (a TNet of more than one"
            " level, exported by this version)")
      out = self.model(
          regions.Regions([source], max_pixels=self.max_pixels),
          self.locations, self.threshold)
      ms = (time.perf_counter() - t0) * 1e3
      row = _row(path, source, out, 0, ms, "regions")
      h, w = source.level_shapes[0]
      row["pixels_read_fraction"] = source.decoded_pixels / (h * w)
      self._extras(row, source, None, slide=True)
      return row
    except Exception as err:  # every failure is this file's row
      return _row(path, source, None, 0, 0.0, "regions",
                  _message(err, path))
    finally:
      source.close()

  def _extras(self, row, source, pixels, slide: bool) -> None:
    """The slide's GeoJSON and the overlay; a failure to write them is the
    row's error (its prediction stays)."""
    slide = slide and self.annotations
    if not (self.overlays or slide):
      return
    try:
      stem = _stem(row["path"], self._stems)
      if slide:
        folder = os.path.join(self.output, "annotations")
        os.makedirs(folder, exist_ok=True)
        row["geojson"] = os.path.join(folder, stem + ".geojson")
        with open(row["geojson"], "w", encoding="utf-8") as f:
          json.dump(geojson(row), f)
      if self.overlays:
        folder = os.path.join(self.output, "overlays")
        os.makedirs(folder, exist_ok=True)
        image, scale = overview(source, pixels)
        row["overlay"] = os.path.join(folder, stem + ".png")
        write_overlay(row, image, scale, row["overlay"])
    except Exception as err:
      row["error"] = _message(err, row["path"])


class Output:
  """``predictions.jsonl`` (every row, the record) and ``predictions.csv``
  in a folder, written a row at a time and flushed, so that a run that is
  killed keeps every row it finished. Opened on a folder that has rows
  (``resume``), it keeps them (``retry_failed``: the error rows go) and
  ``answered`` says whose paths they are; a last line cut short by a kill
  is dropped, and the kept rows are rewritten atomically (a kill then
  loses nothing). ``settings`` (model, locations, ...) are kept in
  ``predictions.settings.json``: rows of other settings in the folder are
  an error, not a mix.

  The files being predicted are listed in ``predictions.inflight.json``
  (``started``) until their rows are written, with the number of runs that
  stopped while they were in flight: ``stalled`` gives the files two runs
  died on (a reader that crashes the process, not only a kill), which get
  an error row instead of a third try (``retry_failed`` tries them)."""

  STALLED_AFTER = 2  # runs that stopped while the file was in flight

  def __init__(self, folder: str, settings: dict, resume: bool = True,
               retry_failed: bool = False):
    os.makedirs(folder, exist_ok=True)
    self.csv = os.path.join(folder, "predictions.csv")
    self.jsonl = os.path.join(folder, "predictions.jsonl")
    self._inflight_path = os.path.join(folder, "predictions.inflight.json")
    settings_path = os.path.join(folder, "predictions.settings.json")
    kept = self._read() if resume else []
    if kept and os.path.isfile(settings_path):
      with open(settings_path, encoding="utf-8") as f:
        before = json.load(f)
      changed = sorted(k for k in set(before) | set(settings)
                       if before.get(k) != settings.get(k))
      if changed:
        described = ", ".join(f"{k}: {before.get(k)!r} now "
                              f"{settings.get(k)!r}" for k in changed)
        raise ValueError(
            f"{folder} holds {len(kept)} rows predicted with other settings "
            f"({described}); use another --output, or --noresume to start "
            "it over")
    if retry_failed:
      kept = [row for row in kept if row.get("error") is None]
    self.answered = {row["path"] for row in kept}
    self._inflight = self._read_inflight() if resume else {}
    self.stalled = set() if retry_failed else {
        path for path, runs in self._inflight.items()
        if runs >= self.STALLED_AFTER and path not in self.answered}
    _write_atomically(settings_path, json.dumps(settings, indent=1))
    self._rewrite(kept)
    self._j = open(self.jsonl, "a", encoding="utf-8")
    self._c = open(self.csv, "a", newline="", encoding="utf-8")
    self._writer = csv.DictWriter(self._c, CSV_FIELDS)

  def _rewrite(self, rows: list[dict]) -> None:
    """The kept rows, each file replaced whole (never half written)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS)
    writer.writeheader()
    for row in rows:
      writer.writerow(csv_row(row))
    _write_atomically(self.jsonl, "".join(json.dumps(r) + "\n"
                                          for r in rows))
    _write_atomically(self.csv, buffer.getvalue())

  def _read_inflight(self) -> dict:
    try:
      with open(self._inflight_path, encoding="utf-8") as f:
        before = json.load(f)
    except (OSError, ValueError):
      return {}
    # the run that wrote it stopped with these in flight: one more each
    return {path: int(runs) + 1 for path, runs in before.items()
            if path not in self.answered}

  def started(self, path: str) -> None:
    """``path`` is being predicted (until its row is written)."""
    self._inflight.setdefault(path, 0)
    self._save_inflight()

  def _save_inflight(self) -> None:
    _write_atomically(self._inflight_path, json.dumps(self._inflight))

  def _read(self) -> list[dict]:
    if not os.path.isfile(self.jsonl):
      return []
    rows = []
    with open(self.jsonl, encoding="utf-8") as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:  # cut short by a kill
          continue
    return [row for row in rows if isinstance(row, dict) and "path" in row]

  def _write(self, row: dict) -> None:
    self._writer.writerow(csv_row(row))
    self._j.write(json.dumps(row) + "\n")

  def _flush(self) -> None:
    for f in (self._c, self._j):
      f.flush()
      os.fsync(f.fileno())

  def write(self, row: dict) -> None:
    self._write(row)
    self._flush()
    if self._inflight.pop(row["path"], None) is not None:
      self._save_inflight()

  def close(self, finished: bool) -> None:
    """``finished``: every file has its row (nothing is in flight)."""
    self._c.close()
    self._j.close()
    if finished and os.path.isfile(self._inflight_path):
      os.remove(self._inflight_path)


def _write_atomically(path: str, text: str) -> None:
  with open(path + ".part", "w", encoding="utf-8", newline="") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + ".part", path)


def run(model, paths: Sequence[str], locations: Sequence[int], output: str,
        batch_size: int = 8, overlays: bool = False,
        max_pixels: int = regions.MAX_PIXELS, progress=sys.stderr,
        threshold: Optional[float] = None, resume: bool = True,
        retry_failed: bool = False) -> dict:
  """Predicts every path not answered yet in ``output`` (``resume``; see
  ``Output``), writing each row as its file is done; returns ``{"images",
  "failed", "skipped", "csv", "jsonl", "seconds"}`` (``images`` and
  ``failed`` count the rows of this call)."""
  settings = {"model": getattr(model, "path", type(model).__name__),
              "checkpoint": getattr(model, "checkpoint", None),
              "locations": [int(k) for k in locations],
              "threshold": threshold, "max_pixels": int(max_pixels)}
  out = Output(output, settings, resume, retry_failed)
  todo = [p for p in paths if p not in out.answered]
  skipped = len(paths) - len(todo)
  predictor = Predictor(model, locations, output, batch_size, overlays,
                        max_pixels, threshold)
  predictor.on_start = out.started
  predictor.reserve_names(out.answered)  # their outputs keep their names
  failed, done, start = 0, 0, time.perf_counter()
  if progress is not None and skipped:
    progress.write(f"{skipped} of {len(paths)} files already answered in "
                   f"{output}: skipped\n")

  def rows():
    for path in [p for p in todo if p in out.stalled]:
      yield error_row(path, f"{path}: {Output.STALLED_AFTER} runs stopped "
                      "while predicting it (a reader that crashes the "
                      "process?); --retry_failed tries it again")
    yield from predictor.rows([p for p in todo if p not in out.stalled])

  finished = False
  try:
    for row in rows():
      out.write(row)
      done += 1
      failed += row["error"] is not None
      if progress is not None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        left = (len(todo) - done) / rate
        progress.write(f"\r{done}/{len(todo)} images, {rate:.1f} images/s,"
                       f" {failed} failed, {int(left) // 60}m"
                       f"{int(left) % 60:02d}s left")
        progress.flush()
    finished = True
  finally:
    out.close(finished)
  if progress is not None:
    progress.write("\n")
  return {"images": done, "failed": failed, "skipped": skipped,
          "csv": out.csv, "jsonl": out.jsonl,
          "seconds": time.perf_counter() - start}
