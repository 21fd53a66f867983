"""Do two serving SavedModels answer the same? Every signature's inputs and
outputs, and every output of the same requests, compared exactly.

  python -m benchmarks.same_outputs BEFORE_DIR AFTER_DIR [--json=OUT]

The requests: two batches of random uint8 images of two sizes (the model's
channels) at 0, 1, 3 and 5 locations (``serving_default``), one PNG per
batch at 0 and 3 (``serve_bytes``), thresholds 0.5, 0.9 and 1.1 (never
reached) with at most 3 and 8 cells (``serve_adaptive``) and
``metadata``; the ``regions_*`` stages get none (their inputs are states
the host carries between them: their names are compared, their network is
``serving_default``'s). Prints per signature the requests compared and the largest
absolute difference of any output; exits 1 if a signature, a name or a
shape differs. It reads the SavedModels only (TensorFlow and Pillow, no
project code): a model exported by one version of tnet-tf against one
exported by another is what it is for.
"""
from __future__ import annotations

import io
import json
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
from PIL import Image

flags.DEFINE_string("json", None, "Also write the comparison as JSON here.")
FLAGS = flags.FLAGS


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
      buffer, "PNG")
  return buffer.getvalue()


def requests(name: str, channels: int) -> list[dict]:
  """The requests ``name`` gets (see the module)."""
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (2, 512, 512, channels), dtype=np.uint8),
            rng.integers(0, 256, (1, 300, 420, channels), dtype=np.uint8)]
  if name == "metadata":
    return [{}]
  if name.startswith("regions_"):
    return []
  if name == "serving_default":
    return [{"images": tf.constant(x), "locations": tf.constant([k], tf.int32)}
            for x in images for k in (0, 1, 3, 5)]
  if name == "serve_bytes":
    return [{"encoded": tf.constant([_png(x[0])]),
             "locations": tf.constant([k], tf.int32)}
            for x in images for k in (0, 3)]
  if name == "serve_adaptive":
    return [{"images": tf.constant(x),
             "threshold": tf.constant(t, tf.float32),
             "max_locations": tf.constant(m, tf.int32)}
            for x in images for t in (0.5, 0.9, 1.1) for m in (3, 8)]
  raise ValueError(f"no requests for signature {name!r}")


def compare(before: str, after: str) -> dict:
  """``{signature: {"requests", "max_abs_difference"}}``; a ValueError
  names the first signature, output or shape that differs."""
  a, b = tf.saved_model.load(before), tf.saved_model.load(after)
  if sorted(a.signatures) != sorted(b.signatures):
    raise ValueError(f"signatures differ: {sorted(a.signatures)} vs "
                     f"{sorted(b.signatures)}")
  channels = a.signatures["serving_default"].structured_input_signature[1][
      "images"].shape[-1] if "serving_default" in a.signatures else 3
  result = {}
  for name in sorted(a.signatures):
    fa, fb = a.signatures[name], b.signatures[name]
    if fa.structured_input_signature != fb.structured_input_signature:
      raise ValueError(f"{name}: inputs differ")
    if sorted(fa.structured_outputs) != sorted(fb.structured_outputs):
      raise ValueError(f"{name}: outputs differ: {sorted(fa.structured_outputs)}"
                       f" vs {sorted(fb.structured_outputs)}")
    worst, cases = 0.0, requests(name, int(channels))
    for request in cases:
      out_a, out_b = fa(**request), fb(**request)
      for key in out_a:
        va = np.asarray(out_a[key].numpy())
        vb = np.asarray(out_b[key].numpy())
        if va.shape != vb.shape:
          raise ValueError(f"{name}/{key}: shape {va.shape} vs {vb.shape}")
        if va.dtype.kind in "SUO":
          if not (va == vb).all():
            raise ValueError(f"{name}/{key}: strings differ")
        elif va.size:
          worst = max(worst, float(np.max(np.abs(
              va.astype(np.float64) - vb.astype(np.float64)))))
    result[name] = {"requests": len(cases), "max_abs_difference": worst}
  return result


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("usage: python -m benchmarks.same_outputs BEFORE "
                         "AFTER")
  try:
    result = compare(argv[1], argv[2])
  except ValueError as err:
    print(f"differ: {err}")
    sys.exit(1)
  for name, row in result.items():
    print(f"{name:16} {row['requests']:3d} requests  max |difference| "
          f"{row['max_abs_difference']:.3g}")
  if FLAGS.json:
    with open(FLAGS.json, "w", encoding="utf-8") as fh:
      json.dump({"command": " ".join(["python -m benchmarks.same_outputs",
                                      *argv[1:]]), "signatures": result},
                fh, indent=1)


if __name__ == "__main__":
  app.run(main)
