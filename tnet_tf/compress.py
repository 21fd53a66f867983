"""A smaller TNet: pruning, 2:4 sparsity, QAT and post-training int8.

``python -m tnet_tf.compress --method=prune --init_checkpoint=RUN_DIR
--run_dir=OUT`` starts from a trained TNet (the run directory's
``config.json`` gives the architecture, loss and data), fine-tunes it with
the shared runner where the method needs it, and writes into
``OUT/<method>/``: the runner's checkpoints and ``summary.json``, the
stripped weights (``weights/``), a SavedModel and ``model.tflite`` — the
whole inference path with the locations per level as an input
(``tnet_tf.tflite``). Methods, each on the Conv2D / Dense kernels of the
backbone and the TNet modules (other layers stay as they are):

- ``prune``: magnitude pruning to ``--sparsity`` on a polynomial schedule;
- ``prune_2x4``: structured 2:4 sparsity (2 zeros in every 4 weights along
  the input channels);
- ``qat_int8``: quantization-aware training, then int8 TFLite;
- ``ptq_int8``: post-training int8 from representative training images.

``--table=FILE`` also measures the float model and writes one row per
variant: zipped ``.tflite`` size, non-zero parameters, accuracy in the
TFLite interpreter at each locations setting, ms/image in the interpreter
and in the SavedModel.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
# the wrapper class is not in tfmot's public API (0.8.1, pinned)
from tensorflow_model_optimization.python.core.sparsity.keras import (
    pruning_wrapper)

from tnet_tf import data as data_lib
from tnet_tf import losses
from tnet_tf import profile
from tnet_tf import tflite
from tnet_tf.config import DataConfig, ModelConfig, TrainConfig
from tnet_tf.experiments import runner
from tnet_tf.export import export_saved_model
from tnet_tf.model import TNet, total_locations

METHODS = ("prune", "prune_2x4", "ptq_int8", "qat_int8")
PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
_sparsity = tfmot.sparsity.keras
_quantize = tfmot.quantization.keras

flags.DEFINE_list("method", None, f"Compression methods, one run each: "
                  f"{', '.join(METHODS)}.")
flags.DEFINE_float("sparsity", 0.5, "prune: final fraction of zero weights.")
flags.DEFINE_float("pruning_end", 0.6,
                   "prune: fraction of the fine-tuning steps after which the "
                   "target sparsity is reached (polynomial from 0).")
flags.DEFINE_integer("pruning_frequency", 10,
                     "prune: steps between mask updates.")
flags.DEFINE_integer("calibration_examples", 64,
                     "int8: training images for the representative dataset.")
flags.DEFINE_string("table", None,
                    "Also measure the float model and write the table of "
                    "every variant to this JSON file.")
flags.DEFINE_integer("timing_images", 16,
                     "Images timed one at a time (batch 1) for ms/image.")
FLAGS = flags.FLAGS


@dataclasses.dataclass
class Options:
  """What a compression run needs beyond the runner's configs."""
  sparsity: float = 0.5
  pruning_end: float = 0.6
  pruning_frequency: int = 10
  calibration_examples: int = 64

  def __post_init__(self):
    if not 0.0 < self.sparsity < 1.0:
      raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
    if not 0.0 < self.pruning_end <= 1.0:
      raise ValueError(f"pruning_end must be in (0, 1], got "
                       f"{self.pruning_end}")
    if self.pruning_frequency < 1 or self.calibration_examples < 1:
      raise ValueError("pruning_frequency and calibration_examples must be "
                       ">= 1")


def check_methods(methods: Sequence[str]) -> list[str]:
  """Raises ValueError naming an unknown method and the known ones."""
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    raise ValueError(f"unknown method {unknown[0]!r}; known: "
                     f"{list(METHODS)}" if unknown else
                     f"no method given; known: {list(METHODS)}")
  return list(methods)


# ------------------------------------------------------- the trained model
def _checkpoint_path(path: str) -> str:
  """A checkpoint prefix, or a run directory's latest checkpoint."""
  if tf.io.gfile.isdir(path):
    found = (tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
             or tf.train.latest_checkpoint(path))
    if not found:
      raise FileNotFoundError(f"no checkpoint in {path} or {path}/"
                              "checkpoints")
    return found
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"checkpoint not found: {path}(.index)")
  return path


