"""Your own images: a folder tree of class subdirectories.

Layout: ``DIR/train/<class>/<image>`` with an optional ``DIR/val/<class>/``
(or ``validation/``) and ``test/``; or ``DIR/<class>/<image>`` alone. Without
a validation folder, a stratified ``val_fraction`` of the training images is
held out (by seed). Images may have any and mixed sizes and formats: JPEG,
PNG, BMP, GIF (decoded by TF) and TIFF (8- or 16-bit, through Pillow). A
file whose header cannot be read is skipped at the scan; one whose body is
corrupt is skipped when decoded; both are counted and logged.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tnet_tf.config import DataConfig
from tnet_tf.data import augment
from tnet_tf.data import pipeline

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff"}
# whole-slide images, read region by region (tnet_tf.data.regions)
SLIDE_EXTENSIONS = {".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms",
                    ".qptiff", ".btf", ".tf8"}
EXTENSIONS |= SLIDE_EXTENSIONS
_PIL_ONLY = (".tif", ".tiff")
_VAL_DIRS = ("val", "validation")


@dataclasses.dataclass(frozen=True)
class FolderSplits:
  """The scanned tree: class names and (path, label) lists per split."""
  classes: tuple[str, ...]
  files: dict  # split -> list[(path, label)]
  unreadable: tuple[str, ...]  # skipped at the scan
  ignored: tuple[str, ...]  # not image files
  slides: bool = False  # some files are read region by region (is_slide)


def _kind(path: str) -> Optional[str]:
  """"slide" (``is_slide``), "image" (its header reads) or None."""
  from PIL import Image  # local: only the scan needs it
  if is_slide(path):
    return "slide"
  try:
    with Image.open(path) as image:
      image.size  # pylint: disable=pointless-statement
    return "image"
  except Exception:  # pylint: disable=broad-except
    return None


def is_slide(path: str) -> bool:
  """A file read region by region: a slide format, or a TIFF with a
  pyramid or too large to decode whole (its header says; a TIFF tifffile
  cannot read is not one)."""
  from tnet_tf.data import regions
  ext = os.path.splitext(path)[1].lower()
  if ext in regions.OPENSLIDE_EXTENSIONS or ext in SLIDE_EXTENSIONS - {
      ".btf", ".tf8"}:
    return True
  if ext not in regions.TIFF_EXTENSIONS:
    return False
  try:
    source = regions.TiffSource(path, check_levels=False)
  except regions.RegionReadError:
    return False
  h, w = source.level_shapes[0]
  source.close()
  return len(source.level_shapes) > 1 or h * w > regions.MAX_PIXELS


def _class_files(root: str, classes: Optional[tuple[str, ...]] = None):
  """(classes, {class: [image paths]}, unreadable, ignored, slides) of
  one tree (``slides``: the image paths that are slides)."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root} is not a directory")
  found = sorted(d for d in os.listdir(root)
                 if os.path.isdir(os.path.join(root, d)) and
                 not d.startswith("."))
  if classes is not None:
    extra = sorted(set(found) - set(classes))
    if extra:
      raise ValueError(f"{root} has classes that the training folder does "
                       f"not have: {extra}")
  files, unreadable, ignored, slides = {}, [], [], []
  for name in found:
    paths = []
    folder = os.path.join(root, name)
    for dirpath, dirnames, filenames in os.walk(folder):
      dirnames.sort()
      for filename in sorted(filenames):
        path = os.path.join(dirpath, filename)
        if filename.startswith("."):
          continue
        if os.path.splitext(filename)[1].lower() not in EXTENSIONS:
          ignored.append(path)
        elif (kind := _kind(path)) is not None:
          paths.append(path)
          if kind == "slide":
            slides.append(path)
        else:
          unreadable.append(path)
    files[name] = paths
  return tuple(found), files, unreadable, ignored, slides


