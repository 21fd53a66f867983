"""A smaller TNet: pruning, 2:4 sparsity, QAT and post-training int8.

``python -m tnet_tf.cli.compress --method=prune --init_checkpoint=RUN_DIR
--run_dir=OUT`` starts from a trained TNet (the run directory's
``config.json`` gives the architecture, loss and data), fine-tunes it with
the trainer where the method needs it, and writes into
``OUT/<method>/``: the runner's checkpoints and ``summary.json``, the
stripped weights (``weights/``), a SavedModel and ``model.tflite`` — the
whole inference path with the locations per level as an input
(``tnet_tf.inference.tflite``). Methods, each on the Conv2D / Dense kernels of the
backbone and the TNet modules (other layers stay as they are):

- ``prune``: magnitude pruning to ``--sparsity`` on a polynomial schedule;
- ``prune_2x4``: structured 2:4 sparsity (2 zeros in every 4 weights along
  the input channels);
- ``qat_int8``: quantization-aware training, then int8 TFLite;
- ``ptq_int8``: post-training int8 from representative training images.

A compressed TNet is a new TNet built from the trained one (``rewrite``:
the backbone cloned layer by layer, the modules made through their layer
hook); nothing is patched. ``benchmarks/compression.py`` measures the
variants (size, accuracy in the TFLite runtime, speed).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
# the wrapper class is not in tfmot's public API (0.8.1, pinned)
from tensorflow_model_optimization.python.core.sparsity.keras import (
    pruning_wrapper)

from tnet_tf import data as data_lib
from tnet_tf.inference import export
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.inference import tflite
from tnet_tf.training import callbacks
from tnet_tf.training import trainer
from tnet_tf.config import DataConfig, Experiment
from tnet_tf.model.tnet import TNet

METHODS = ("prune", "prune_2x4", "ptq_int8", "qat_int8")
PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude
_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
_sparsity = tfmot.sparsity.keras
_quantize = tfmot.quantization.keras


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


# ------------------------------------------------- rewriting the layers
def _module_layers(model: TNet) -> dict:
  """Every sub-layer of the TNet modules by its hook path "module/layer"."""
  index = {}
  for module in (model.location_module, model.positional_module,
                 model.classification_module, model.feature_weighting):
    if module is None:
      continue
    for layer in module.submodules:
      if isinstance(layer, keras.layers.Layer):
        index.setdefault(f"{module.name}/{layer.name}", layer)
  return index


def rewrite(model: TNet, fn: Callable[[keras.layers.Layer],
                                      keras.layers.Layer],
            backbone: Optional[Callable[[keras.Model], keras.Model]] = None
            ) -> TNet:
  """A new TNet whose layers are ``fn`` of ``model``'s (``fn`` returns a
  layer itself to keep it; kept layers keep their weights, shared).

  The backbone is cloned layer by layer unless ``backbone`` maps it to its
  replacement; the modules are made anew through their layer hook, which
  hands them ``fn`` of the trained layers.
  """
  extractor = model.feature_extraction
  functional = (backbone(extractor.model) if backbone else
                keras.models.clone_model(extractor.model,
                                         clone_function=fn))
  trained = _module_layers(model)

  def hook(path: str, fresh: keras.layers.Layer) -> keras.layers.Layer:
    if path not in trained:
      raise ValueError(f"{path}: no such layer in the trained TNet")
    layer = fn(trained[path])
    if isinstance(layer, keras.layers.Wrapper) and not layer.built:
      _build_wrapper(layer)
    return layer
  return TNet(model.config, backbone=extractor.replace(model=functional),
              layer_hook=hook, name=model.name)


def _build_wrapper(wrapper: keras.layers.Wrapper) -> None:
  """Builds a wrapper of a built Conv2D / Dense for its kernel's inputs."""
  kernel = wrapper.layer.kernel
  wrapper.build([None] * (kernel.shape.rank - 1) + [kernel.shape[-2]])


def _wrappers(model: keras.Model, kind: type) -> list:
  return [layer for layer in model.submodules if isinstance(layer, kind)]


def add_pruning(model: TNet, method: str, options: Options,
                steps: int) -> TNet:
  """``model`` with every Conv2D / Dense in ``prune_low_magnitude``.

  ``prune``: sparsity rises from 0 to ``options.sparsity`` over the first
  ``pruning_end`` of the ``steps``; ``prune_2x4``: the 2:4 mask is taken at
  the first step and kept. Train it with ``PruningStep``.
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
  return rewrite(model, wrap)


class PruningStep(callbacks.Callback):
  """Sets the pruning wrappers' step before each training step (what
  tfmot's ``UpdatePruningStep`` does in ``fit``; the trainer has its own
  loop, and TNet calls a layer several times per step)."""

  def __init__(self):
    self._wrappers = []

  def on_train_begin(self, run):
    self._wrappers = _wrappers(run.task, PruneLowMagnitude)

  def on_step_begin(self, step, run):
    for wrapper in self._wrappers:
      wrapper.pruning_step.assign(step)


def strip_pruning(model: TNet) -> TNet:
  """The plain layers back, with the masks applied (same weights)."""
  for wrapper in _wrappers(model, PruneLowMagnitude):
    wrapper.pruning_obj.weight_mask_op()
  return rewrite(model, lambda layer: (
      layer.layer if isinstance(layer, PruneLowMagnitude) else layer))


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


def add_quantization(model: TNet) -> TNet:
  """``model`` with fake quantization of every layer tfmot's 8-bit scheme
  supports.

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
  return rewrite(model, wrap, backbone=quantize_backbone)


