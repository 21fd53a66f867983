"""Slides through a serving SavedModel: the host reads, the model computes.

  model = SlideModel("runs/camelyon/tnet/saved_model")
  out = model.respond(Regions([open_source("slide.svs")]), locations=[2, 1])

A SavedModel's ``regions_*`` signatures (``tnet_tf.inference.export``) do
the network's math of one stage each; between them ``SlideModel`` reads the
pixels they ask for with ``tnet_tf.data.regions.Regions`` (``whole`` for
level 1, ``crops`` for the cells of each next level), resampled as the model
was (its metadata names the resampling). The response is
``serving_default``'s, as ``KerasModel`` answers for ``Regions`` from a run
directory (``tnet_tf.inference.predict``); only the SavedModel is needed.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tnet_tf.data import regions as regions_lib
from tnet_tf.model import inputs
from tnet_tf.model import resampling as resampling_lib
from tnet_tf.model.tnet import Sampling

SIGNATURES = ("regions_start", "regions_cells", "regions_encode",
              "regions_readout")


def _rgb(pixels: tf.Tensor) -> tf.Tensor:
  """Grey reads as RGB, as the network tiles them."""
  return tf.tile(pixels, [1, 1, 1, 3]) if pixels.shape[-1] == 1 else pixels


class SlideModel:
  """A serving SavedModel (a path, or loaded by ``tf.saved_model.load``)
  that attends images read region by region (see the module)."""

  def __init__(self, saved_model):
    self._model = (tf.saved_model.load(saved_model)
                   if isinstance(saved_model, str) else saved_model)
    signatures = self._model.signatures
    missing = [name for name in SIGNATURES if name not in signatures]
    if missing:
      raise ValueError(
          f"this SavedModel has no {', '.join(missing)}: slides are attended"
          " by TNets of more than one level with resampling 'authors' or "
          "'antialias', exported by this version of tnet_tf.inference.export")
    self._signatures = {name: signatures[name] for name in SIGNATURES}
    meta = {key: value.numpy() for key, value in
            signatures["metadata"]().items()}
    self.levels = int(meta["levels"])
    self.grid_size = int(meta["grid_size"])
    self.base_resolution = int(meta["base_resolution"])
    self.channels = int(meta["channels"])
    self.default_locations = tuple(int(k) for k in meta["default_locations"])
    self.resampling = resampling_lib.create(
        meta["resampling"].decode(), self.grid_size,
        float(meta["cell_fraction"]))
    self.sampling = Sampling()

  def respond(self, images: regions_lib.Regions,
              locations: Optional[Sequence[int]] = None) -> dict:
    """``serving_default``'s response (numpy arrays) for ``images``, with
    ``locations`` cells per region at each level after the first (a 0
    stops there; default: the model's)."""
    counts = inputs.pad_locations(
        self.default_locations if locations is None else locations,
        self.levels)
    inputs.check_level_range(counts, self.grid_size)
    state = self._call("regions_start", {
        "view": _rgb(images.whole(self.resampling, self.sampling,
                                  self.base_resolution)),
        "image_hw": tf.constant(images.image_hw(), tf.int32)})
    for k in counts:
      if k == 0:
        break
      state = self.descend(images, state, k)
    out = self._call("regions_readout", state)
    return {key: value.numpy() for key, value in out.items()}

  def descend(self, images: regions_lib.Regions, state: dict,
              k: int) -> dict:
    """The state after the next level's ``k`` cells per region: their
    plan, their pixels read from ``images``, their encoding."""
    plan = self._call("regions_cells",
                      {**state, "locations": tf.constant(k, tf.int32)})
    bounds = plan["cell_bounds"]
    crops = images.crops(self.resampling, self.sampling, plan["cells"],
                         plan["cell_image"], self.base_resolution,
                         int(plan["cell_depth"]),
                         bounds if bounds.shape[1] else None)
    return self._call("regions_encode", {**plan, "crops": _rgb(crops)})

  def _call(self, name: str, values: dict) -> dict:
    """Signature ``name`` on the entries of ``values`` it takes."""
    function = self._signatures[name]
    return function(**{key: values[key] for key in
                       function.structured_input_signature[1]})

