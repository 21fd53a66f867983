"""Image decoding and augmentation with core TF ops (no tensorflow-addons).

Training: a bbox-aware random sized crop (Inception / EfficientNet style:
the crop covers ≥ 10% of the object box, 8–100% of the image, aspect 3/4 to
4/3), resize to the input size, horizontal flip, colour distortion
(brightness, saturation, hue, contrast in one of two orders) and, for the
birds, a small random rotation and translation. Evaluation: a plain resize.
All randomness is stateless, seeded per example, so a pipeline gives the same
images whatever its parallelism.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """What the training pipeline does to each image."""
  random_crop: bool = True
  min_object_covered: float = 0.1
  aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
  area_range: tuple[float, float] = (0.08, 1.0)
  max_attempts: int = 10
  use_boxes: bool = True  # the object box constrains the crop, if known
  flip: bool = True
  color: bool = True
  rotation_degrees: float = 0.0  # uniform in ±this
  translation: float = 0.0  # uniform in ±this fraction of each side
  # decode only the crop window of a JPEG: faster on large images, but a
  # corrupt body outside the window then goes unnoticed (not skipped)
  fast_jpeg_crop: bool = False

  def __post_init__(self):
    lo, hi = self.area_range
    if not 0 < lo <= hi <= 1:
      raise ValueError(f"area_range must satisfy 0 < lo <= hi <= 1, got "
                       f"{self.area_range}")
    if not 0 <= self.translation < 0.5:
      raise ValueError(f"translation must be in [0, 0.5), got "
                       f"{self.translation}")
    if not 0 <= self.rotation_degrees <= 180:
      raise ValueError(f"rotation_degrees must be in [0, 180], got "
                       f"{self.rotation_degrees}")


AUGMENTATIONS = {
    "imagenet": AugmentConfig(),
    # the birds: the same plus a small rotation and translation; boxes are
    # not used (the paper trains on labels only)
    "birds": AugmentConfig(use_boxes=False, rotation_degrees=10.0,
                           translation=0.1),
    "flip": AugmentConfig(random_crop=False, color=False),
    "none": AugmentConfig(random_crop=False, flip=False, color=False),
}


def augment_config(name: str, **overrides) -> AugmentConfig:
  """A named augmentation with some fields changed (from DataConfig.options)."""
  if name not in AUGMENTATIONS:
    raise ValueError(f"unknown augmentation {name!r}; known: "
                     f"{sorted(AUGMENTATIONS)}")
  fields = {f.name for f in dataclasses.fields(AugmentConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown augmentation options {unknown}; known: "
                     f"{sorted(fields)}")
  return dataclasses.replace(AUGMENTATIONS[name], **overrides)


def decode(encoded: tf.Tensor) -> tf.Tensor:
  """JPEG / PNG / BMP / GIF bytes → uint8 [H, W, 3] (grey and RGBA → RGB)."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def resize(image: tf.Tensor, size) -> tf.Tensor:
  """Antialiased bilinear resize to ``size``, back to uint8."""
  out = tf.image.resize(image, size, method="bilinear", antialias=True)
  return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)


def _random_crop(source, bbox, cfg: AugmentConfig, seed):
  """The sampled window of an image (with ``cfg.fast_jpeg_crop``, of a JPEG
  only that window is decoded).

  ``source``: encoded bytes (string) or a decoded uint8 image.
  """
  boxes = tf.reshape(tf.cast(bbox, tf.float32), [1, 1, 4])
  if not cfg.use_boxes:
    boxes = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])

  def window(shape):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, boxes, seed=seed, min_object_covered=cfg.min_object_covered,
        aspect_ratio_range=cfg.aspect_ratio_range,
        area_range=cfg.area_range, max_attempts=cfg.max_attempts,
        use_image_if_no_bounding_boxes=True)
    return begin, size

  def crop(image):
    begin, size = window(tf.shape(image))
    return tf.slice(image, begin, size)

  def jpeg():
    begin, size = window(tf.image.extract_jpeg_shape(source))
    box = tf.stack([begin[0], begin[1], size[0], size[1]])
    return tf.image.decode_and_crop_jpeg(source, box, channels=3)

  if source.dtype != tf.string:
    return crop(source)
  if not cfg.fast_jpeg_crop:
    return crop(decode(source))
  image = tf.cond(tf.io.is_jpeg(source), jpeg, lambda: crop(decode(source)))
  image.set_shape([None, None, 3])
  return image


