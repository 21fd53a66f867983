"""Loading backbone weights from a local file, with errors that say why."""
from __future__ import annotations

import os

import tf_keras as keras


def check_weights_file(path: str) -> str:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weights file not found: {path}")
  return path


def load_weights(model: keras.Model, path: str) -> None:
  """Loads ``path`` (.h5 or a TF checkpoint prefix) into ``model``."""
  if not (os.path.isfile(path) or os.path.isfile(path + ".index")):
    raise FileNotFoundError(f"weights file not found: {path}")
  try:
    model.load_weights(path)
  except (ValueError, KeyError) as err:
    raise ValueError(
        f"weights in {path} do not match the layers of {model.name!r}: "
        f"{err}") from err
