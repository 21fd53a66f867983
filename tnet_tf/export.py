"""SavedModel export for serving, with the attention adjustable per request.

  python -m tnet_tf.export --run_dir=runs/fmow/tnet_stage2 [--output=DIR]

Signatures (a TNet; a baseline has the same without ``locations`` and the
attention record):
- ``serving_default``: ``images`` uint8 ``[B, H, W, C]`` of any height and
  width, ``locations`` int32 ``[levels - 1]`` (cells attended per region at
  each level after the first; 0 stops there) →
  ``logits`` and ``probabilities`` ``[B, classes]``, ``top5_classes``, ``top5_probabilities``,
  ``top5_names`` ``[B, 5]`` and the attention record: ``boxes`` ``[B, N, 4]``
  (y0, x0, y1, x1 in input pixels), ``levels`` ``[B, N]``,
  ``location_probabilities`` ``[B, N]`` (the location module's probability of
  each attended cell; 1 for the whole image) and ``feature_weights``
  ``[B, N]``.
- ``serve_bytes``: ``encoded`` string ``[B]`` (JPEG, PNG, BMP or GIF bytes,
  each image at its own size) and ``locations`` → the same outputs.
- ``metadata``: class names, default locations, levels, grid size, base
  resolution.
Bad requests (undecodable bytes, locations out of range, wrong dtypes or
ranks) fail that request with an error naming the problem; the loaded model
keeps serving. The model loads with ``tf.saved_model.load`` or
``saved_model_cli`` in a process that never imports this project.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import TNet


class Serving(tf.Module):
  """A TNet or a baseline classifier behind serving signatures."""

  def __init__(self, model: keras.Model, class_names: Sequence[str],
               channels: int = 3,
               default_locations: Optional[Sequence[int]] = None):
    super().__init__()
    if not isinstance(model, TNet):
      # the same layers without the training-only add_loss closures (L2),
      # which a SavedModel cannot serialise
      model = keras.Model(model.inputs, model.outputs, name=model.name)
    self.model = model
    self.is_tnet = isinstance(model, TNet)
    self.channels = channels
    cfg = getattr(model, "config", None)
    self.num_levels = cfg.levels if self.is_tnet else 1
    self.cells = cfg.grid_size ** 2 if self.is_tnet else 0
    self.class_names = tf.constant([str(c) for c in class_names])
    default = (list(default_locations if default_locations is not None
                    else cfg.locations) if self.is_tnet else [])
    default += [0] * (self.num_levels - 1 - len(default))
    self.default_locations = tf.constant(default, tf.int32)
    image_spec = tf.TensorSpec([None, None, None, channels], tf.uint8,
                               name="images")
    bytes_spec = tf.TensorSpec([None], tf.string, name="encoded")
    loc_spec = tf.TensorSpec([self.num_levels - 1], tf.int32,
                             name="locations")
    if self.is_tnet:
      self.serve = tf.function(self._serve_images,
                               input_signature=[image_spec, loc_spec])
      self.serve_bytes = tf.function(self._serve_bytes,
                                     input_signature=[bytes_spec, loc_spec])
    else:
      self.serve = tf.function(lambda images: self._serve_images(images),
                               input_signature=[image_spec])
      self.serve_bytes = tf.function(
          lambda encoded: self._serve_bytes(encoded),
          input_signature=[bytes_spec])
    self.metadata = tf.function(self._metadata, input_signature=[])

  def _metadata(self):
    cfg = getattr(self.model, "config", None)
    return {"class_names": self.class_names,
            "default_locations": self.default_locations,
            "levels": tf.constant(self.num_levels),
            "grid_size": tf.constant(cfg.grid_size if self.is_tnet else 0),
            "base_resolution": tf.constant(
                cfg.base_resolution if self.is_tnet else 0)}

  def _check_locations(self, locations):
    checks = [
        tf.debugging.assert_non_negative(
            locations, message="locations must be >= 0 per level"),
        tf.debugging.assert_less_equal(
            locations, self.cells,
            message=f"locations per level must be <= {self.cells} (the "
                    "cells of the attention grid)")]
    with tf.control_dependencies(checks):
      return tf.identity(locations)

  def _outputs(self, images, locations=None):
    """The response for a batch of same-size uint8 images."""
    classes = int(self.class_names.shape[0])
    if self.is_tnet:
      locations = self._check_locations(locations)
      out = self.model(images, training=False, locations=locations)
      logits = out["logits"]
    else:
      logits = self.model(tf.cast(images, tf.float32), training=False)
    logits = tf.cast(logits, tf.float32)
    probs = tf.nn.softmax(logits)
    top = tf.math.top_k(probs, min(5, classes))
    result = {"logits": logits, "probabilities": probs,
              "top5_classes": top.indices,
              "top5_probabilities": top.values,
              "top5_names": tf.gather(self.class_names, top.indices)}
    if self.is_tnet:
      batch = tf.shape(images)[0]
      log_p = out["location_log_probs"]
      result.update({
          "boxes": out["boxes"],
          "levels": tf.tile(out["levels"][None], [batch, 1]),
          "location_probabilities": tf.concat(
              [tf.ones([batch, 1]), tf.exp(log_p)], axis=1),
          "feature_weights": tf.cast(out["feature_weights"], tf.float32)})
    return result

  def _serve_images(self, images, locations=None):
    return self._outputs(images, locations)

  def _serve_bytes(self, encoded, locations=None):
    def one(data):
      image = tf.io.decode_image(data, channels=self.channels,
                                 expand_animations=False)
      out = self._outputs(image[None], locations)
      return {k: v[0] for k, v in out.items()}

    spec = {k: tf.TensorSpec(v.shape[1:], v.dtype) for k, v in
            self._output_specs().items()}
    return tf.map_fn(one, encoded, fn_output_signature=spec)

  def _output_specs(self) -> dict:
    classes = int(self.class_names.shape[0])
    top = min(5, classes)
    specs = {"logits": tf.TensorSpec([None, classes], tf.float32),
             "probabilities": tf.TensorSpec([None, classes], tf.float32),
             "top5_classes": tf.TensorSpec([None, top], tf.int32),
             "top5_probabilities": tf.TensorSpec([None, top], tf.float32),
             "top5_names": tf.TensorSpec([None, top], tf.string)}
    if self.is_tnet:
      specs.update({
          "boxes": tf.TensorSpec([None, None, 4], tf.float32),
          "levels": tf.TensorSpec([None, None], tf.int32),
          "location_probabilities": tf.TensorSpec([None, None], tf.float32),
          "feature_weights": tf.TensorSpec([None, None], tf.float32)})
    return specs


def export_saved_model(model: keras.Model, path: str,
                       class_names: Optional[Sequence[str]] = None,
                       channels: int = 3,
                       default_locations: Optional[Sequence[int]] = None
                       ) -> str:
  """Writes the serving SavedModel of ``model`` to ``path``."""
  if class_names is None:
    classes = (model.config.num_classes if isinstance(model, TNet)
               else int(model.outputs[0].shape[-1]))
    class_names = [str(i) for i in range(classes)]
  module = Serving(model, class_names, channels, default_locations)
  tf.saved_model.save(module, path, signatures={
      "serving_default": module.serve, "serve_bytes": module.serve_bytes,
      "metadata": module.metadata})
  return path


def load_run(run_dir: str, checkpoint: Optional[str] = None):
  """The model of a run directory, restored from its latest (or the given)
  checkpoint, with the run's configuration record."""
  from tnet_tf import baselines  # local: keeps the serving import light
  from tnet_tf.config import ModelConfig
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --run_dir must be a run "
                            "directory of tnet_tf.experiments")
  with open(path) as fh:
    record = json.load(fh)
  cfg = ModelConfig(**record["model"])
  if record.get("model_kind") == "tnet":
    model = TNet(cfg)
  else:
    kwargs = dict(cfg.backbone_kwargs)
    kwargs.pop("weights", None)
    if cfg.backbone.startswith("efficientnet"):
      kwargs = {k: v for k, v in kwargs.items() if k == "block_drop_rate"}
    model = baselines.build_classifier(
        cfg.backbone, cfg.num_classes, cfg.input_size or (None, None),
        cfg.dropout, **kwargs)
  checkpoint = checkpoint or tf.train.latest_checkpoint(
      os.path.join(run_dir, "checkpoints"))
  if not checkpoint:
    raise FileNotFoundError(f"no checkpoint in {run_dir}/checkpoints")
  read_weights(model, checkpoint, f"checkpoint {checkpoint}")
  return model, record, checkpoint


