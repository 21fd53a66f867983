"""Image decoding and augmentation with core TF ops (no tensorflow-addons).

Training: a bbox-aware random crop, resize to the input size with a method
drawn per image, horizontal flip, then colour distortion (ImageNet, fMoW)
or a random translation and rotation (the birds). The named settings
``imagenet`` and ``birds`` are what the code behind the paper's numbers
did (``Tpap/TNet``: ``ImageNet/input_imagenet.py``, ``fMoW/input_fMoW.py``,
``CUB/input_cub.py``); ``inception`` is the usual Inception crop (8–100% of
the image) with an antialiased resize and two orders of colour distortion.
Evaluation: a plain resize. All randomness is stateless, seeded per
example, so a pipeline gives the same images whatever its parallelism.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

# tf.image.resize methods, in the authors' order
RESIZE_METHODS = ("bilinear", "lanczos3", "lanczos5", "bicubic", "gaussian",
                  "nearest", "area", "mitchellcubic")
COLORS = ("none", "authors", "inception")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """What the training pipeline does to each image (defaults: the
  authors' ImageNet / fMoW pipeline)."""
  random_crop: bool = True
  min_object_covered: float = 0.1
  aspect_ratio_range: tuple[float, float] = (0.5, 2.0)
  area_range: tuple[float, float] = (0.85, 1.0)
  max_attempts: int = 50
  use_boxes: bool = True  # the object box constrains the crop, if known
  # the crop is resized with one of these, drawn per image
  resize_methods: tuple[str, ...] = RESIZE_METHODS
  antialias: bool = False  # of that resize, and of evaluation's
  flip: bool = True
  # "authors": one of brightness/saturation/hue/contrast in 4 orders or
  # nothing, drawn per image; "inception": 2 orders; "none"
  color: str = "authors"
  translation: float = 0.0  # uniform in ±this fraction of each side, then
  rotation_degrees: float = 0.0  # a rotation uniform in ±this
  interpolation: str = "nearest"  # of the translation and rotation
  fill_mode: str = "constant"  # black, or "reflect"
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
    unknown = sorted(set(self.resize_methods) - set(RESIZE_METHODS))
    if unknown or not self.resize_methods:
      raise ValueError(f"resize_methods must be among {list(RESIZE_METHODS)}"
                       f", got {list(self.resize_methods)}")
    choices = {"color": COLORS, "interpolation": ("nearest", "bilinear"),
               "fill_mode": ("constant", "reflect")}
    for name, allowed in choices.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got "
                         f"{getattr(self, name)!r}")


AUGMENTATIONS = {
    # the authors' ImageNet / fMoW training images
    "imagenet": AugmentConfig(),
    # the authors' CUB / NABirds: no boxes, no colour, translation ±10% of
    # the side then rotation ±20°, nearest, black fill
    "birds": AugmentConfig(use_boxes=False, color="none", translation=0.1,
                           rotation_degrees=20.0),
    # the usual Inception crop, antialiased bilinear resize, 2 colour orders
    "inception": AugmentConfig(
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, resize_methods=("bilinear",), antialias=True,
        color="inception"),
    "flip": AugmentConfig(random_crop=False, color="none",
                          resize_methods=("bilinear",), antialias=True),
    "none": AugmentConfig(random_crop=False, flip=False, color="none",
                          resize_methods=("bilinear",), antialias=True),
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


def resize(image: tf.Tensor, size, antialias: bool = True) -> tf.Tensor:
  """Bilinear resize to ``size``, back to uint8."""
  out = tf.image.resize(image, size, method="bilinear", antialias=antialias)
  return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)


def resize_drawn(image: tf.Tensor, size, cfg: AugmentConfig,
                 seed: tf.Tensor) -> tf.Tensor:
  """Float resize to ``size`` by a method of ``cfg.resize_methods`` drawn
  uniformly per image (one method: that one)."""
  def one(method):
    return lambda: tf.cast(tf.image.resize(image, size, method=method,
                                           antialias=cfg.antialias),
                           tf.float32)
  if len(cfg.resize_methods) == 1:
    return one(cfg.resize_methods[0])()
  index = tf.random.stateless_uniform([], seed, 0, len(cfg.resize_methods),
                                      tf.int32)
  return tf.switch_case(index, [one(m) for m in cfg.resize_methods])


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


