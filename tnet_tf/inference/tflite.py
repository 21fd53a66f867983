"""TNet as one TFLite model per input size, and running it.

The converted graph holds the whole inference path — level-1 pass, location
selection, crops, later levels, positional encoding, classification. It takes
uint8 images ``[B, H, W, C]`` (``H, W`` fixed per file) and, unless built for
fixed locations, the locations per level as int32 ``[levels - 1]`` (0 = stop
there), and returns ``probabilities`` ``[B, num_classes]``.

The graph is one straight subgraph, each level's work in it once: no
branches (TFLite's ``IF`` passes constants into a branch as operands, so a
branch per level held the weights a second time, float). A level with 0
locations cannot run on empty tensors (TFLite kernels crash on them): it and
the levels after it attend one cell per region whose features get weight 0
— the same probabilities, for one extra crop per image and level.

``tf.image.crop_and_resize`` is not a TFLite builtin: with ``crop="select"``
it becomes a Flex (select TF ops) op, which the TF 2.21 and LiteRT Python
interpreters cannot run; ``crop="builtin"`` (the default) traces the model
with ``BuiltinSampling``: ``crop_and_resize`` below, the same bilinear
sampling written with gathers and arithmetic, and level 1 as one
``RESIZE_BILINEAR``.

int8 files keep TNet's geometry float (``float_nodes``) and all files drop
their internal tensor names (``strip_names``).
"""
from __future__ import annotations

import io
import zipfile
from typing import Callable, Iterable, Optional, Sequence

from ai_edge_litert import interpreter as litert
import flatbuffers
import numpy as np
import tensorflow as tf
import tf_keras as keras
# int8 with a denylist of ops is not in the public converter API (TF 2.21)
from tensorflow.lite.python import convert as lite_convert
from tensorflow.lite.python import schema_py_generated as schema

from tnet_tf.model import inputs
from tnet_tf.model import tnet as model_lib
from tnet_tf.model.layers import precision
from tnet_tf.model.inputs import total_locations
from tnet_tf.model.outputs import TNetOutput

CROPS = ("builtin", "select")
QUANTIZATIONS = ("float", "int8")


def crop_and_resize(images: tf.Tensor, boxes: tf.Tensor,
                    box_indices: tf.Tensor, crop_size: Sequence[int],
                    **unused) -> tf.Tensor:
  """``tf.image.crop_and_resize`` (bilinear) with TFLite builtin ops only.

  Same arguments and float32 result ``[M, h, w, C]``; the sampling grid and
  the order of the interpolation arithmetic follow the TF kernel, so results
  agree to float rounding. Boxes must lie inside the image (TNet's always
  do): there is no extrapolation.
  """
  crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
  shape = tf.shape(images)
  height, width, channels = shape[1], shape[2], shape[3]
  boxes = tf.cast(boxes, tf.float32)
  # new axes by reshape: a [:, None] slice is two TFLite ops, this is one

  def sample_points(start, end, size, steps):
    # [M, steps] input coordinates of the output pixels along one axis,
    # clamped to the image: rounding can put the last one a hair past the
    # last pixel, whose ceil would then index one row past the image
    span = tf.cast(size - 1, tf.float32)
    if steps == 1:
      points = tf.reshape(0.5 * (start + end) * span, [-1, 1])
    else:
      scale = (end - start) * span / (steps - 1)
      points = tf.reshape(start * span, [-1, 1]) + (
          tf.range(steps, dtype=tf.float32)[None, :] * tf.reshape(scale,
                                                                  [-1, 1]))
    return tf.clip_by_value(points, 0.0, span)

  ys = sample_points(boxes[:, 0], boxes[:, 2], height, crop_h)
  xs = sample_points(boxes[:, 1], boxes[:, 3], width, crop_w)
  top, left = tf.floor(ys), tf.floor(xs)
  y_lerp = tf.reshape(ys - top, [-1, crop_h, 1, 1])
  x_lerp = tf.reshape(xs - left, [-1, 1, crop_w, 1])
  pixels = tf.reshape(images, [-1, channels])
  first = tf.reshape(tf.cast(box_indices, tf.int32) * height * width,
                     [-1, 1])

  def row_starts(rows):  # [M, h, 1] flat index of each sampled row
    return tf.reshape(first + tf.cast(rows, tf.int32) * width,
                      [-1, crop_h, 1])

  def columns(cols):  # [M, 1, w]
    return tf.reshape(tf.cast(cols, tf.int32), [-1, 1, crop_w])

  def corner(rows, cols):  # [M, h, w, C]
    return tf.cast(tf.gather(pixels, rows + cols), tf.float32)

  upper, lower = row_starts(top), row_starts(tf.math.ceil(ys))
  left, right = columns(left), columns(tf.math.ceil(xs))
  upper_left, upper_right = corner(upper, left), corner(upper, right)
  lower_left, lower_right = corner(lower, left), corner(lower, right)
  upper = upper_left + (upper_right - upper_left) * x_lerp
  lower = lower_left + (lower_right - lower_left) * x_lerp
  return upper + (lower - upper) * y_lerp


