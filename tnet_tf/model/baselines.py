"""Full-image classifiers (the paper's baselines) on TNet's backbones."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import tf_keras as keras

from tnet_tf.model import backbones
from tnet_tf.model.backbones.weights import load_weights

BASELINES = ("bagnet77", "tiny_cnn",
             *(f"efficientnet-b{i}" for i in range(8)))


def feature_model(backbone: str, input_shape: Sequence[Optional[int]],
                  **kwargs: Any) -> keras.Model:
  """The backbone as ``image → V`` at an arbitrary input size.

  ``weights``: a local file of the backbone's weights (EfficientNet: the
  Keras application's no-top ``.h5``).
  """
  input_shape = tuple(input_shape)
  weights = kwargs.pop("weights", None)
  if backbone.startswith("efficientnet-"):
    return backbones.efficientnet_model(backbone.split("-")[1], input_shape,
                                        weights=weights, **kwargs)
  if backbone == "bagnet77":
    model = backbones.bagnet77_model(input_shape, **kwargs)
    v = model.outputs[1]
  elif backbone == "tiny_cnn":
    kwargs.pop("f_stage", None)  # where TNet reads F: no matter here
    model = backbones.tiny_cnn_model(input_shape, **kwargs)
    v = keras.layers.GlobalAveragePooling2D(name="gap")(model.output)
  else:
    raise ValueError(f"unknown baseline backbone {backbone!r}; known: "
                     f"{list(BASELINES)}")
  if weights:
    load_weights(model, weights)
  return keras.Model(model.inputs, v, name=backbone)


def build_classifier(backbone: str, num_classes: int,
                     input_size: Sequence[Optional[int]] = (None, None),
                     dropout: float = 0.0, embedding: bool = False,
                     **backbone_kwargs: Any) -> keras.Model:
  """``backbone → dropout → Dense(num_classes)`` logits on whole images;
  with ``embedding`` a dict ``{"logits", "embedding"}`` (the feature before
  dropout)."""
  features = feature_model(backbone, (*input_size, 3), **backbone_kwargs)
  x = keras.layers.Dropout(dropout, name="classifier_dropout")(features.output)
  logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
  outputs = ({"logits": logits, "embedding": features.output} if embedding
             else logits)
  return keras.Model(features.inputs, outputs, name=f"{backbone}_classifier")
