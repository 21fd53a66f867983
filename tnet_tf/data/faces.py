"""Faces in clutter: a task of the kind a user brings, written as an image
folder (``DIR/train/<class>/*.png``, ``DIR/val/<class>/*.png``).

One object 1/16 of the canvas side — a 25 px face or non-face photograph of
scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, in the package:
nothing is downloaded), upscaled — is pasted into a large grey canvas
cluttered with patches of other photographs (scikit-image's sample images)
and bright line segments. The class is whether the object is a face. The
photographs' pools are split once: the validation canvases hold faces,
non-faces and clutter patches no training canvas holds. Unlike the
built-in tasks the images are natural photographs, the task is read
through files (the folder entry point) and the canvases are large enough
for three levels.

``python -m tnet_tf.cli.faces DIR`` writes the folder; then train on it as
a user would, through ``python -m tnet_tf.experiments.folder
--data_dir=DIR ...`` (experiments/README.md, "Training you can trust").
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from tnet_tf.data.generated import GeneratedSplits, line_pixels

CLASSES = ("face", "not_face")
SPLITS = {"train": 0, "val": 1}
# scikit-image sample images (textures, text, coins) cut into clutter
CLUTTER_IMAGES = ("brick", "grass", "gravel", "moon", "page", "coins",
                  "retina", "text")


@dataclasses.dataclass(frozen=True)
class FacesConfig(GeneratedSplits):
  canvas_size: int = 1024
  object_side: int = 64
  clutter_patches: int = 6  # texture patches, 0.5–1.5 objects wide
  num_lines: int = 30
  train_examples: int = 600
  validation_examples: int = 200
  test_examples: int = 0
  # share of each class's photographs kept for the validation canvases
  held_out: float = 0.2
  seed: int = 0

  def __post_init__(self):
    if self.object_side < 8 or self.object_side > self.canvas_size // 2:
      raise ValueError(f"object_side must be in [8, canvas_size / 2], got "
                       f"{self.object_side}")


def _pools(cfg: FacesConfig) -> dict:
  """Per split: the face and non-face photographs ([n, 25, 25] float in
  [0, 1]) and the grey clutter photographs."""
  from skimage import color
  from skimage import data as skdata
  lfw = skdata.lfw_subset()  # 100 faces, then 100 non-faces
  rng = np.random.default_rng([cfg.seed, 99])
  pools = {split: {} for split in SPLITS}
  for name, images in (("face", lfw[:100]), ("not_face", lfw[100:])):
    order = rng.permutation(len(images))
    cut = int(round(len(images) * (1 - cfg.held_out)))
    pools["train"][name] = images[order[:cut]]
    pools["val"][name] = images[order[cut:]]
  photos = []
  for name in CLUTTER_IMAGES:
    image = getattr(skdata, name)()
    if image.ndim == 3:
      image = color.rgb2gray(image[..., :3])
    photos.append(np.asarray(image, np.float64) / (
        255.0 if image.dtype == np.uint8 else 1.0))
  # the top of every photograph feeds training clutter, the bottom
  # validation clutter
  pools["train"]["clutter"] = [p[:p.shape[0] * 3 // 4] for p in photos]
  pools["val"]["clutter"] = [p[p.shape[0] * 3 // 4:] for p in photos]
  return pools


def _resize(patch: np.ndarray, side: int) -> np.ndarray:
  from skimage import transform
  return transform.resize(patch, (side, side), order=1, anti_aliasing=True,
                          mode="edge")


def draw(cfg: FacesConfig, pools: dict, split: str, index: int):
  """Canvas uint8 [S, S], label (index into CLASSES) and the object's box
  (y0, x0, y1, x1 pixels)."""
  rng = np.random.default_rng([cfg.seed, SPLITS[split], index])
  size, side = cfg.canvas_size, cfg.object_side
  pool = pools[split]
  # a smooth shading (a coarse random field, upsampled) and sensor noise
  coarse = rng.normal(0.0, 20.0, (9, 9))
  canvas = 110.0 + _resize(coarse, size) + rng.normal(0.0, 4.0, (size, size))
  for _ in range(cfg.clutter_patches):
    photo = pool["clutter"][rng.integers(len(pool["clutter"]))]
    cut = int(rng.integers(16, max(17, min(photo.shape) // 2)))
    y, x = (rng.integers(0, photo.shape[0] - cut),
            rng.integers(0, photo.shape[1] - cut))
    out = int(rng.uniform(0.5, 1.5) * side)
    patch = _resize(photo[y:y + cut, x:x + cut], out)
    py, px = rng.integers(0, size - out, 2)
    canvas[py:py + out, px:px + out] = 255.0 * (
        rng.uniform(0.6, 1.0) * (patch - patch.mean()) + patch.mean())
  for _ in range(cfg.num_lines):
    length = rng.uniform(1.0, 4.0) * side
    ys, xs = line_pixels(rng, size, length)
    width = int(rng.integers(1, 4))
    value = rng.uniform(0.0, 255.0)
    for d in range(width):
      canvas[np.clip(ys + d, 0, size - 1), xs] = value
  label = int(rng.integers(len(CLASSES)))
  objects = pool[CLASSES[label]]
  obj = _resize(objects[rng.integers(len(objects))], side)
  y, x = rng.integers(0, size - side + 1, 2)
  canvas[y:y + side, x:x + side] = 255.0 * obj
  image = np.clip(canvas, 0, 255).astype(np.uint8)
  return image, label, np.array([y, x, y + side, x + side], np.float32)


def boxed(dataset, pairs: list, root: str, record: dict):
  """``dataset`` of ``(image, label)`` in the order of ``pairs`` (the
  folder's file list) as dicts with each image's object ``boxes`` [1, 4]."""
  import tensorflow as tf
  boxes = tf.constant([[record["boxes"][os.path.relpath(path, root)]]
                       for path, _ in pairs], tf.float32)
  return tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(
      boxes))).map(lambda example, box: {"image": example[0],
                                         "label": example[1], "boxes": box})


def write_folder(out_dir: str, cfg: FacesConfig = FacesConfig()) -> dict:
  """Writes the canvases as ``out_dir/{train,val}/<class>/<index>.png`` and
  ``out_dir/boxes.json`` (each file's object box); returns that record.
  An existing, complete folder of the same config is kept as it is."""
  from PIL import Image
  record_path = os.path.join(out_dir, "boxes.json")
  config = dataclasses.asdict(cfg)
  if os.path.exists(record_path):
    with open(record_path) as fh:
      record = json.load(fh)
    if record.get("config") == config:
      return record
    raise ValueError(f"{out_dir} holds canvases of another configuration "
                     f"({record.get('config')}); use an empty directory")
  pools = _pools(cfg)
  boxes = {}
  for split, count in (("train", cfg.train_examples),
                       ("val", cfg.validation_examples)):
    for name in CLASSES:
      os.makedirs(os.path.join(out_dir, split, name), exist_ok=True)
    for index in range(count):
      image, label, box = draw(cfg, pools, split, index)
      rel = os.path.join(split, CLASSES[label], f"{index:05d}.png")
      Image.fromarray(image).save(os.path.join(out_dir, rel))
      boxes[rel] = box.tolist()
      if (index + 1) % 100 == 0 or index + 1 == count:
        print(f"faces: {split} {index + 1}/{count}", flush=True)
  record = {"config": config, "boxes": boxes}
  with open(record_path, "w") as fh:
    json.dump(record, fh)
  return record
