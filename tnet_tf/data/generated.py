"""What the configs of the generated datasets share: split sizes and a
fingerprint that names their cache."""
from __future__ import annotations

import dataclasses
import hashlib
import json


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