def _distort_color(image, seed):
  """Inception-style colour distortion of a float image in [0, 1]."""
  seeds = tf.random.experimental.stateless_split(seed, 5)

  def brightness(x):
    return tf.image.stateless_random_brightness(x, 32 / 255, seeds[0])

  def saturation(x):
    return tf.image.stateless_random_saturation(x, 0.5, 1.5, seeds[1])

  def hue(x):
    return tf.image.stateless_random_hue(x, 0.2, seeds[2])

  def contrast(x):
    return tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[3])

  first = tf.random.stateless_uniform([], seeds[4]) < 0.5
  image = tf.cond(first,
                  lambda: contrast(hue(saturation(brightness(image)))),
                  lambda: hue(contrast(brightness(saturation(image)))))
  return tf.clip_by_value(image, 0.0, 1.0)


def rotation_translation_transform(angle, shift, size):
  """The 8-vector projective transform (output → input coordinates) of a
  rotation by ``angle`` radians about the centre then a shift (dy, dx) in
  pixels, for ``tf.raw_ops.ImageProjectiveTransformV3``."""
  h, w = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
  cy, cx = (h - 1) / 2, (w - 1) / 2
  cos, sin = tf.cos(angle), tf.sin(angle)
  # input = R(-angle) · (output - centre - shift) + centre
  ox, oy = cx + shift[1], cy + shift[0]
  a0, a1 = cos, sin
  b0, b1 = -sin, cos
  a2 = cx - a0 * ox - a1 * oy
  b2 = cy - b0 * ox - b1 * oy
  return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def _rotate_translate(image, cfg: AugmentConfig, seed):
  seeds = tf.random.experimental.stateless_split(seed, 2)
  limit = math.radians(cfg.rotation_degrees)
  angle = tf.random.stateless_uniform([], seeds[0], -limit, limit)
  size = tf.shape(image)[:2]
  shift = tf.random.stateless_uniform([2], seeds[1], -cfg.translation,
                                      cfg.translation) * tf.cast(
                                          size, tf.float32)
  transform = rotation_translation_transform(angle, shift, size)
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None], transforms=transform[None], output_shape=size,
      fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
  return out[0]


def train_image(source: tf.Tensor, bbox: tf.Tensor, size,
                cfg: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
  """Encoded (string) or decoded (uint8) image → augmented uint8
  [size[0], size[1], 3].

  ``bbox`` is the normalised (ymin, xmin, ymax, xmax) object box;
  ``seed`` an int32/int64 [2] stateless seed.
  """
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int64), 4)
  if cfg.random_crop:
    image = _random_crop(source, bbox, cfg, seeds[0])
  else:
    image = decode(source) if source.dtype == tf.string else source
  image = tf.image.resize(image, size, method="bilinear", antialias=True)
  if cfg.flip:
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
  if cfg.rotation_degrees or cfg.translation:
    image = _rotate_translate(image, cfg, seeds[2])
  if cfg.color:
    image = _distort_color(image / 255.0, seeds[3]) * 255.0
  image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
  image.set_shape([size[0], size[1], 3])
  return image


def eval_image(source: tf.Tensor, size) -> tf.Tensor:
  """Encoded or decoded image → uint8 [size[0], size[1], 3], a plain
  resize."""
  image = resize(decode(source) if source.dtype == tf.string else source,
                 size)
  image.set_shape([size[0], size[1], 3])
  return image
