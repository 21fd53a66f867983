"""Augmentation with core TF ops: geometry by construction, seeds, ranges."""
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from tnet_tf.data import augment


def _png(array: np.ndarray) -> tf.Tensor:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, "PNG")
  return tf.constant(buf.getvalue())


def _coordinates(h=120, w=160) -> np.ndarray:
  """Pixel (y, x) holds (y, x, 7): a crop tells where it came from."""
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([yy, xx, np.full_like(yy, 7)], -1).astype(np.uint8)


def test_translation_moves_content_by_the_shift():
  image = np.zeros((1, 21, 21, 1), np.float32)
  image[0, 10, 10] = 1.0
  transform = augment.rotation_translation_transform(
      tf.constant(0.0), tf.constant([3.0, -4.0]), tf.constant([21, 21]))
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image, transforms=transform[None], output_shape=[21, 21],
      fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
  assert np.argwhere(out.numpy()[0, ..., 0] == 1.0).tolist() == [[13, 6]]


def test_rotation_by_90_degrees_turns_about_the_centre():
  image = np.zeros((1, 21, 21, 1), np.float32)
  image[0, 10, 18] = 1.0  # right of the centre
  transform = augment.rotation_translation_transform(
      tf.constant(np.pi / 2), tf.constant([0.0, 0.0]), tf.constant([21, 21]))
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image, transforms=transform[None], output_shape=[21, 21],
      fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
  # a counter-clockwise quarter turn in image coordinates (y down): right of
  # the centre goes to below it
  assert np.argwhere(out.numpy()[0, ..., 0] > 0.5).tolist() == [[18, 10]]


def test_random_crop_covers_the_object_box():
  source = _png(_coordinates())
  box = tf.constant([0.4, 0.5, 0.6, 0.7])  # rows 48–72, cols 80–112
  cfg = augment.AugmentConfig(min_object_covered=1.0, area_range=(0.05, 1.0))
  for i in range(20):
    crop = augment._random_crop(source, box, cfg,
                                tf.constant([i, 1], tf.int64)).numpy()
    rows, cols = crop[:, 0, 0], crop[0, :, 1]
    assert rows[0] <= 48 and rows[-1] >= 71, (i, rows[[0, -1]])
    assert cols[0] <= 80 and cols[-1] >= 111, (i, cols[[0, -1]])
    # a contiguous window of the original
    assert np.all(np.diff(rows.astype(int)) == 1)


def test_boxes_are_ignored_when_use_boxes_is_off():
  source = _png(_coordinates())
  box = tf.constant([0.0, 0.0, 0.05, 0.05])  # top-left corner only
  on = augment.AugmentConfig(min_object_covered=1.0)
  off = augment.AugmentConfig(min_object_covered=0.05, use_boxes=False,
                              area_range=(0.05, 0.1))
  for i in range(10):
    seed = tf.constant([i, 2], tf.int64)
    assert augment._random_crop(source, box, on, seed).numpy()[0, 0, 0] == 0
  starts = {tuple(augment._random_crop(source, box, off, tf.constant(
      [i, 2], tf.int64)).numpy()[0, 0, :2]) for i in range(10)}
  assert starts != {(0, 0)}


def test_fast_jpeg_crop_matches_decode_then_crop():
  buf = io.BytesIO()
  Image.fromarray(_coordinates()).save(buf, "JPEG", quality=95)
  source = tf.constant(buf.getvalue())
  box = tf.constant([0.2, 0.2, 0.8, 0.8])
  seed = tf.constant([5, 5], tf.int64)
  slow = augment._random_crop(source, box, augment.AugmentConfig(), seed)
  fast = augment._random_crop(
      source, box, augment.AugmentConfig(fast_jpeg_crop=True), seed)
  assert slow.shape == fast.shape
  assert np.abs(slow.numpy().astype(int) - fast.numpy()).mean() < 3


def test_train_image_is_seeded_sized_and_in_range():
  rng = np.random.default_rng(0)
  source = _png(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
  box = tf.constant([0.0, 0.0, 1.0, 1.0])
  cfg = augment.augment_config("birds")
  a = augment.train_image(source, box, (64, 48), cfg, tf.constant([1, 2]))
  b = augment.train_image(source, box, (64, 48), cfg, tf.constant([1, 2]))
  c = augment.train_image(source, box, (64, 48), cfg, tf.constant([1, 3]))
  assert a.shape == (64, 48, 3) and a.dtype == tf.uint8
  assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_no_augmentation_is_a_plain_resize():
  array = np.random.default_rng(1).integers(0, 256, (50, 70, 3), np.uint8)
  source = _png(array)
  plain = augment.train_image(source, tf.constant([0.0, 0.0, 1.0, 1.0]),
                              (50, 70), augment.augment_config("none"),
                              tf.constant([0, 0]))
  assert np.array_equal(plain, array)
  assert np.array_equal(augment.eval_image(source, (50, 70)), array)


def test_grey_and_rgba_inputs_become_rgb():
  grey = _png(np.full((10, 12), 9, np.uint8))
  rgba = _png(np.full((10, 12, 4), 9, np.uint8))
  assert augment.decode(grey).shape == (10, 12, 3)
  assert augment.decode(rgba).shape == (10, 12, 3)


def test_bad_options_are_named():
  with pytest.raises(ValueError, match="unknown augmentation options"):
    augment.augment_config("imagenet", rotation=3)
  with pytest.raises(ValueError, match="unknown augmentation 'cutmix'"):
    augment.augment_config("cutmix")
  with pytest.raises(ValueError, match="area_range"):
    augment.AugmentConfig(area_range=(0.0, 1.0))