def source_run(path: str) -> Optional[dict]:
  """The ``config.json`` of the run that wrote checkpoint ``path``, if any.

  Raises ValueError when that run is not a TNet.
  """
  path = os.path.abspath(path)
  for folder in (path, os.path.dirname(path),
                 os.path.dirname(os.path.dirname(path))):
    config = os.path.join(folder, "config.json")
    if os.path.isfile(config):
      with open(config) as fh:
        record = json.load(fh)
      kind = record.get("model_kind")
      if kind != "tnet":
        raise ValueError(f"{path} is a checkpoint of a {kind!r} model "
                         f"({config}), not a TNet")
      return record
  return None


def configs_from_run(record: dict, data_cfg: DataConfig,
                     train_cfg: TrainConfig
                     ) -> tuple[ModelConfig, losses.LossConfig, DataConfig,
                                TrainConfig]:
  """The source run's model, loss and data; its evaluation settings unless
  ``--eval_locations`` was given."""
  model_cfg = ModelConfig(**record["model"])
  loss_cfg = losses.LossConfig(**record["loss"])
  data = dict(record["data"])
  for name in ("image_size", "resize_to"):
    if data.get(name) is not None:
      data[name] = tuple(data[name])
  source_data = DataConfig(**{**data, "data_dir": data_cfg.data_dir or
                              data.get("data_dir")})
  if not train_cfg.eval_locations:
    settings = tuple(tuple(s) for s in record["train"]["eval_locations"])
    train_cfg = dataclasses.replace(train_cfg, eval_locations=settings)
  return model_cfg, loss_cfg, source_data, train_cfg


def load_tnet(model: TNet, path: str) -> str:
  """Restores a trained TNet's weights (a prefix or a run directory)."""
  path = _checkpoint_path(path)
  try:
    tf.train.Checkpoint(model=model).read(
        path).assert_existing_objects_matched().expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as err:
    raise ValueError(f"{path} is not a checkpoint of this TNet "
                     f"({model.config.backbone}, {model.config.grid_size}x"
                     f"{model.config.grid_size} grid): "
                     f"{str(err).splitlines()[0][:300]}") from err
  return path


# ------------------------------------------------- rewriting the layers
def _rewrite(model: TNet, fn: Callable[[keras.layers.Layer],
                                       keras.layers.Layer],
             backbone: Optional[Callable[[keras.Model], keras.Model]] = None
             ) -> None:
  """Replaces, in place, each layer ``l`` of the backbone and of the TNet
  modules by ``fn(l)`` (``fn`` returns ``l`` to keep it).

  The backbone is cloned layer by layer (kept layers are reused with their
  weights) unless ``backbone`` maps it to its replacement; the modules'
  sub-layers are reassigned, and built when new.
  """
  extractor = model.feature_extraction
  extractor.model = (backbone(extractor.model) if backbone else
                     keras.models.clone_model(extractor.model,
                                              clone_function=fn))
  modules = (model.location_module, model.positional_module,
             model.classification_module, model.feature_weighting)
  for module in modules:
    if module is None:
      continue
    for name, layer in list(vars(module).items()):
      if not isinstance(layer, keras.layers.Layer) or name.startswith("_"):
        continue
      new = fn(layer)
      if new is layer:
        continue
      if not new.built:
        _build_wrapper(new)
      setattr(module, name, new)


def _build_wrapper(wrapper: keras.layers.Wrapper) -> None:
  """Builds a wrapper of a built Conv2D / Dense for its kernel's inputs."""
  kernel = wrapper.layer.kernel
  wrapper.build([None] * (kernel.shape.rank - 1) + [kernel.shape[-2]])


def _wrappers(model: TNet, kind: type) -> list:
  return [layer for layer in model.submodules if isinstance(layer, kind)]


