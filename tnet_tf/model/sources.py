"""Where TNet reads its pixels from: one interface for every batch of images.

TNet reads a batch through an ``ImageSource``: level 1 of every image
(``whole``) and regions of some of them (``crops``), each sampled at the
base resolution by the model's ``Resampling`` (where its cells lie and how
a cell becomes ``r×r``) with a ``Sampling``'s ops. Two sources:

- ``ImageTensor`` — a batch of pixels in memory (what ``model(images)``
  gets: a tensor or an array);
- ``tnet_tf.data.regions.Regions`` — images read from their files region
  by region (slides, pyramidal TIFFs), only what the traversal attends.
"""
from __future__ import annotations

import tensorflow as tf

from tnet_tf.model import inputs
from tnet_tf.model import resampling as resampling_lib


class ImageSource:
  """A batch of images TNet reads (see the module). ``shape`` is
  ``[B, H, W, C]``, static where known."""

  shape: tf.TensorShape
  # pixels read on the host, outside any graph: an eager traversal runs
  # the backbone as one traced graph instead of layer by layer
  host_reads: bool = False

  @property
  def batch(self):
    """``B``: an int, or a scalar int tensor."""
    raise NotImplementedError

  def image_hw(self) -> tuple:
    """``(H, W)``: Python ints when static, else scalar int tensors."""
    raise NotImplementedError

  def whole(self, resampling: resampling_lib.Resampling, sampling,
            r: int) -> tf.Tensor:
    """Level 1 of every image: ``[B, r, r, C]`` float32."""
    raise NotImplementedError

  def crops(self, resampling: resampling_lib.Resampling, sampling,
            boxes: tf.Tensor, box_image: tf.Tensor, r: int,
            depth: int, bounds=None) -> tf.Tensor:
    """The regions ``boxes`` (normalised ``[M, 4]``, of level ``depth``) of
    the images ``box_image`` ``[M]`` at ``r×r``: ``[M, r, r, C]``
    float32. Pixels outside ``bounds`` (normalised ``[M, 4]``; ``None``:
    the image) read the padding (``Resampling.crops``)."""
    raise NotImplementedError


class ImageTensor(ImageSource):
  """A batch of pixels ``[B, H, W, 1|3]`` in memory."""

  def __init__(self, images: tf.Tensor):
    self.images = images
    self.shape = images.shape

  @property
  def batch(self):
    return tf.shape(self.images)[0]

  def image_hw(self) -> tuple:
    return resampling_lib.image_hw(self.images)

  def whole(self, resampling, sampling, r):
    return resampling.whole(sampling, self.images, r)

  def crops(self, resampling, sampling, boxes, box_image, r, depth,
            bounds=None):
    return resampling.crops(sampling, self.images, boxes, box_image, r,
                            depth, bounds)


def image_source(images, check_numerics: bool = False) -> ImageSource:
  """``images`` as TNet reads them: an ``ImageSource`` as it is; pixels
  (a tensor or an array) checked where they enter
  (``inputs.check_images``) and held as an ``ImageTensor``."""
  if isinstance(images, ImageSource):
    return images
  return ImageTensor(inputs.check_images(images, check_numerics))
