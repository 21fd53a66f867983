"""What a model costs: multiply-accumulates counted on its traced graph
(the paper's "FLOPs") and wall time per image, taken in turns so that a noisy
machine slows every case alike."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf


def _static(shape, op) -> list[int]:
  dims = shape.as_list()
  if any(d is None for d in dims):
    raise ValueError(f"cannot count MACs of {op.type} {op.name}: shape "
                     f"{shape} is not static")
  return dims


def graph_macs(graph: tf.Graph) -> int:
  """Multiply-accumulates of the matrix ops of a graph (and its functions)."""
  total = 0
  for op in graph.get_operations():
    if op.type == "Conv2D":
      out = _static(op.outputs[0].shape, op)
      kh, kw, cin, _ = _static(op.inputs[1].shape, op)
      total += int(np.prod(out)) * kh * kw * cin
    elif op.type == "DepthwiseConv2dNative":
      out = _static(op.outputs[0].shape, op)
      kh, kw = _static(op.inputs[1].shape, op)[:2]
      total += int(np.prod(out)) * kh * kw
    elif op.type in ("MatMul", "BatchMatMul", "BatchMatMulV2",
                     "BatchMatMulV3"):
      out = _static(op.outputs[0].shape, op)
      a = _static(op.inputs[0].shape, op)
      adj = (op.get_attr("transpose_a") if op.type == "MatMul"
             else op.get_attr("adj_x"))
      inner = a[-2] if adj else a[-1]
      total += int(np.prod(out)) * inner
    for attr in ("f", "then_branch", "else_branch", "body"):
      try:
        fn = op.get_attr(attr)
      except (ValueError, TypeError):
        continue
      if fn and hasattr(fn, "name") and fn.name in graph._functions:  # pylint: disable=protected-access
        total += graph_macs(graph._functions[fn.name].graph)  # pylint: disable=protected-access
  return total


def count_macs(fn: Callable, input_shape: Sequence[int],
               dtype: tf.DType = tf.float32) -> int:
  """MACs of ``fn`` on one input of ``input_shape`` (batch included)."""
  concrete = tf.function(fn).get_concrete_function(
      tf.TensorSpec(input_shape, dtype))
  return graph_macs(concrete.graph)


def time_interleaved(cases: Mapping[str, tuple[Callable, Any, int]],
                     warmup: int = 2, repeats: int = 7
                     ) -> dict[str, list[float]]:
  """Wall times (ms per image) of several ``fn(inputs)``, taken in turns.

  ``cases`` maps a name to ``(fn, inputs, images)``: ``fn(inputs)`` is
  timed and ``images`` divides each time. The cases run A, B, C, A, B, C, ...
  so that a noisy machine slows them alike; outputs are fetched
  (``.numpy()``) inside the timed span.
  """
  fetch = lambda out: tf.nest.map_structure(lambda t: t.numpy(), out)
  for _ in range(warmup):
    for fn, inputs, _ in cases.values():
      fetch(fn(inputs))
  times = {name: [] for name in cases}
  for _ in range(repeats):
    for name, (fn, inputs, images) in cases.items():
      start = time.perf_counter()
      fetch(fn(inputs))
      times[name].append(1000.0 * (time.perf_counter() - start) / images)
  return times


def ms_per_image(fn: Callable, images, warmup: int = 2,
                 repeats: int = 7) -> float:
  """Median wall time of ``fn(images)`` (a ``tf.function``) per image, ms."""
  images = tf.convert_to_tensor(images)
  times = time_interleaved({"fn": (fn, images, images.shape[0])}, warmup,
                           repeats)
  return float(np.median(times["fn"]))
