"""SavedModel export for serving: uint8 images of any size in, the class
probabilities and the attention record out."""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from tnet_tf.model import TNet


class _Serving(tf.Module):
  """Wraps a TNet or a baseline with a ``serving_default`` signature."""

  def __init__(self, model: keras.Model, locations: Sequence[int],
               channels: int):
    super().__init__()
    if not isinstance(model, TNet):
      # the same layers without the training-only add_loss closures (L2),
      # which a SavedModel cannot serialise
      model = keras.Model(model.inputs, model.outputs, name=model.name)
    self.model = model
    self.locations = tuple(int(k) for k in locations)
    spec = tf.TensorSpec([None, None, None, channels], tf.uint8,
                         name="images")
    self.serve = tf.function(self._serve, input_signature=[spec])

  def _serve(self, images):
    if isinstance(self.model, TNet):
      out = self.model(images, training=False, locations=self.locations)
      return {"probabilities": tf.nn.softmax(out["logits"]),
              "boxes": out["boxes"], "feature_weights": out["feature_weights"],
              "levels": tf.broadcast_to(out["levels"][None],
                                        tf.shape(out["feature_weights"]))}
    logits = self.model(tf.cast(images, tf.float32), training=False)
    return {"probabilities": tf.nn.softmax(logits)}


def export_saved_model(model: keras.Model, path: str,
                       locations: Sequence[int] = (), channels: int = 3
                       ) -> str:
  """Writes a SavedModel whose ``serving_default`` takes uint8 images
  ``[B, H, W, channels]`` and attends to ``locations`` per level."""
  module = _Serving(model, locations, channels)
  tf.saved_model.save(module, path,
                      signatures={"serving_default": module.serve})
  return path
