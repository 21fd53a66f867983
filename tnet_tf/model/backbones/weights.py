"""Loading backbone weights from a local file, or Keras' ImageNet weights,
with errors that say why."""
from __future__ import annotations

import os

import tf_keras as keras

IMAGENET = "imagenet"
# where keras.applications fetch their weights from, and keep them
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/"


def keras_cache_file(name: str) -> str:
  """Where Keras keeps a downloaded weights file (``KERAS_HOME`` or
  ``~/.keras``, ``models/``)."""
  home = os.environ.get("KERAS_HOME") or os.path.join(
      os.path.expanduser("~"), ".keras")
  return os.path.join(home, "models", name)


def imagenet_unavailable(what: str, filename: str, err: Exception
                         ) -> RuntimeError:
  """The error of ImageNet weights Keras could not download."""
  return RuntimeError(
      f"ImageNet weights for {what} are downloaded by Keras from "
      f"{KERAS_WEIGHTS_URL}{filename}, which failed ({type(err).__name__}: "
      f"{str(err)[:200]}); on a machine without internet, download that "
      f"file elsewhere and place it at {keras_cache_file(filename)} (or pass "
      "the path of a local .h5 file as the weights)")


def check_weights_file(path: str) -> str:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weights file not found: {path}")
  return path


def load_weights(model: keras.Model, path: str) -> None:
  """Loads ``path`` (.h5 or a TF checkpoint prefix) into ``model``."""
  if path == IMAGENET:
    raise ValueError(f"no ImageNet weights for {model.name!r}: Keras has "
                     "them for the EfficientNets only; pass a local .h5 "
                     "file of pre-trained weights")
  if not (os.path.isfile(path) or os.path.isfile(path + ".index")):
    raise FileNotFoundError(f"weights file not found: {path}")
  try:
    model.load_weights(path)
  except (ValueError, KeyError) as err:
    raise ValueError(
        f"weights in {path} do not match the layers of {model.name!r}: "
        f"{err}") from err
