"""Backbone registry: name → builder of a ``FeatureExtractor`` (``F``, ``V``)."""
from __future__ import annotations

import functools
from typing import Callable

from tnet_tf.backbones.bagnet import bagnet77, bagnet77_model
from tnet_tf.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.backbones.efficientnet import efficientnet as _efficientnet
from tnet_tf.backbones.efficientnet import efficientnet_model
from tnet_tf.backbones.tiny import tiny_cnn, tiny_cnn_model

REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {
    "bagnet77": bagnet77,
    "tiny_cnn": tiny_cnn,
    **{f"efficientnet-b{i}": functools.partial(_efficientnet, f"b{i}")
       for i in range(8)},
}


def build(name: str, **kwargs) -> FeatureExtractor:
  """Builds the registered backbone ``name`` with builder ``kwargs``."""
  if name not in REGISTRY:
    raise ValueError(f"unknown backbone {name!r}; known: {sorted(REGISTRY)}")
  return REGISTRY[name](**kwargs)
