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


def test_the_authors_settings():
  # ImageNet/input_imagenet.py, fMoW/input_fMoW.py, CUB/input_cub.py
  imagenet, birds = augment.AUGMENTATIONS["imagenet"], (
      augment.AUGMENTATIONS["birds"])
  for cfg in (imagenet, birds):
    assert cfg.area_range == (0.85, 1.0)
    assert cfg.aspect_ratio_range == (0.5, 2.0)
    assert cfg.min_object_covered == 0.1 and cfg.max_attempts == 50
    assert cfg.resize_methods == ("bilinear", "lanczos3", "lanczos5",
                                  "bicubic", "gaussian", "nearest", "area",
                                  "mitchellcubic")
    assert not cfg.antialias and cfg.flip
  assert imagenet.color == "authors" and imagenet.use_boxes
  assert not imagenet.rotation_degrees and not imagenet.translation
  assert birds.color == "none" and not birds.use_boxes
  assert birds.translation == 0.1 and birds.rotation_degrees == 20.0
  assert birds.interpolation == "nearest" and birds.fill_mode == "constant"


def test_resize_method_is_drawn_per_image_among_all_eight():
  array = np.random.default_rng(3).integers(0, 256, (37, 53, 3), np.uint8)
  image = tf.constant(array)
  outs = [tf.cast(tf.image.resize(image, (16, 20), m, antialias=False),
                  tf.float32).numpy() for m in augment.RESIZE_METHODS]
  cfg = augment.AUGMENTATIONS["imagenet"]
  seen = []
  for i in range(120):
    got = augment.resize_drawn(image, (16, 20), cfg,
                               tf.constant([i, 7], tf.int64)).numpy()
    matches = [k for k, o in enumerate(outs) if np.allclose(got, o)]
    assert len(matches) == 1, matches
    seen.append(matches[0])
  counts = np.bincount(seen, minlength=8)
  assert np.all(counts >= 5), counts  # uniform: 15 each on average


def test_colour_distortion_is_one_of_five_cases():
  """Four orders of brightness/saturation/hue/contrast, or nothing: the
  image is left as it is in about 1 case of 5."""
  image = tf.constant(np.random.default_rng(4).uniform(
      0.2, 0.8, (8, 8, 3)), tf.float32)
  same = [np.allclose(augment.distort_color(
      image, "authors", tf.constant([i, 3], tf.int64)), image)
          for i in range(400)]
  assert 0.14 < np.mean(same) < 0.26, np.mean(same)
  inception = [np.allclose(augment.distort_color(
      image, "inception", tf.constant([i, 3], tf.int64)), image)
               for i in range(50)]
  assert not any(inception)


def test_translation_comes_before_the_rotation():
  """The authors translate, then rotate about the centre: a point at the
  centre moved down 3 px ends 3 px left after a quarter turn (rotating
  first would leave it 3 px below)."""
  image = np.zeros((1, 21, 21, 1), np.float32)
  image[0, 10, 10] = 1.0
  transform = augment.rotation_translation_transform(
      tf.constant(np.pi / 2), tf.constant([3.0, 0.0]), tf.constant([21, 21]))
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image, transforms=transform[None], output_shape=[21, 21],
      fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
  assert np.argwhere(out.numpy()[0, ..., 0] > 0.5).tolist() == [[10, 7]]


def test_evaluation_resize_without_antialias_as_the_authors():
  array = np.random.default_rng(5).integers(0, 256, (120, 90, 3), np.uint8)
  got = augment.eval_image(tf.constant(array), (30, 30), antialias=False)
  want = tf.image.resize(array, (30, 30), "bilinear", antialias=False)
  np.testing.assert_array_equal(
      got, tf.cast(tf.round(tf.clip_by_value(want, 0, 255)), tf.uint8))
