"""What the configs of the generated datasets share: split sizes and a
fingerprint that names their cache; clutter segments."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np


class GeneratedSplits:
  """Mixin for a dataclass with ``train_examples``, ``validation_examples``
  and ``test_examples``."""

  def examples(self, split: str) -> int:
    return {"train": self.train_examples,
            "validation": self.validation_examples,
            "test": self.test_examples}[split]

  def fingerprint(self) -> str:
    text = json.dumps(dataclasses.asdict(self), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def line_pixels(rng, size: int, length: float):
  """Pixel rows and columns of a straight segment of ``length`` px at a
  random angle from a random start in a ``size``² canvas (clipped to it);
  draws the angle, then the start, from ``rng``."""
  angle = rng.uniform(0.0, np.pi)
  y0, x0 = rng.uniform(0, size, 2)
  t = np.linspace(0.0, length, int(2 * length))
  ys = np.clip(y0 + np.sin(angle) * t, 0, size - 1).astype(int)
  xs = np.clip(x0 + np.cos(angle) * t, 0, size - 1).astype(int)
  return ys, xs
