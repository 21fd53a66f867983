"""TNet's traversal in stages whose pixels are read between them.

A serving graph cannot read a slide: the host reads its pixels
(``tnet_tf.data.regions.Regions``) and the graph does the network's math.
The traversal state then crosses from one stage to the next as a dict of
tensors of a fixed structure (``pack`` / ``unpack``):

- ``features`` ``[B, N, D]`` (every feature vector so far, in level
  order), ``positions`` ``[B, N, 3]``, ``all_boxes`` ``[B, N, 4]``
  (normalised), ``levels`` ``[N]`` (0 = the whole image), ``log_probs``
  ``[B, N-1]`` (each attended cell's);
- the current level's ``f_map`` ``[B·G, n, n, F]``, ``boxes``
  ``[B, G, 4]``, ``pos`` ``[B, G, 3]`` and ``bounds`` ``[B, G, 4]``;
- ``image_hw`` ``[2]`` (the images' level-0 size) and ``depth`` (levels so
  far).

The stages (what ``tnet_tf.inference.export`` serves as ``regions_*``):
``start`` (the level-1 view → state), ``cells`` (state, ``k`` → the cells
to read and the plan of the level), ``encode`` (state, plan, the crops
read → state) and ``readout`` (state → the record). Chained over the same
pixels they give what ``TNet.call`` gives (``tnet_tf.inference.staged``
drives them over slides).
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tnet_tf.model import resampling as resampling_lib
from tnet_tf.model import sources
from tnet_tf.model.tnet import TNet

# the state's tensors, in the order of the signatures' inputs
STATE_KEYS = ("features", "positions", "all_boxes", "levels", "log_probs",
              "f_map", "boxes", "pos", "bounds", "image_hw", "depth")
# a level's plan as it crosses from ``cells`` to ``encode``
PLAN_KEYS = ("plan_log_probs", "plan_indices", "plan_chosen", "plan_boxes",
             "plan_pos", "plan_bounds")


def supports(model) -> bool:
  """Whether ``model`` attends in stages over regions read on the host: a
  TNet of more than one level whose resampling ``Regions`` reads
  (``"authors"``, ``"antialias"``)."""
  return (isinstance(model, TNet) and model.levels > 1 and
          isinstance(model.resampling, resampling_lib.IntegerCells))


class HostPixels(sources.ImageSource):
  """Pixels read on the host, outside the graph, handed to one stage:
  level 1 (``view`` ``[B, r, r, C]``) or the regions of one level
  (``crops`` ``[M, r, r, C]``), already resampled; ``image_hw`` is the
  images' size (an int32 tensor ``[2]``). Any other read is an error."""

  def __init__(self, image_hw: tf.Tensor, batch, view=None, crops=None):
    self._hw = tf.cast(image_hw, tf.int32)
    self._batch = batch
    self.view, self.given_crops = view, crops
    self.shape = tf.TensorShape([None, None, None, None])

  @property
  def batch(self):
    return self._batch

  def image_hw(self) -> tuple:
    return self._hw[0], self._hw[1]

  def whole(self, resampling, sampling, r):
    if self.view is None:
      raise ValueError("the level-1 view is read on the host (Regions.whole)"
                       " and given to the stage that starts")
    return self.view

  def crops(self, resampling, sampling, boxes, box_image, r, depth,
            bounds=None):
    if self.given_crops is None:
      raise ValueError("regions are read on the host (Regions.crops) and "
                       "given to the stage that encodes them")
    return self.given_crops


def state_specs(model: TNet, channels: int = 3) -> dict:
  """``TensorSpec`` of each state tensor (named as in ``STATE_KEYS``)."""
  dim = model.feature_extraction.feature_dim
  n = model.config.grid_size
  f_channels = model.feature_extraction.f_channels
  shapes = {"features": [None, None, dim], "positions": [None, None, 3],
            "all_boxes": [None, None, 4], "levels": [None],
            "log_probs": [None, None], "f_map": [None, n, n, f_channels],
            "boxes": [None, None, 4], "pos": [None, None, 3],
            "bounds": [None, None, 4], "image_hw": [2], "depth": []}
  f_out, v_out = model.feature_extraction.model.outputs
  dtypes = {"levels": tf.int32, "image_hw": tf.int32, "depth": tf.int32,
            "features": v_out.dtype, "f_map": f_out.dtype}
  return {key: tf.TensorSpec(shapes[key], dtypes.get(key, tf.float32),
                             name=key) for key in STATE_KEYS}


def plan_specs() -> dict:
  """``TensorSpec`` of each plan tensor (``PLAN_KEYS``)."""
  shapes = {"plan_log_probs": [None, None], "plan_indices": [None, None],
            "plan_chosen": [None, None], "plan_boxes": [None, None, 4],
            "plan_pos": [None, None, 3], "plan_bounds": [None, None, 4]}
  return {key: tf.TensorSpec(shapes[key], tf.int32 if key == "plan_indices"
                             else tf.float32, name=key) for key in PLAN_KEYS}