def _color_ops(seeds):
  return {
      "brightness": lambda x: tf.image.stateless_random_brightness(
          x, 32 / 255, seeds[0]),
      "saturation": lambda x: tf.image.stateless_random_saturation(
          x, 0.5, 1.5, seeds[1]),
      "hue": lambda x: tf.image.stateless_random_hue(x, 0.2, seeds[2]),
      "contrast": lambda x: tf.image.stateless_random_contrast(
          x, 0.5, 1.5, seeds[3])}


# orders of the colour ops (applied left to right): the authors draw one of
# their 4 orders or none (5 cases); Inception-style code one of 2 orders
COLOR_ORDERS = {
    "authors": (("brightness", "saturation", "hue", "contrast"),
                ("saturation", "brightness", "contrast", "hue"),
                ("contrast", "hue", "brightness", "saturation"),
                ("hue", "saturation", "contrast", "brightness"), ()),
    "inception": (("brightness", "saturation", "hue", "contrast"),
                  ("saturation", "brightness", "contrast", "hue")),
}


def distort_color(image, kind: str, seed):
  """Colour distortion of a float image in [0, 1], one of the orders of
  ``kind`` drawn per image, clipped to [0, 1]."""
  seeds = tf.random.experimental.stateless_split(seed, 5)
  ops = _color_ops(seeds)

  def case(order):
    def apply():
      x = image
      for name in order:
        x = ops[name](x)
      return tf.clip_by_value(x, 0.0, 1.0)
    return apply
  orders = COLOR_ORDERS[kind]
  index = tf.random.stateless_uniform([], seeds[4], 0, len(orders), tf.int32)
  return tf.switch_case(index, [case(o) for o in orders])


def rotation_translation_transform(angle, shift, size):
  """The 8-vector projective transform (output → input coordinates) of a
  shift (dy, dx) in pixels followed by a rotation by ``angle`` radians about
  the centre (the authors' order: translate, then rotate), for
  ``tf.raw_ops.ImageProjectiveTransformV3``."""
  h, w = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
  cy, cx = (h - 1) / 2, (w - 1) / 2
  cos, sin = tf.cos(angle), tf.sin(angle)
  # input = R(-angle) · (output - centre) + centre - shift
  a0, a1 = cos, sin
  b0, b1 = -sin, cos
  a2 = cx - a0 * cx - a1 * cy - shift[1]
  b2 = cy - b0 * cx - b1 * cy - shift[0]
  return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def _translate_rotate(image, cfg: AugmentConfig, seed):
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
      fill_value=0.0, interpolation=cfg.interpolation.upper(),
      fill_mode=cfg.fill_mode.upper())
  return out[0]


def train_image(source: tf.Tensor, bbox: tf.Tensor, size,
                cfg: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
  """Encoded (string) or decoded (uint8) image → augmented uint8
  [size[0], size[1], 3].

  ``bbox`` is the normalised (ymin, xmin, ymax, xmax) object box;
  ``seed`` an int32/int64 [2] stateless seed.
  """
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int64), 5)
  if cfg.random_crop:
    image = _random_crop(source, bbox, cfg, seeds[0])
  else:
    image = decode(source) if source.dtype == tf.string else source
  image = resize_drawn(image, size, cfg, seeds[4])
  if cfg.flip:
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
  if cfg.rotation_degrees or cfg.translation:
    image = _translate_rotate(image, cfg, seeds[2])
  if cfg.color != "none":
    image = distort_color(image / 255.0, cfg.color, seeds[3]) * 255.0
  image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
  image.set_shape([size[0], size[1], 3])
  return image


def eval_image(source: tf.Tensor, size, antialias: bool = True
               ) -> tf.Tensor:
  """Encoded or decoded image → uint8 [size[0], size[1], 3], a plain
  bilinear resize (the authors': without antialiasing)."""
  image = resize(decode(source) if source.dtype == tf.string else source,
                 size, antialias)
  image.set_shape([size[0], size[1], 3])
  return image
