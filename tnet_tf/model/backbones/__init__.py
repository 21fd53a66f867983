"""Backbone registry: name → builder of a ``FeatureExtractor`` (``F``, ``V``)."""
from __future__ import annotations

import functools
import inspect
from typing import Callable

from tnet_tf.model.backbones.bagnet import bagnet77, bagnet77_model
from tnet_tf.model.backbones.base import FeatureExtractor, from_keras_model
from tnet_tf.model.backbones.efficientnet import efficientnet as _efficientnet
from tnet_tf.model.backbones.efficientnet import efficientnet_model
from tnet_tf.model.backbones.tiny import tiny_cnn, tiny_cnn_model

REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {
    "bagnet77": bagnet77,
    "tiny_cnn": tiny_cnn,
    **{f"efficientnet-b{i}": functools.partial(_efficientnet, f"b{i}")
       for i in range(8)},
}


def check_kwargs(name: str, kwargs) -> None:
  """Raises ValueError naming the options backbone ``name`` does not take."""
  if name not in REGISTRY:
    raise ValueError(f"unknown backbone {name!r}; known: {sorted(REGISTRY)}")
  accepted = set(inspect.signature(REGISTRY[name]).parameters)
  unknown = sorted(set(kwargs) - accepted)
  if unknown:
    raise ValueError(f"backbone {name!r} does not take {unknown}; it takes "
                     f"{sorted(accepted)}")


def build(name: str, **kwargs) -> FeatureExtractor:
  """Builds the registered backbone ``name`` with builder ``kwargs``."""
  check_kwargs(name, kwargs)
  return REGISTRY[name](**kwargs)