def pack(model: TNet, state: dict) -> dict:
  """A traversal state (``TNet.start`` / ``descend``) as its tensors."""
  batch, dim = state["batch"], model.feature_extraction.feature_dim
  logp = state["all_logp"]
  return {
      "features": tf.concat([tf.reshape(v, [batch, -1, dim])
                             for v in state["all_v"]], axis=1),
      "positions": tf.concat(state["all_pos"], axis=1),
      "all_boxes": tf.concat(state["all_boxes"], axis=1),
      "levels": tf.concat(state["all_levels"], axis=0),
      "log_probs": (tf.concat(logp, axis=1) if logp
                    else tf.zeros([batch, 0])),
      "f_map": state["f_map"], "boxes": state["boxes"], "pos": state["pos"],
      "bounds": state["bounds"],
      "image_hw": tf.cast(state["image_hw"], tf.int32),
      "depth": tf.convert_to_tensor(state["depth"], tf.int32)}


def unpack(model: TNet, packed: dict, depth=None, crops=None) -> dict:
  """The traversal state of ``pack``'s tensors, for ``TNet.plan``,
  ``grow`` and ``readout`` (``depth``: a Python int where the level's
  geometry needs one; ``crops``: the regions the host read for
  ``encode``)."""
  features = packed["features"]
  shape = tf.shape(features)
  batch, num, regions = shape[0], shape[1], tf.shape(packed["boxes"])[1]
  dim = model.feature_extraction.feature_dim
  # the current level's feature vectors last: what the location module
  # reads beside its F map
  last = [features[:, :num - regions], features[:, num - regions:]]
  return {"images": HostPixels(packed["image_hw"], batch, crops=crops),
          "image_hw": packed["image_hw"], "sampling": model.sampling,
          "batch": batch, "regions": regions, "f_map": packed["f_map"],
          "boxes": packed["boxes"], "pos": packed["pos"],
          "bounds": packed["bounds"],
          "all_v": [tf.reshape(v, [-1, dim]) for v in last],
          "all_boxes": [packed["all_boxes"]],
          "all_pos": [packed["positions"]], "all_levels": [packed["levels"]],
          "all_logp": [packed["log_probs"]], "num": num,
          "depth": packed["depth"] if depth is None else depth,
          "location_probs": [], "location_indices": []}


# ------------------------------------------------------------- the stages
def start(model: TNet, view: tf.Tensor, image_hw: tf.Tensor) -> dict:
  """Level 1 of images of ``image_hw`` pixels from their view ``view``
  ``[B, r, r, C]`` (``Regions.whole``): the packed state."""
  images = HostPixels(image_hw, tf.shape(view)[0], view=view)
  return pack(model, model.start(images, training=False))


def cells(model: TNet, packed: dict, k: tf.Tensor) -> dict:
  """The plan of the next level with ``k`` cells per region (``PLAN_KEYS``)
  and what the host reads for it: ``cells`` ``[M, 4]`` (normalised),
  ``cell_image`` ``[M]``, ``cell_bounds`` ``[M, 4]`` (``[M, 0]`` where
  cells read the whole image: ``crops(bounds=None)``) and ``cell_depth``,
  their level."""
  cfg = model.config
  k = tf.convert_to_tensor(k, tf.int32)
  depth = packed["depth"]
  checks = [
      tf.debugging.assert_less(
          depth, cfg.levels,
          message=f"the state is at level {cfg.levels}, the last"),
      tf.debugging.assert_positive(k, message="locations must be >= 1"),
      tf.debugging.assert_less_equal(
          k, cfg.grid_size ** 2,
          message=f"locations must be <= {cfg.grid_size ** 2}")]
  with tf.control_dependencies(checks):
    k, depth = tf.identity(k), tf.identity(depth)

  def at(level: int):
    def plan_level():
      plan = model.plan(unpack(model, packed, level), k, training=False)
      boxes, box_image, _, bounds = model.reads(plan)
      return {"plan_log_probs": plan["log_probs"],
              "plan_indices": tf.cast(plan["indices"], tf.int32),
              "plan_chosen": plan["chosen"], "plan_boxes": plan["boxes"],
              "plan_pos": plan["pos"], "plan_bounds": plan["bounds"],
              "cells": boxes, "cell_image": tf.cast(box_image, tf.int32),
              "cell_bounds": (tf.zeros([tf.shape(boxes)[0], 0])
                              if bounds is None else bounds),
              "cell_depth": tf.constant(plan["depth"], tf.int32)}
    return plan_level

  # the level's geometry is Python's: one branch per level with a next
  return tf.switch_case(depth - 1, [at(d) for d in range(1, cfg.levels)])


def encode(model: TNet, packed: dict, plan: dict,
           crops: tf.Tensor) -> dict:
  """The state after the cells of ``plan`` (``cells``' ``PLAN_KEYS``)
  were read as ``crops`` ``[M, r, r, C]`` (``Regions.crops``)."""
  state = unpack(model, packed, crops=crops)
  boxes = plan["plan_boxes"]
  children = tf.shape(boxes)[1]
  level = {"log_probs": plan["plan_log_probs"],
           "indices": plan["plan_indices"], "chosen": plan["plan_chosen"],
           "boxes": boxes, "pos": plan["plan_pos"],
           "bounds": plan["plan_bounds"], "depth": state["depth"] + 1,
           "k": tf.shape(plan["plan_indices"])[1], "regions": children}
  f_map, v = model.encode(
      state, tf.reshape(boxes, [-1, 4]),
      tf.repeat(tf.range(state["batch"]), children), level["depth"])
  return pack(model, model.grow(state, level, f_map, v))


def readout(model: TNet, packed: dict,
            valid: Optional[tf.Tensor] = None) -> dict:
  """The record (``TNet.readout``) of a packed state."""
  return model.readout(unpack(model, packed), training=False, valid=valid)
