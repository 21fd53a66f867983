"""TNet reads pixels only through its image source: another source with
the same pixels gives the same record, and every read goes through it."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.model import sources
from tnet_tf.model.tnet import TNet


class Counting(sources.ImageTensor):
  """Pixels in memory that count what TNet asks of them."""

  def __init__(self, images):
    super().__init__(tf.convert_to_tensor(images))
    self.calls = []

  def whole(self, resampling, sampling, r):
    self.calls.append(("whole", r))
    return super().whole(resampling, sampling, r)

  def crops(self, resampling, sampling, boxes, box_image, r, depth,
            bounds=None):
    self.calls.append(("crops", int(boxes.shape[0]), depth,
                       bounds is not None))
    return super().crops(resampling, sampling, boxes, box_image, r, depth,
                         bounds)


@pytest.mark.parametrize("resampling", ["authors", "align_corners"])
def test_every_read_goes_through_the_source(rng, resampling):
  tf.random.set_seed(0)
  model = TNet(tiny_config(resampling=resampling))  # 3 levels, (2, 1)
  images = rng.integers(0, 256, [2, 96, 80, 3], np.uint8)
  source = Counting(images)
  got = model(source, training=False)
  want = model(images, training=False)
  assert set(got) == set(want)
  for key in ("logits", "boxes", "feature_weights", "location_log_probs"):
    np.testing.assert_array_equal(got[key], want[key])
  # level 1 whole; 2 cells of each of 2 images; 1 cell of each of 4, bound
  # by the region it divides
  assert source.calls == [("whole", 32), ("crops", 4, 2, False),
                          ("crops", 4, 3, True)]


def test_pixels_are_checked_where_they_enter_and_sources_pass():
  source = sources.image_source(np.zeros([2, 40, 30, 1], np.uint8))
  assert isinstance(source, sources.ImageTensor)
  assert source.image_hw() == (40, 30)
  assert sources.image_source(source) is source
  with pytest.raises(ValueError, match="1 or 3"):
    sources.image_source(np.zeros([2, 40, 30, 2], np.uint8))