class BuiltinSampling(model_lib.Sampling):
  """TNet's sampling with TFLite builtin ops only."""

  crop_and_resize = staticmethod(crop_and_resize)
  area = None  # no builtin area resize: antialias supersamples

  @staticmethod
  def whole(images, size):
    # TFLite's RESIZE_BILINEAR keeps its input type: resize float pixels
    return model_lib.Sampling.whole(tf.cast(images, tf.float32), size)


def _sampling(crop: str) -> model_lib.Sampling:
  if crop not in CROPS:
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
  return BuiltinSampling() if crop == "builtin" else model_lib.Sampling()


def serving_function(model: model_lib.TNet, input_hw: Sequence[int],
                     channels: int,
                     locations: Optional[Sequence[int]] = None,
                     crop: str = "builtin"
                     ) -> tf.types.experimental.GenericFunction:
  """The ``tf.function`` that is converted: images (and locations) in,
  ``{"probabilities"}`` out. With ``locations`` given they are fixed."""
  sampling = _sampling(crop)
  height, width = (int(s) for s in input_hw)
  images = tf.TensorSpec([None, height, width, channels], tf.uint8,
                         name="images")
  cfg = model.config
  if locations is not None:
    fixed = inputs.check_locations(locations, cfg.levels, cfg.grid_size)

    def fixed_fn(x):
      state = model.start(x, sampling=sampling)
      for count in fixed:
        state = model.descend(state, count)
      logits = TNetOutput.of(model.readout(state, training=False)).logits
      return {"probabilities": tf.nn.softmax(logits)}
    return tf.function(fixed_fn, input_signature=[images])

  counts = tf.TensorSpec([cfg.levels - 1], tf.int32, name="locations")

  def fn(x, k):
    k = inputs.check_location_tensor(k, cfg.levels, cfg.grid_size)
    # one straight graph (module docstring): from the first level with 0
    # locations on, 1 cell per region, features weighted 0
    state = model.start(x, sampling=sampling)
    valid = [tf.ones([1])]
    active = tf.constant(True)
    for count in k:
      active = tf.logical_and(active, count > 0)
      state = model.descend(state, tf.where(active, count, 1))
      valid.append(tf.fill([state["regions"]], tf.cast(active, tf.float32)))
    logits = TNetOutput.of(model.readout(
        state, training=False, valid=tf.concat(valid, 0))).logits
    return {"probabilities": tf.nn.softmax(logits)}
  return tf.function(fn, input_signature=[images, counts])


def representative_data(images: Iterable[np.ndarray],
                        settings: Sequence[Sequence[int]], levels: int
                        ) -> Callable[[], Iterable[list]]:
  """Calibration inputs for int8: each image (``[1, H, W, C]``) under each
  locations setting, so every level's activations are seen."""
  images = [np.asarray(x) for x in images]
  padded = [np.array(inputs.pad_locations(s, levels), np.int32)
            for s in settings]

  def generate():
    for image in images:
      for counts in padded:
        yield [image, counts]
  return generate


