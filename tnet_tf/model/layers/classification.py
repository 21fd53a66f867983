"""Classification module (spec §2.5): dropout + one linear layer."""
from __future__ import annotations

import tf_keras as keras

from tnet_tf.model.layers.base import Module


class ClassificationModule(Module):
  """Maps ``[..., D]`` features to ``[..., num_classes]`` logits.

  The same instance classifies the aggregated feature and each individual
  feature vector (per-feature regularisation, paper §4.2).
  """

  def __init__(self, num_classes: int, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    self.num_classes = num_classes
    self.dropout_rate = dropout
    self.dropout = self.sublayer(keras.layers.Dropout(dropout,
                                                      name="dropout"))

  def build(self, input_shape):
    self.linear = self.sublayer(keras.layers.Dense(
        self.num_classes, kernel_initializer=self.init("dense"), name="linear",
        dtype="float32"), input_shape)  # float32 logits (mixed precision)
    super().build(input_shape)

  def call(self, features, training=None):
    return self.linear(self.dropout(features, training=training))

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes,
            "dropout": self.dropout_rate}