def add_pruning(model: TNet, method: str, options: Options,
                steps: int) -> None:
  """Wraps every Conv2D / Dense in ``prune_low_magnitude``.

  ``prune``: sparsity rises from 0 to ``options.sparsity`` over the first
  ``pruning_end`` of the ``steps``; ``prune_2x4``: the 2:4 mask is taken at
  the first step and kept.
  """
  if method == "prune":
    params = {"pruning_schedule": _sparsity.PolynomialDecay(
        0.0, options.sparsity, begin_step=0,
        end_step=max(1, int(options.pruning_end * steps)),
        frequency=options.pruning_frequency)}
  else:
    params = {"sparsity_m_by_n": (2, 4)}

  def wrap(layer):
    if isinstance(layer, _KERNEL_LAYERS):
      return _sparsity.prune_low_magnitude(layer, **params)
    return layer
  _rewrite(model, wrap)
  _count_pruning_steps(model)


def _count_pruning_steps(model: TNet) -> None:
  """Sets the wrappers' step to the optimiser's before each training step.

  tfmot's ``UpdatePruningStep`` callback does this in ``fit``; the runner
  has its own loop, and TNet calls a layer several times per step.
  """
  wrappers = _wrappers(model, PruneLowMagnitude)
  train_step = model.train_step

  def step(data):
    for wrapper in wrappers:
      wrapper.pruning_step.assign(model.optimizer.iterations)
    return train_step(data)
  model.train_step = step


def strip_pruning(model: TNet) -> None:
  """Applies the masks and puts the plain layers back (same weights)."""
  for wrapper in _wrappers(model, PruneLowMagnitude):
    wrapper.pruning_obj.weight_mask_op()
  _rewrite(model, lambda layer: (
      layer.layer if isinstance(layer, PruneLowMagnitude)
      else layer))


