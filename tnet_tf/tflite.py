"""TNet as one TFLite model per input size, and running it.

The converted graph holds the whole inference path — level-1 pass, location
selection, crops, later levels, positional encoding, classification. It takes
uint8 images ``[B, H, W, C]`` (``H, W`` fixed per file) and, unless built for
fixed locations, the locations per level as int32 ``[levels - 1]`` (0 = stop
there), and returns ``probabilities`` ``[B, num_classes]``.

``tf.image.crop_and_resize`` is not a TFLite builtin: with ``crop="select"``
it becomes a Flex (select TF ops) op, which the TF 2.21 and LiteRT Python
interpreters cannot run; ``crop="builtin"`` (the default) traces the model
with ``crop_and_resize`` below, the same bilinear sampling written with
gathers and arithmetic.
"""
from __future__ import annotations

import contextlib
import io
import zipfile
from typing import Callable, Iterable, Optional, Sequence
from unittest import mock

import numpy as np
import tensorflow as tf
import tf_keras as keras
# int8 with a denylist of ops is not in the public converter API (TF 2.21)
from tensorflow.lite.python import convert as lite_convert

from tnet_tf.model import total_locations

CROPS = ("builtin", "select")
QUANTIZATIONS = ("float", "int8")
# Kept float in int8 models. The arithmetic carries the box geometry
# (coordinates up to the image size, sampling positions, 1/N feature
# weights), which int8 shifts by whole pixels (-7 points at 12 locations on
# the synthetic benchmark); the normalised location scores feed top-k, where
# int8 ties pick other cells. Convolutions, dense layers, activations,
# pooling and the class softmax run in int8.
FLOAT_OPS = ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "L2_NORMALIZATION",
             "LOG_SOFTMAX")


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
  y0, x0, y1, x1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)

  def sample_points(start, end, size, steps):
    # [M, steps] input coordinates of the output pixels along one axis
    span = tf.cast(size - 1, tf.float32)
    if steps == 1:
      return (0.5 * (start + end) * span)[:, None]
    scale = (end - start) * span / (steps - 1)
    return (start * span)[:, None] + (
        tf.range(steps, dtype=tf.float32)[None, :] * scale[:, None])

  ys = sample_points(y0, y1, height, crop_h)
  xs = sample_points(x0, x1, width, crop_w)
  top, left = tf.floor(ys), tf.floor(xs)
  y_lerp = (ys - top)[:, :, None, None]
  x_lerp = (xs - left)[:, None, :, None]
  top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
  bottom = tf.cast(tf.math.ceil(ys), tf.int32)
  right = tf.cast(tf.math.ceil(xs), tf.int32)
  pixels = tf.reshape(images, [-1, channels])
  first = tf.cast(box_indices, tf.int32) * height * width  # [M]

  def corner(rows, cols):  # [M, h, w, C]
    index = (first[:, None, None] + rows[:, :, None] * width +
             cols[:, None, :])
    return tf.cast(tf.gather(pixels, index), tf.float32)

  upper_left, upper_right = corner(top, left), corner(top, right)
  lower_left, lower_right = corner(bottom, left), corner(bottom, right)
  upper = upper_left + (upper_right - upper_left) * x_lerp
  lower = lower_left + (lower_right - lower_left) * x_lerp
  return upper + (lower - upper) * y_lerp


@contextlib.contextmanager
def _crops(crop: str):
  """Traces TNet with the chosen crop implementation."""
  if crop not in CROPS:
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
  if crop == "select":
    yield
    return
  with mock.patch.object(tf.image, "crop_and_resize", crop_and_resize):
    yield


def _probabilities(model: keras.Model, images: tf.Tensor,
                   locations) -> tf.Tensor:
  return tf.nn.softmax(
      model(images, training=False, locations=locations)["logits"])


def serving_function(model: keras.Model, input_hw: Sequence[int],
                     channels: int,
                     locations: Optional[Sequence[int]] = None
                     ) -> tf.types.experimental.GenericFunction:
  """The ``tf.function`` that is converted: images (and locations) in,
  ``{"probabilities"}`` out. With ``locations`` given they are fixed."""
  height, width = (int(s) for s in input_hw)
  images = tf.TensorSpec([None, height, width, channels], tf.uint8,
                         name="images")
  if locations is not None:
    fixed = tuple(int(k) for k in locations)
    return tf.function(
        lambda x: {"probabilities": _probabilities(model, x, fixed)},
        input_signature=[images])

  levels = model.config.levels
  counts = tf.TensorSpec([levels - 1], tf.int32, name="locations")

  def fn(x, k):
    # TFLite kernels crash on empty tensors (top-k with k = 0, a
    # convolution of 0 crops), so a level with 0 locations must not run:
    # descend one level at a time while the next count is positive.
    def from_level(used):
      if used == levels - 1:
        return _probabilities(model, x, k)
      return tf.cond(k[used] > 0, lambda: from_level(used + 1),
                     lambda: _probabilities(model, x, k[:used] if used
                                            else ()))
    return {"probabilities": from_level(0)}
  return tf.function(fn, input_signature=[images, counts])


def representative_data(images: Iterable[np.ndarray],
                        settings: Sequence[Sequence[int]], levels: int
                        ) -> Callable[[], Iterable[list]]:
  """Calibration inputs for int8: each image (``[1, H, W, C]``) under each
  locations setting, so every level's activations are seen."""
  images = [np.asarray(x) for x in images]
  padded = [np.array(list(s) + [0] * (levels - 1 - len(s)), np.int32)
            for s in settings]

  def generate():
    for image in images:
      for counts in padded:
        yield [image, counts]
  return generate


def convert(model: keras.Model, input_hw: Sequence[int], channels: int, *,
            locations: Optional[Sequence[int]] = None, crop: str = "builtin",
            quantization: str = "float",
            representative: Optional[Callable[[], Iterable[list]]] = None
            ) -> bytes:
  """The TFLite flatbuffer of ``model`` for inputs of ``input_hw``.

  ``quantization="int8"`` quantizes weights and activations to int8 with
  the ``representative`` inputs, except ``FLOAT_OPS`` and ops without an
  int8 kernel; a model trained with fake quantization (QAT) keeps its
  learned ranges.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got "
                     f"{quantization!r}")
  if quantization == "int8" and representative is None:
    raise ValueError("int8 quantization needs representative inputs")
  fn = serving_function(model, input_hw, channels, locations)
  with _crops(crop):
    concrete = fn.get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete],
                                                              model)
  ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization == "int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    ops.insert(0, tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
  if crop == "select":
    ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
  converter.target_spec.supported_ops = ops
  if quantization == "float":
    return converter.convert()
  # calibrate, then quantize with the denylist
  converter._experimental_calibrate_only = True  # pylint: disable=W0212
  return lite_convert.mlir_quantize(converter.convert(),
                                    denylisted_ops=list(FLOAT_OPS))


def zipped_bytes(data: bytes) -> int:
  """Size of ``data`` as the one member of a deflated zip archive."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("model.tflite", data)
  return len(buffer.getvalue())


class Interpreter:
  """Runs a converted TNet: ``probabilities = run(images, locations)``."""

  def __init__(self, model: bytes | str, num_threads: Optional[int] = None):
    source = ({"model_path": model} if isinstance(model, str)
              else {"model_content": model})
    self._interpreter = tf.lite.Interpreter(num_threads=num_threads, **source)
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
      counts = list(locations) + [0] * (self.levels - 1 - len(locations))
      if len(counts) != self.levels - 1:
        raise ValueError(f"locations {list(locations)}: this model has "
                         f"{self.levels} levels")
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