def nonzero_parameters(model: keras.Model) -> int:
  """Non-zero entries of the trainable variables."""
  return int(sum(np.count_nonzero(v.numpy())
                 for v in model.trainable_variables))


# ------------------------------------------------------------ the methods
def first_images(data_cfg: DataConfig, split: str,
                 count: int) -> list[np.ndarray]:
  """The first ``count`` images of ``split``, un-augmented, ``[1, H, W, C]``
  each (int8 calibration uses training images, timing test images)."""
  examples = data_lib.build(split, data_cfg).take(count)
  return [image.numpy()[None] for image, _ in examples]


def source_experiment(init_checkpoint: str, flagged: Experiment
                      ) -> Experiment:
  """The trained run's architecture, loss, exploration and data, with the
  training and runtime settings of the command line (and the run's
  evaluation settings unless the command line gives some)."""
  run_dir = runs.run_dir_of(runs.checkpoint_path(init_checkpoint))
  if run_dir is None:
    raise FileNotFoundError(f"{init_checkpoint}: no config.json of a "
                            "training run next to this checkpoint")
  source = runs.read_experiment(run_dir)
  train = flagged.train
  if not train.eval_locations:
    train = dataclasses.replace(train,
                                eval_locations=source.train.eval_locations)
  data = source.data
  if flagged.data.data_dir:
    data = dataclasses.replace(data, data_dir=flagged.data.data_dir)
  return source.replace(train=dataclasses.replace(train, init_checkpoint=None),
                        runtime=flagged.runtime, data=data,
                        eval_examples=flagged.eval_examples,
                        mode="train", export=False)


def _fine_tuned(method: str, experiment: Experiment, init_checkpoint: str,
                options: Options):
  """The ``build`` of the trainer: the trained TNet, wrapped for ``method``
  (its reward baseline carried over), compiled afresh."""
  def build(exp: Experiment) -> tasks.TNetClassifier:
    source = runs.load(init_checkpoint).task
    tnet = tasks.require_tnet(source, f"--method={method}")
    tnet = (add_quantization(tnet) if method == "qat_int8" else
            add_pruning(tnet, method, options, exp.train.train_steps))
    task = tasks.TNetClassifier(tnet, exp.loss, exp.exploration)
    task.reward_baseline.assign(source.reward_baseline)
    return tasks.compile_for(task, exp)
  return build


def compress(method: str, experiment: Experiment, run_dir: str,
             init_checkpoint: str, options: Optional[Options] = None
             ) -> dict:
  """Runs one method into ``run_dir``; returns what it wrote.

  ``experiment`` gives the architecture (that of the trained run at
  ``init_checkpoint``), the data and the fine-tuning. The result holds
  ``model`` (the TNet the TFLite file came from), ``tflite`` (its path),
  ``saved_model`` and the trainer's ``summary`` (none for ``ptq_int8``,
  which does not train).
  """
  check_methods([method])
  options = options or Options()
  summary = None
  if method == "ptq_int8":
    model = tasks.require_tnet(runs.load(init_checkpoint).task,
                               "--method=ptq_int8")
  else:
    hooks = [] if method == "qat_int8" else [PruningStep()]
    summary, task = trainer.train_and_evaluate(
        experiment, run_dir, hooks,
        build=_fine_tuned(method, experiment, init_checkpoint, options))
    model = task.network
    if method != "qat_int8":
      model = strip_pruning(model)
      stripped = tasks.TNetClassifier(model, experiment.loss,
                                      experiment.exploration)
      stripped.reward_baseline.assign(task.reward_baseline)
      tf.train.Checkpoint(model=stripped).write(
          os.path.join(run_dir, "weights", "ckpt"))
  return {"model": model, "summary": summary,
          **write_artifacts(model, run_dir, experiment.data, options,
                            "int8" if method.endswith("int8") else "float",
                            experiment.train.eval_locations)}


def write_artifacts(model: TNet, out: str, data_cfg: DataConfig,
                    options: Options, quantization: str,
                    calibration_settings: Sequence[Sequence[int]] = ()
                    ) -> dict:
  """``out/model.tflite`` and ``out/saved_model``, both with the locations
  as an input. int8 is calibrated on ``calibration_settings`` (default the
  configured one)."""
  cfg = model.config
  channels = data_lib.channels(data_cfg)
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
  saved = export.export_saved_model(model, os.path.join(out, "saved_model"),
                                    channels=channels)
  logging.info("wrote %s (%d bytes) and %s", path, len(data), saved)
  return {"tflite": path, "saved_model": saved}