class OutputQuantizeConfig(_quantize.QuantizeConfig):
  """Fake-quantizes the kernel and the output of a Conv2D / Dense.

  For layers whose activation tfmot's default 8-bit scheme cannot wrap
  (e.g. leaky ReLU in the BagNet location module): the activation runs in
  float and its result is quantized, as the int8 kernel will.
  """

  def get_weights_and_quantizers(self, layer):
    return [(layer.kernel, _quantize.quantizers.LastValueQuantizer(
        num_bits=8, symmetric=True, narrow_range=False, per_axis=False))]

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    layer.kernel = quantize_weights[0]

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return [_quantize.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

  def get_config(self):
    return {}


def fold_batch_norms(functional: keras.Model) -> keras.Model:
  """A copy of ``functional`` with every BatchNormalization that alone reads
  a Conv2D / DepthwiseConv2D folded into that convolution's kernel and bias
  (the BN becomes an ``Identity``): the op TFLite runs. Without it, fake
  quantization sits between the convolution and its BN, and the int8 file
  applies that range to the folded output (QAT: 80.8% in Keras, 73.0% in
  TFLite at 12 locations on the synthetic benchmark)."""
  convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
  pairs = {}  # convolution name -> its BatchNormalization
  for layer in functional.layers:
    if not isinstance(layer, keras.layers.BatchNormalization):
      continue
    source = layer.input._keras_history.layer  # pylint: disable=W0212
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    if (isinstance(source, convs) and axis in (-1, 3) and
        len(source._outbound_nodes) == 1):  # pylint: disable=W0212
      pairs[source.name] = layer
  if not pairs:
    return functional
  folded_bns = {bn.name for bn in pairs.values()}

  def clone(layer):
    if layer.name in folded_bns:
      return keras.layers.Identity(name=layer.name)
    if layer.name in pairs:
      return type(layer).from_config({**layer.get_config(),
                                      "use_bias": True})
    return layer
  copy = keras.models.clone_model(functional, clone_function=clone)
  for name, bn in pairs.items():
    conv = functional.get_layer(name)
    scale = 1.0 / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if bn.scale:
      scale = scale * bn.gamma.numpy()
    bias = conv.bias.numpy() if conv.use_bias else 0.0
    bias = (bias - bn.moving_mean.numpy()) * scale
    if bn.center:
      bias = bias + bn.beta.numpy()
    if isinstance(conv, keras.layers.DepthwiseConv2D):
      # output channel i·multiplier + m: scale as [in, multiplier]
      kernel = conv.depthwise_kernel.numpy()
      kernel = kernel * scale.reshape(kernel.shape[2:])
    else:
      kernel = conv.kernel.numpy() * scale
    copy.get_layer(name).set_weights([kernel, bias])
  return copy


def add_quantization(model: TNet) -> None:
  """Fake quantization of every layer tfmot's 8-bit scheme supports.

  The backbone's BatchNormalizations are folded into their convolutions
  (``fold_batch_norms``), then it is annotated layer by layer and
  ``quantize_apply``-ed; layers tfmot cannot quantize (Rescaling, ...) stay
  float. The modules' Conv2D / Dense are wrapped with the scheme's config,
  or ``OutputQuantizeConfig``.
  """
  registry = (_quantize.default_8bit.Default8BitQuantizeScheme()
              .get_quantize_registry())

  def annotate(layer):
    if registry.supports(layer):
      return _quantize.quantize_annotate_layer(layer)
    return layer

  def quantize_backbone(functional: keras.Model) -> keras.Model:
    annotated = keras.models.clone_model(fold_batch_norms(functional),
                                         clone_function=annotate)
    with _quantize.quantize_scope():
      return _quantize.quantize_apply(annotated)

  def wrap(layer):
    if not isinstance(layer, _KERNEL_LAYERS):
      return layer
    wrapper = _quantize.QuantizeWrapperV2(
        layer, registry.get_quantize_config(layer))
    try:
      _build_wrapper(wrapper)
    except ValueError:  # an activation the scheme cannot fake-quantize
      wrapper = _quantize.QuantizeWrapperV2(layer, OutputQuantizeConfig())
      _build_wrapper(wrapper)
    return wrapper
  _rewrite(model, wrap, backbone=quantize_backbone)


def nonzero_parameters(model: keras.Model) -> int:
  """Non-zero entries of the trainable variables."""
  return int(sum(np.count_nonzero(v.numpy())
                 for v in model.trainable_variables))


# ------------------------------------------------------------ the methods
def _channels(data_cfg: DataConfig) -> int:
  image, _ = next(iter(data_lib.build(data_cfg.eval_split, data_cfg)))
  return int(image.shape[-1])


def first_images(data_cfg: DataConfig, split: str,
                 count: int) -> list[np.ndarray]:
  """The first ``count`` images of ``split``, un-augmented, ``[1, H, W, C]``
  each (int8 calibration uses training images, timing test images)."""
  examples = data_lib.build(split, data_cfg).take(count)
  return [image.numpy()[None] for image, _ in examples]


def compress(method: str, model_cfg: ModelConfig,
             loss_cfg: losses.LossConfig, train_cfg: TrainConfig,
             data_cfg: DataConfig, init_checkpoint: str,
             options: Optional[Options] = None,
             eval_examples: int = 0) -> dict:
  """Runs one method into ``train_cfg.run_dir``; returns what it wrote.

  The result holds ``model`` (the Keras model the TFLite file came from),
  ``tflite`` (its path), ``saved_model`` and the runner's ``summary``
  (none for ``ptq_int8``, which does not train).
  """
  check_methods([method])
  options = options or Options()
  out = train_cfg.run_dir
  summary = None
  if method == "ptq_int8":
    model = TNet(model_cfg)
    load_tnet(model, init_checkpoint)
  else:
    def prepare(model, tcfg):
      if not isinstance(model, TNet):
        raise ValueError(f"{method} compresses a TNet, not {model.name!r}")
      load_tnet(model, init_checkpoint)
      # the checkpoint also restored the trained run's optimiser step: a
      # fine-tune counts its own (the pruning schedule reads it)
      model.optimizer.iterations.assign(0)
      if method == "qat_int8":
        add_quantization(model)
      else:
        add_pruning(model, method, options, tcfg.train_steps)

    summary, model = runner.train_and_evaluate(
        "tnet", model_cfg, loss_cfg,
        dataclasses.replace(train_cfg, init_checkpoint=None), data_cfg,
        eval_examples, prepare=prepare)
    if method != "qat_int8":
      strip_pruning(model)
      tf.train.Checkpoint(model=model).write(
          os.path.join(out, "weights", "ckpt"))
  return {"model": model, "summary": summary,
          **write_artifacts(model, out, data_cfg, options,
                            "int8" if method.endswith("int8") else "float",
                            train_cfg.eval_locations)}


def write_artifacts(model: TNet, out: str, data_cfg: DataConfig,
                    options: Options, quantization: str,
                    calibration_settings: Sequence[Sequence[int]] = ()
                    ) -> dict:
  """``out/model.tflite`` and ``out/saved_model``, both with the locations
  as an input. int8 is calibrated on ``calibration_settings`` (default the
  configured one)."""
  cfg = model.config
  channels = _channels(data_cfg)
  input_hw = cfg.input_size or data_cfg.image_size
  representative = None
  if quantization == "int8":
    representative = tflite.representative_data(
        first_images(data_cfg, data_cfg.train_split,
                     options.calibration_examples),
        calibration_settings or [cfg.locations], cfg.levels)
  data = tflite.convert(model, input_hw, channels, quantization=quantization,
                        representative=representative)
  tf.io.gfile.makedirs(out)
  path = os.path.join(out, "model.tflite")
  with open(path, "wb") as fh:
    fh.write(data)
  saved = export_saved_model(model, os.path.join(out, "saved_model"),
                             channels=channels)
  logging.info("wrote %s (%d bytes) and %s", path, len(data), saved)
  return {"tflite": path, "saved_model": saved}


# ---------------------------------------------------------- measurements
def measure(variant: str, artifacts: dict, data_cfg: DataConfig,
            settings: Sequence[Sequence[int]], timing: Sequence[int],
            timing_images: int = 16, eval_examples: int = 0) -> dict:
  """One row of the table: size, non-zeros, interpreter accuracy, speed."""
  with open(artifacts["tflite"], "rb") as fh:
    data = fh.read()
  run = tflite.Interpreter(data)
  evaluation = data_lib.build(data_cfg.eval_split, data_cfg)
  if eval_examples:
    evaluation = evaluation.take(eval_examples)
  accuracy = tflite.evaluate(run, evaluation.batch(64), settings)
  ms_tflite, ms_saved = timings(run, artifacts["saved_model"], timing,
                                data_cfg, timing_images)
  return {"variant": variant, "zipped_bytes": tflite.zipped_bytes(data),
          "tflite_bytes": len(data),
          "nonzero_params": nonzero_parameters(artifacts["model"]),
          "accuracy": accuracy, "ms_tflite": ms_tflite,
          "ms_savedmodel": ms_saved,
          "timing_locations": total_locations(timing)}


def timings(run: tflite.Interpreter, saved_model: str,
            locations: Sequence[int], data_cfg: DataConfig,
            count: int) -> tuple[float, float]:
  """Median ms/image, batch 1, interpreter vs SavedModel, taken in turns.

  The SavedModel runs through its restored signature, without the
  project's code.
  """
  images = first_images(data_cfg, data_cfg.eval_split, count)
  loaded = tf.saved_model.load(saved_model)
  serve = loaded.signatures["serving_default"]
  locs = list(locations)
  levels = 1 + serve.structured_input_signature[1]["locations"].shape[0]
  counts = tf.constant(locs + [0] * (levels - 1 - len(locs)), tf.int32)

  def on_interpreter(batch):
    return [tf.constant(run(x, locs)) for x in batch]

  def on_saved_model(batch):
    return [serve(images=tf.constant(x), locations=counts)["probabilities"]
            for x in batch]

  times = profile.time_interleaved(
      {"tflite": (on_interpreter, images, count),
       "saved_model": (on_saved_model, images, count)}, warmup=3, repeats=9)
  return (float(np.median(times["tflite"])),
          float(np.median(times["saved_model"])))


def alternatives(model: TNet, tflite_path: str, data_cfg: DataConfig,
                 locations: Sequence[int], count: int) -> dict:
  """The designs not taken, measured against the float file at
  ``tflite_path``: the crop as a select-TF (Flex) op, and one file per
  locations setting (static shapes) instead of locations as an input."""
  cfg = model.config
  channels = _channels(data_cfg)
  input_hw = cfg.input_size or data_cfg.image_size
  select = tflite.convert(model, input_hw, channels, crop="select")
  images = first_images(data_cfg, data_cfg.eval_split, count)
  try:
    tflite.Interpreter(select)(images[0], locations)
    select_error = None
  except RuntimeError as err:  # no Flex delegate in this interpreter
    select_error = str(err).splitlines()[0][:200]
  fixed = tflite.Interpreter(tflite.convert(model, input_hw, channels,
                                            locations=locations))
  with open(tflite_path, "rb") as fh:
    chosen = tflite.Interpreter(fh.read())
  as_tensor = lambda fn: lambda batch: [tf.constant(fn(x)) for x in batch]
  times = profile.time_interleaved(
      {"input": (as_tensor(lambda x: chosen(x, locations)), images, count),
       "fixed": (as_tensor(fixed), images, count)}, warmup=3, repeats=9)
  return {
      "select_ops_crop": {"tflite_bytes": len(select),
                          "zipped_bytes": tflite.zipped_bytes(select),
                          "interpreter_error": select_error},
      "fixed_locations_file": {
          "locations": total_locations(locations),
          "ms_tflite": float(np.median(times["fixed"])),
          "ms_tflite_locations_input": float(np.median(times["input"]))}}


# -------------------------------------------------------------- the CLI
def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    methods = check_methods(FLAGS.method or [])
    options = Options(FLAGS.sparsity, FLAGS.pruning_end,
                      FLAGS.pruning_frequency, FLAGS.calibration_examples)
    if not FLAGS.init_checkpoint:
      raise ValueError("--init_checkpoint (the trained TNet: a run "
                       "directory or a checkpoint) is required")
    record = source_run(FLAGS.init_checkpoint)
    model_cfg, loss_cfg, train_cfg, data_cfg, kind = (
        runner.configs_from_flags())
    if record is not None:
      model_cfg, loss_cfg, data_cfg, train_cfg = configs_from_run(
          record, data_cfg, train_cfg)
    elif kind != "tnet":
      raise ValueError("--model=baseline: only a TNet can be compressed")
  except (ValueError, TypeError) as err:
    raise app.UsageError(str(err))
  except FileNotFoundError as err:
    raise SystemExit(f"error: {err}") from None
  settings = train_cfg.eval_locations or (model_cfg.locations,)
  timing = max(settings, key=total_locations)  # the best, on the benchmark
  root = train_cfg.run_dir
  rows = []
  try:
    if FLAGS.table:
      model = TNet(model_cfg)
      load_tnet(model, FLAGS.init_checkpoint)
      artifacts = {"model": model, **write_artifacts(
          model, os.path.join(root, "float"), data_cfg, options, "float")}
      rows.append(measure("float", artifacts, data_cfg, settings,
                          timing, FLAGS.timing_images,
                          FLAGS.eval_examples))
      rows[0]["alternatives"] = alternatives(
          model, artifacts["tflite"], data_cfg, timing,
          FLAGS.timing_images)
    for method in methods:
      started = time.time()
      cfg = dataclasses.replace(train_cfg,
                                run_dir=os.path.join(root, method))
      artifacts = compress(method, model_cfg, loss_cfg, cfg, data_cfg,
                           FLAGS.init_checkpoint, options,
                           FLAGS.eval_examples)
      variant = (f"prune_{round(100 * options.sparsity)}"
                 if method == "prune" else method)
      row = measure(variant, artifacts, data_cfg, settings,
                    timing, FLAGS.timing_images,
                    FLAGS.eval_examples)
      row["seconds"] = time.time() - started
      with open(os.path.join(cfg.run_dir, "compression.json"), "w") as fh:
        json.dump(row, fh, indent=1)
      rows.append(row)
      print(json.dumps(row))
  except (ValueError, FileNotFoundError) as err:
    logging.error("%s", err)
    raise SystemExit(f"error: {err}") from None
  if FLAGS.table:
    with open(FLAGS.table, "w") as fh:
      json.dump(rows, fh, indent=1)
    print(f"wrote {FLAGS.table}; command: python -m tnet_tf.compress "
          + " ".join(sys.argv[1:]))


if __name__ == "__main__":
  runner.run(None, main)
