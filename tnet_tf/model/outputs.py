"""What TNet returns: the attention record, with named fields.

``TNet.call`` returns the record as a dict — what Keras, ``tf.function``
and SavedModel signatures trace as it is. ``TNetOutput`` is its typed view:
writers build the dict from one (``as_dict``), readers read it through one
(``TNetOutput.of(record).boxes``), so the names have one source.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class TNetOutput:
  """The record of a traversal (tensors or arrays), ``N = 1 + attended
  locations`` feature vectors per image in level order, ``C`` classes.
  Fields a record does not have are ``None``."""

  logits: Any = None  # [B, C]
  feature_logits: Any = None  # [B, N, C]
  feature_weights: Any = None  # [B, N]
  embedding: Any = None  # [B, D]
  boxes: Any = None  # [B, N, 4] y0, x0, y1, x1 in input pixels
  levels: Any = None  # [N], 1 = the whole image
  positions: Any = None  # [B, N, 3]
  location_log_probs: Any = None  # [B, N - 1] of each attended cell
  # per level with a decision: [B, G, n²] and [B, G, k] (G regions)
  location_probs: Any = None
  location_indices: Any = None
  # adaptive attention: cells each image read [B], and which boxes [B, N]
  num_locations: Any = None
  attended: Any = None

  @classmethod
  def of(cls, record: Mapping[str, Any]) -> "TNetOutput":
    """The view of a record (a key that is no field is an error)."""
    return cls(**record)

  def as_dict(self) -> dict:
    """The record: the fields that are set."""
    return {field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None}