def scan(data_dir: str, val_fraction: float = 0.1, seed: int = 0
         ) -> FolderSplits:
  """Finds the classes and images of ``data_dir`` (clear errors if unfit)."""
  if not data_dir or not os.path.isdir(data_dir):
    raise FileNotFoundError(f"--data_dir={data_dir!r} is not a directory")
  train_root = os.path.join(data_dir, "train")
  if not os.path.isdir(train_root):
    train_root = data_dir
  classes, train, unreadable, ignored, slides = _class_files(train_root)
  if not classes:
    raise ValueError(f"{train_root} has no class subdirectories; expected "
                     f"{train_root}/<class>/<image files>")
  if len(classes) < 2:
    raise ValueError(f"{train_root} has one class ({classes[0]!r}); a "
                     "classifier needs at least two class subdirectories")
  empty = [os.path.join(train_root, c) for c in classes if not train[c]]
  if empty:
    raise ValueError(f"class folders without readable images "
                     f"({'/'.join(sorted(EXTENSIONS))}): {empty}")
  label = {name: i for i, name in enumerate(classes)}
  splits: dict = {}
  val_root = next((os.path.join(data_dir, d) for d in _VAL_DIRS
                   if train_root != data_dir and
                   os.path.isdir(os.path.join(data_dir, d))), None)
  if val_root:
    _, val, bad, skip, more = _class_files(val_root, classes)
    unreadable += bad
    ignored += skip
    slides += more
    splits["validation"] = _interleaved(
        [[(p, label[c]) for p in val.get(c, [])] for c in classes])
    splits["train"] = _interleaved(
        [[(p, label[c]) for p in train[c]] for c in classes])
  else:
    if not 0 < val_fraction < 1:
      raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    kept, held_out = [], []
    for c in classes:  # stratified: every class keeps a training image
      paths = list(train[c])
      rng.shuffle(paths)
      held = min(int(round(val_fraction * len(paths))), len(paths) - 1)
      held_out.append([(p, label[c]) for p in sorted(paths[:held])])
      kept.append([(p, label[c]) for p in sorted(paths[held:])])
    splits["train"], splits["validation"] = (_interleaved(kept),
                                             _interleaved(held_out))
  test_root = os.path.join(data_dir, "test")
  if train_root != data_dir and os.path.isdir(test_root):
    _, test, bad, skip, more = _class_files(test_root, classes)
    unreadable += bad
    ignored += skip
    slides += more
    splits["test"] = _interleaved(
        [[(p, label[c]) for p in test.get(c, [])] for c in classes])
  for path in unreadable:
    logging.warning("skipped an unreadable image file: %s", path)
  if unreadable:
    logging.warning("skipped %d unreadable image file(s) in %s",
                    len(unreadable), data_dir)
  if ignored:
    logging.info("ignored %d files that are not images (%s), e.g. %s",
                 len(ignored), "/".join(sorted(EXTENSIONS)), ignored[0])
  slides = bool(slides)
  if slides:
    logging.info("%s holds slides: every image is read region by region "
                 "(tnet_tf.data.regions), on a canvas of the largest", data_dir)
  return FolderSplits(classes, splits, tuple(unreadable), tuple(ignored),
                      slides)


def _interleaved(per_class: list[list]) -> list:
  """The classes' lists merged by rank (item i of a class of n at i / n):
  any prefix of a split — the trainer's monitor, the pictures — holds
  every class in proportion."""
  ranked = sorted(((i / len(items), c, i)
                   for c, items in enumerate(per_class)
                   for i in range(len(items))))
  return [per_class[c][i] for _, c, i in ranked]


def listing(data_dir: str) -> tuple:
  """Every file under ``data_dir`` with its size and modification time
  (what a scan's result depends on; cheap next to opening the images)."""
  entries = []
  for dirpath, dirnames, filenames in os.walk(data_dir):
    dirnames.sort()
    for name in sorted(filenames):
      stat = os.stat(os.path.join(dirpath, name))
      entries.append((dirpath, name, stat.st_size, stat.st_mtime_ns))
  return tuple(entries)


@functools.lru_cache(maxsize=8)
def _memo_scan(data_dir: str, val_fraction: float, seed: int,
               files: tuple) -> FolderSplits:
  del files  # part of the key only: a changed tree is scanned again
  return scan(data_dir, val_fraction, seed)


def _splits(cfg: DataConfig) -> FolderSplits:
  data_dir = os.path.abspath(cfg.data_dir or "")
  return _memo_scan(data_dir, float(cfg.options.get("val_fraction", 0.1)),
                    cfg.seed, listing(data_dir))


