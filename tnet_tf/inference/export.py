"""SavedModel export for serving, with the attention adjustable per request.

  python -m tnet_tf.cli.export --run_dir=runs/fmow/tnet_stage2 [--output=DIR]

Signatures:
- ``serving_default``: ``images`` uint8 ``[B, H, W, C]`` of any height and
  width, ``locations`` int32 ``[levels - 1]`` (cells attended per region at
  each level after the first; 0 stops there) →
  ``logits`` and ``probabilities`` ``[B, classes]``, ``top5_classes``,
  ``top5_probabilities``, ``top5_names`` ``[B, 5]`` and the attention
  record: ``boxes`` ``[B, N, 4]`` (y0, x0, y1, x1 in input pixels),
  ``levels`` ``[B, N]``,
  ``location_probabilities`` ``[B, N]`` (the location module's probability of
  each attended cell; 1 for the whole image) and ``feature_weights``
  ``[B, N]``.
- ``serve_bytes``: ``encoded`` string ``[B]`` (JPEG, PNG, BMP or GIF bytes,
  each image at its own size) and ``locations`` → the same outputs.
- ``metadata``: class names, default locations, levels, grid size, base
  resolution, cell fraction, resampling and image channels.
- ``serve_adaptive`` (two-level TNets): ``images``, ``threshold`` float32
  and ``max_locations`` int32 scalars → the class outputs, ``boxes``,
  ``levels``, ``attended`` ``[B, N]`` (1 where a cell was read) and
  ``num_locations`` ``[B]``: each image stops attending once its top class
  probability reaches the threshold (``tnet_tf.model.adaptive``) — or, for a
  run with a fitted halting module (``tnet_tf.inference.adaptive``), once the
  module's score does; ``metadata``'s ``adaptive_rule`` says which.
- ``regions_start``, ``regions_cells``, ``regions_encode``,
  ``regions_readout`` (TNets of more than one level whose resampling is
  ``"authors"`` or ``"antialias"``): a traversal in stages whose pixels the
  host reads between them, region by region (slides:
  ``tnet_tf.inference.staged.SlideModel``); the state crosses as the
  tensors of ``tnet_tf.model.staged.STATE_KEYS``. ``regions_start``:
  ``view`` float32 ``[B, r, r, 3]`` (level 1, ``Regions.whole``) and
  ``image_hw`` int32 ``[2]`` (level-0 size) → the state.
  ``regions_cells``: the state and ``locations`` int32 (k > 0) → the state,
  the level's plan (``plan_*``) and what to read: ``cells`` ``[M, 4]``
  (normalised), ``cell_image`` ``[M]``, ``cell_bounds`` ``[M, 4]`` (``[M,
  0]``: no bounds) and ``cell_depth``. ``regions_encode``: the state, the
  plan and ``crops`` float32 ``[M, r, r, 3]`` (``Regions.crops``) → the next
  state. ``regions_readout``: the state → ``serving_default``'s outputs
  (boxes in level-0 pixels). Grey reads are tiled to RGB, as the network
  tiles them.
A full-image baseline has the same signatures without ``locations`` and
without ``regions_*`` (one level reads no regions: ``serving_default``
on an overview of a slide is its whole traversal); its record is one level
(the whole image).
Bad requests (undecodable bytes, locations out of range, wrong dtypes or
ranks) fail that request with an error naming the problem; the loaded model
keeps serving. The model loads with ``tf.saved_model.load`` or
``saved_model_cli`` in a process that never imports this project.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional, Sequence

from absl import logging
import tensorflow as tf
import tf_keras as keras

from tnet_tf import data as data_lib
from tnet_tf.model import inputs
from tnet_tf.model import staged
from tnet_tf.model.adaptive import call_adaptive, supports_adaptive
from tnet_tf.model.layers import halting as halting_lib
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.training.callbacks import Callback, Run


class Serving(tf.Module):
  """A TNet, or any task (``tnet_tf.training.tasks``), behind serving signatures.

  ``model(images, training=False, locations=...)`` must return the
  attention record (``logits``, ``boxes``, ``levels``, ...) and the model
  must say its ``levels``, ``default_locations`` and ``config``; a
  one-level model takes no ``locations`` input.
  """

  def __init__(self, model: keras.Model, class_names: Sequence[str],
               channels: int = 3,
               default_locations: Optional[Sequence[int]] = None,
               halting=None):
    super().__init__()
    self.model = model
    self.channels = channels
    self.num_levels = model.levels
    self.class_names = tf.constant([str(c) for c in class_names])
    default = (model.default_locations if default_locations is None
               else default_locations)
    self.default_locations = tf.constant(
        inputs.pad_locations(default, self.num_levels), tf.int32)
    image_spec = tf.TensorSpec([None, None, None, channels], tf.uint8,
                               name="images")
    bytes_spec = tf.TensorSpec([None], tf.string, name="encoded")
    if self.num_levels > 1:
      loc_spec = tf.TensorSpec([self.num_levels - 1], tf.int32,
                               name="locations")
      self.serve = tf.function(self.response,
                               input_signature=[image_spec, loc_spec])
      self.serve_bytes = tf.function(self._serve_bytes,
                                     input_signature=[bytes_spec, loc_spec])
    else:
      self.serve = tf.function(lambda images: self.response(images),
                               input_signature=[image_spec])
      self.serve_bytes = tf.function(
          lambda encoded: self._serve_bytes(encoded),
          input_signature=[bytes_spec])
    self.metadata = tf.function(self._metadata, input_signature=[])
    network = tasks.network_of(model)
    self.adaptive = supports_adaptive(network)
    self.halting = halting  # tracked: its weights are in the SavedModel
    self.adaptive_rule = halting_lib.call_options(halting)["rule"]
    self.adaptive_max_locations = int(
        getattr(halting, "max_locations", 0) or (
            default[0] if self.num_levels > 1 and default else 0))
    if self.adaptive:
      self._network = network
      self.serve_adaptive = tf.function(
          self.adaptive_response, input_signature=[
              image_spec, tf.TensorSpec([], tf.float32, name="threshold"),
              tf.TensorSpec([], tf.int32, name="max_locations")])
    self.regions = staged.supports(network)
    if self.regions:
      self._regions_signatures(network)

  def _regions_signatures(self, network) -> None:
    """The ``regions_*`` functions of a TNet (see the module)."""
    self._staged = network
    r = network.config.base_resolution
    state = list(staged.state_specs(network).values())
    plan = list(staged.plan_specs().values())
    pixels = {name: tf.TensorSpec([None, r, r, 3], tf.float32, name=name)
              for name in ("view", "crops")}
    self.regions_start = tf.function(
        lambda view, image_hw: staged.start(network, view, image_hw),
        input_signature=[pixels["view"],
                         tf.TensorSpec([2], tf.int32, name="image_hw")])
    self.regions_cells = _named(self._regions_cells, state + [
        tf.TensorSpec([], tf.int32, name="locations")])
    self.regions_encode = _named(
        lambda x: staged.encode(network, _only(x, staged.STATE_KEYS),
                                _only(x, staged.PLAN_KEYS), x["crops"]),
        state + plan + [pixels["crops"]])
    self.regions_readout = _named(
        lambda x: self._respond(TNetOutput.of(staged.readout(network, x))),
        state)

  def _regions_cells(self, inputs_: dict) -> dict:
    state = _only(inputs_, staged.STATE_KEYS)
    return {**{key: tf.identity(value) for key, value in state.items()},
            **staged.cells(self._staged, state, inputs_["locations"])}

  def _metadata(self):
    cfg = self.model.config
    attends = self.num_levels > 1
    return {"class_names": self.class_names,
            "default_locations": self.default_locations,
            "levels": tf.constant(self.num_levels),
            "grid_size": tf.constant(cfg.grid_size if attends else 0),
            "base_resolution": tf.constant(
                cfg.base_resolution if attends else 0),
            "cell_fraction": tf.constant(
                float(cfg.cell_fraction) if attends else 0.0, tf.float32),
            "resampling": tf.constant(cfg.resampling if attends else ""),
            "channels": tf.constant(self.channels),
            "adaptive_rule": tf.constant(
                self.adaptive_rule if self.adaptive else ""),
            # the cells the halting module was fitted for (else the
            # default): predict's max_locations when none is asked
            "adaptive_max_locations": tf.constant(
                self.adaptive_max_locations)}

  def _classes(self, logits) -> dict:
    classes = int(self.class_names.shape[0])
    logits = tf.cast(logits, tf.float32)
    probs = tf.nn.softmax(logits)
    top = tf.math.top_k(probs, min(5, classes))
    return {"logits": logits, "probabilities": probs,
            "top5_classes": top.indices,
            "top5_probabilities": top.values,
            "top5_names": tf.gather(self.class_names, top.indices)}

  def adaptive_response(self, images, threshold, max_locations):
    """Adaptive attention (``call_adaptive``): each image stops once
    its top class probability (or the halting module's score) reaches
    ``threshold``, after at most
    ``max_locations`` cells; ``num_locations`` says how many it read,
    ``attended`` which of ``boxes`` it read."""
    cfg = self._network.config
    max_locations = inputs.check_location_tensor(
        tf.reshape(max_locations, [1]), cfg.levels, cfg.grid_size)[0]
    out = TNetOutput.of(call_adaptive(
        self._network, images, threshold, max_locations,
        **halting_lib.call_options(self.halting)))
    batch = tf.shape(out.logits)[0]
    return {**self._classes(out.logits), "boxes": out.boxes,
            "levels": tf.tile(out.levels[None], [batch, 1]),
            "attended": out.attended,
            "num_locations": out.num_locations}

  def response(self, images, locations=None):
    """The response for a batch of same-size uint8 images (or of
    ``tnet_tf.data.regions.Regions``, eagerly: ``tnet_tf.inference.predict``)."""
    return self._respond(TNetOutput.of(self.model(images, training=False,
                                                  locations=locations)))

  def _respond(self, out: TNetOutput) -> dict:
    """The response of a record."""
    batch = tf.shape(out.logits)[0]  # images may be regions.Regions
    return {**self._classes(out.logits),
            "boxes": out.boxes,
            "levels": tf.tile(out.levels[None], [batch, 1]),
            "location_probabilities": tf.concat(
                [tf.ones([batch, 1]), tf.exp(out.location_log_probs)],
                axis=1),
            "feature_weights": tf.cast(out.feature_weights, tf.float32)}

  def _serve_bytes(self, encoded, locations=None):
    def one(data):
      image = tf.io.decode_image(data, channels=self.channels,
                                 expand_animations=False)
      out = self.response(image[None], locations)
      return {k: v[0] for k, v in out.items()}

    spec = {k: tf.TensorSpec(v.shape[1:], v.dtype) for k, v in
            self._output_specs().items()}
    return tf.map_fn(one, encoded, fn_output_signature=spec)

  def _output_specs(self) -> dict:
    classes = int(self.class_names.shape[0])
    top = min(5, classes)
    return {"logits": tf.TensorSpec([None, classes], tf.float32),
            "probabilities": tf.TensorSpec([None, classes], tf.float32),
            "top5_classes": tf.TensorSpec([None, top], tf.int32),
            "top5_probabilities": tf.TensorSpec([None, top], tf.float32),
            "top5_names": tf.TensorSpec([None, top], tf.string),
            "boxes": tf.TensorSpec([None, None, 4], tf.float32),
            "levels": tf.TensorSpec([None, None], tf.int32),
            "location_probabilities": tf.TensorSpec([None, None], tf.float32),
            "feature_weights": tf.TensorSpec([None, None], tf.float32)}


def _named(fn, specs: Sequence[tf.TensorSpec]):
  """``fn`` of a dict as a function of tensors named as ``specs`` (the
  inputs of a signature)."""
  names = [spec.name for spec in specs]
  return tf.function(lambda *args: fn(dict(zip(names, args))),
                     input_signature=list(specs))


def _only(values: dict, keys: Sequence[str]) -> dict:
  return {key: values[key] for key in keys}


def export_saved_model(model: keras.Model, path: str,
                       class_names: Optional[Sequence[str]] = None,
                       channels: int = 3,
                       default_locations: Optional[Sequence[int]] = None,
                       halting=None) -> str:
  """Writes the serving SavedModel of ``model`` (a TNet or a task) to
  ``path``; ``halting`` (a fitted ``HaltingModule``) makes
  ``serve_adaptive`` stop by its score."""
  if class_names is None:
    class_names = [str(i) for i in range(model.config.num_classes)]
  module = Serving(model, class_names, channels, default_locations, halting)
  signatures = {"serving_default": module.serve,
                "serve_bytes": module.serve_bytes,
                "metadata": module.metadata}
  if module.adaptive:
    signatures["serve_adaptive"] = module.serve_adaptive
  if module.regions:
    signatures.update({
        name: getattr(module, name) for name in (
            "regions_start", "regions_cells", "regions_encode",
            "regions_readout")})
  tf.saved_model.save(module, path, signatures=signatures)
  return path


class ExportAtEnd(Callback):
  """The end-of-run action that exports a finished training run: its
  serving SavedModel (``<run_dir>/saved_model``) and ``classes.json``.
  Workers other than the chief write a scratch copy (saving is
  collective). ``end_of_run(experiment)`` says whether a run gets one."""

  def on_train_end(self, summary: dict, run: Run) -> None:
    experiment = run.experiment
    classes = summary["data"].get("classes") or [
        str(i) for i in range(experiment.model.num_classes)]
    target = run.run_dir if run.chief else tempfile.mkdtemp(
        prefix="tnet_export_")
    path = export_saved_model(
        run.task, os.path.join(target, "saved_model"), classes,
        channels=data_lib.channels(experiment.data))
    runs.write_class_names(target, classes)
    if not run.chief:
      shutil.rmtree(target, ignore_errors=True)
      return
    logging.info("exported %s", path)


def end_of_run(experiment) -> list[Callback]:
  """The end-of-run actions an experiment asks for: the export of a
  training run whose ``export`` is set."""
  if experiment.export and experiment.mode == "train":
    return [ExportAtEnd()]
  return []