def convert(model: keras.Model, input_hw: Sequence[int], channels: int, *,
            locations: Optional[Sequence[int]] = None, crop: str = "builtin",
            quantization: str = "float",
            representative: Optional[Callable[[], Iterable[list]]] = None,
            strip: bool = True) -> bytes:
  """The TFLite flatbuffer of ``model`` for inputs of ``input_hw``.

  ``quantization="int8"`` quantizes weights and activations to int8 with
  the ``representative`` inputs, except what must stay float (see the
  comment above ``float_nodes``) and ops without an int8 kernel; a model
  trained with fake quantization (QAT) keeps its learned ranges. ``strip``
  drops the internal tensor names (``strip_names``).
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got "
                     f"{quantization!r}")
  if quantization == "int8" and representative is None:
    raise ValueError("int8 quantization needs representative inputs")
  concrete = serving_function(model, input_hw, channels, locations,
                              crop).get_concrete_function()
  # The converter saves the function with what it captures to keep its
  # signature; the variables alone suffice (and TNet's steps never go
  # through Keras' __call__, which saving a Keras model would want).
  holder = tf.Module()
  holder.weights = list(model.variables)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete],
                                                              holder)
  ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization == "int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    ops.insert(0, tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
  if crop == "select":
    ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
  converter.target_spec.supported_ops = ops
  if quantization == "float":
    data = converter.convert()
  else:  # calibrate, then quantize all but the geometry
    converter._experimental_calibrate_only = True  # pylint: disable=W0212
    calibrated = converter.convert()
    modules = [layer.name for layer in model.layers]
    data = lite_convert.mlir_quantize(
        calibrated, denylisted_nodes=float_nodes(calibrated, modules))
  return strip_names(data) if strip else data


# What stays float in int8 models: TNet's glue outside its
# learned modules whole — box geometry (coordinates up to the image size),
# the crop's sampling positions, the 1/N feature weights — and, inside the
# modules, what they build under ``layers.precision.keep_float()``
# (sinusoids of positions, the normalised location scores that feed top-k).
# int8 geometry shifts crops by whole pixels (-7 points at 12 locations on
# the synthetic benchmark); int8 scores tie and pick other cells. The
# backbone, the classifier and the modules' convolutions, dense layers and
# activations run in int8.
def float_nodes(data: bytes, modules: Sequence[str]) -> list[str]:
  """Names of the ops of ``data`` to keep float: those outside the name
  scopes ``modules`` and those under ``keep_float()``. (The converter
  matches single names: an op fused from several, named "a;b", cannot be
  kept float this way; TNet's float arithmetic avoids multi-output ops.)"""
  model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
  modules = set(modules)
  found = []
  for graph in model.subgraphs:
    for op in graph.operators:
      name = graph.tensors[op.outputs[0]].name.decode()
      scopes = set(name.split("/")[:-1])
      if precision.KEEP_FLOAT in scopes or not scopes & modules:
        found.append(name)
  return found


class _AlignedBuffer(schema.BufferT):
  """A buffer packed with its bytes on a 16-byte boundary, as the converter
  writes them (kernels may read weights with aligned vector loads)."""

  def Pack(self, builder):  # pylint: disable=invalid-name
    data = None
    if self.data is not None:
      payload = np.asarray(self.data, np.uint8).tobytes()
      builder.StartVector(1, len(payload), 16)
      builder.head -= len(payload)
      builder.Bytes[builder.head:builder.head + len(payload)] = payload
      builder.vectorNumElems = len(payload)
      data = builder.EndVector()
    schema.BufferStart(builder)
    if data is not None:
      schema.BufferAddData(builder, data)
    schema.BufferAddOffset(builder, self.offset)
    schema.BufferAddSize(builder, self.size)
    return schema.BufferEnd(builder)


def strip_names(data: bytes) -> bytes:
  """``data`` without the names of its internal tensors (debugging names,
  ~5% of a small model's zipped file). Inputs, outputs, the signature and
  the metadata keep theirs; the ops and weights are untouched."""
  model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
  if any(buffer.offset > 1 for buffer in model.buffers):
    return data  # weights stored after the flatbuffer (> 2 GB): keep as is
  for graph in model.subgraphs:
    keep = {int(i) for part in (graph.inputs, graph.outputs)
            if part is not None for i in part}
    for index, tensor in enumerate(graph.tensors):
      if index not in keep:
        tensor.name = None
  aligned = []
  for buffer in model.buffers:
    copy = _AlignedBuffer()
    copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
    aligned.append(copy)
  model.buffers = aligned
  builder = flatbuffers.Builder(len(data))
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def zipped_bytes(data: bytes) -> int:
  """Size of ``data`` as the one member of a deflated zip archive."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("model.tflite", data)
  return len(buffer.getvalue())


class Interpreter:
  """Runs a converted TNet in LiteRT (``ai-edge-litert``, the runtime that
  replaces ``tf.lite.Interpreter``; XNNPACK on CPU):
  ``probabilities = run(images, locations)``."""

  def __init__(self, model: bytes | str, num_threads: Optional[int] = None):
    source = ({"model_path": model} if isinstance(model, str)
              else {"model_content": model})
    self._interpreter = litert.Interpreter(num_threads=num_threads, **source)
    inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
    self._images = next(d for n, d in inputs.items() if "images" in n)
    self._counts = next((d for n, d in inputs.items() if "locations" in n),
                        None)
    self._output = self._interpreter.get_output_details()[0]
    self._shape = None
    self.input_hw = tuple(int(s) for s in self._images["shape"][1:3])
    self.levels = (1 + int(self._counts["shape"][0]) if self._counts
                   is not None else None)

  def __call__(self, images: np.ndarray,
               locations: Sequence[int] = ()) -> np.ndarray:
    images = np.asarray(images)
    interp = self._interpreter
    if images.shape[1:3] != self.input_hw:
      raise ValueError(f"this TFLite model takes {self.input_hw[0]}x"
                       f"{self.input_hw[1]} images, got {images.shape}")
    if self._shape != images.shape:
      interp.resize_tensor_input(self._images["index"], images.shape)
      interp.allocate_tensors()
      self._shape = images.shape
    interp.set_tensor(self._images["index"], images)
    if self._counts is not None:
      counts = inputs.pad_locations(locations, self.levels)
      interp.set_tensor(self._counts["index"], np.array(counts, np.int32))
    interp.invoke()
    return interp.get_tensor(self._output["index"])


def evaluate(run: Interpreter, dataset: tf.data.Dataset,
             settings: Sequence[Sequence[int]]) -> dict[str, float]:
  """Top-1 accuracy per setting, keyed by the number of attended locations.

  ``dataset`` yields ``(images, labels)`` batches; images go through the
  interpreter one at a time (the edge case: batch 1).
  """
  correct = np.zeros(len(settings))
  count = 0
  for images, labels in dataset:
    images, labels = images.numpy(), labels.numpy()
    for i in range(len(images)):
      for j, locs in enumerate(settings):
        correct[j] += int(np.argmax(run(images[i:i + 1], locs)) == labels[i])
    count += len(images)
  return {str(total_locations(locs)): float(c / max(count, 1))
          for locs, c in zip(settings, correct)}