def _pil_decode(path: bytes) -> np.ndarray:
  """Any Pillow-readable image (8/16-bit TIFF included) → uint8 [H, W, 3]."""
  from PIL import Image  # local: only TIFFs need it
  with Image.open(path.decode()) as image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
      array = np.asarray(image, dtype=np.float64)
      top = 65535.0 if image.mode.startswith("I;16") else max(
          float(array.max()), 1.0)
      array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
      return np.repeat(array[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def files(cfg: DataConfig, split: str) -> list:
  """(path, label) pairs of ``split`` (clear errors if absent or empty)."""
  folder = _splits(cfg)
  if split not in folder.files:
    raise ValueError(f"split {split!r} is not in {cfg.data_dir}: available "
                     f"{sorted(folder.files)}")
  if not folder.files[split]:
    raise ValueError(f"split {split!r} of {cfg.data_dir} has no images")
  return folder.files[split]


def dataset(split: str, cfg: DataConfig, training: bool, seed: int,
            counter: Optional[pipeline.SkipCounter] = None
            ) -> tf.data.Dataset:
  """Unbatched ``(uint8 image [H, W, 3], int32 label)`` at ``image_size``;
  ``seed`` seeds shuffling and augmentation (``cfg.seed`` the hold-out)."""
  if _splits(cfg).slides:
    return _slide_dataset(split, cfg, training, seed, counter)
  pairs = files(cfg, split)
  paths = [p for p, _ in pairs]
  records = tf.data.Dataset.from_tensor_slices((
      paths, np.array([l for _, l in pairs], np.int32),
      [os.path.splitext(p)[1].lower() in _PIL_ONLY for p in paths]))
  size = tuple(cfg.image_size)
  options = {k: v for k, v in cfg.options.items() if k != "val_fraction"}
  aug = augment.augment_config(options.pop("augmentation", "flip"),
                               **options)
  whole = tf.constant([0.0, 0.0, 1.0, 1.0])

  def decoder(record, seed):
    path, label, pil_only = record

    def with_pil():
      image = tf.numpy_function(_pil_decode, [path], tf.uint8)
      image.set_shape([None, None, 3])
      return image

    def image(transform):
      return tf.cond(pil_only, lambda: transform(with_pil()),
                     lambda: transform(tf.io.read_file(path)))

    if training:
      return image(lambda source: augment.train_image(
          source, whole, size, aug, seed)), label
    return image(lambda source: augment.eval_image(source, size,
                                                   aug.antialias)), label

  return pipeline.build_pipeline(
      records, decoder, name=split, training=training, seed=seed,
      shuffle_buffer=min(cfg.shuffle_buffer, len(pairs)) or 1,
      total=len(pairs), counter=counter)


def slide_table(cfg: DataConfig):
  """The ``tnet_tf.data.regions.SlideTable`` of every file of every split when
  the tree holds slides (``dataset`` then yields indices into it), else
  None."""
  folder = _splits(cfg)
  return _memo_table(tuple(_all_paths(folder))) if folder.slides else None


@functools.lru_cache(maxsize=4)
def _memo_table(paths: tuple):
  from tnet_tf.data import regions
  return regions.SlideTable(paths)


def _all_paths(folder: FolderSplits) -> list:
  return [p for split in sorted(folder.files) for p, _ in folder.files[split]]


def _slide_dataset(split, cfg, training, seed, counter):
  """``(int32 index into slide_table(cfg), int32 label)``: TNet reads the
  images from their files as it attends (no augmentation)."""
  folder = _splits(cfg)
  index = {p: i for i, p in enumerate(_all_paths(folder))}
  pairs = files(cfg, split)
  records = tf.data.Dataset.from_tensor_slices((
      np.array([index[p] for p, _ in pairs], np.int32),
      np.array([l for _, l in pairs], np.int32)))
  return pipeline.build_pipeline(
      records, lambda record, _: record, name=split, training=training,
      seed=seed, shuffle_buffer=min(cfg.shuffle_buffer, len(pairs)) or 1,
      total=len(pairs), counter=counter)


def info(cfg: DataConfig) -> dict:
  folder = _splits(cfg)
  return {"classes": list(folder.classes),
          "splits": {k: len(v) for k, v in folder.files.items()},
          "unreadable_files": list(folder.unreadable),
          "ignored_files": len(folder.ignored)}