def read_weights(model: keras.Model, checkpoint: str, what: str) -> None:
  """Restores ``model``'s weights from a training checkpoint (no optimiser
  state), or a ValueError naming ``what`` when they do not match."""
  try:
    tf.train.Checkpoint(model=model).read(
        checkpoint).assert_existing_objects_matched().expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as err:
    raise ValueError(f"{what} does not match this model: "
                     f"{str(err).splitlines()[0][:400]}") from err


def run_class_names(run_dir: str, num_classes: int) -> list[str]:
  """The class names a run recorded (classes.json / summary.json)."""
  for name, key in (("classes.json", None), ("summary.json", "data")):
    path = os.path.join(run_dir, name)
    if os.path.exists(path):
      with open(path) as fh:
        data = json.load(fh)
      names = data.get(key, {}).get("classes") if key else data
      if names and len(names) == num_classes:
        return [str(n) for n in names]
  return [str(i) for i in range(num_classes)]


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  flags_ = flags.FLAGS
  if not flags_.run_dir:
    raise app.UsageError("--run_dir is required")
  try:
    model, record, checkpoint = load_run(flags_.run_dir, flags_.checkpoint)
  except (FileNotFoundError, ValueError) as err:
    raise SystemExit(f"error: {err}") from None
  classes = record["model"]["num_classes"]
  channels = 1 if record.get("data", {}).get("name") == (
      "megapixel_digits") else 3
  output = flags_.output or os.path.join(flags_.run_dir, "saved_model")
  locations = ([int(k) for k in flags_.locations]
               if flags_.locations is not None else None)
  export_saved_model(model, output, run_class_names(flags_.run_dir, classes),
                     channels, locations)
  logging.info("exported %s (from %s)", output, checkpoint)
  print(output)


def _define_flags() -> None:
  flags.DEFINE_string("run_dir", None, "Run directory to export.")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint to export (default: the run's latest).")
  flags.DEFINE_string("output", None,
                      "SavedModel directory (default <run_dir>/saved_model).")
  flags.DEFINE_list("locations", None,
                    "Default locations per level recorded in the metadata "
                    "(default: the run's).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
