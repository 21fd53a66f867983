import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.data import megapixel_digits as md

SMALL = md.MegapixelDigitsConfig(canvas_size=128, digit_size=16,
                                 train_examples=24, validation_examples=8,
                                 test_examples=12)


def test_majority_label_and_non_overlapping_boxes():
  data = md.generate("train", SMALL)
  assert data["images"].shape == (24, 128, 128, 1)
  assert data["images"].dtype == np.uint8
  for label, classes, boxes in zip(data["labels"], data["digit_labels"],
                                   data["boxes"]):
    counts = np.bincount(classes, minlength=10)
    assert counts.argmax() == label and counts[label] == 3
    assert list(classes[:3]) == [label] * 3  # targets first
    assert np.all(boxes >= 0) and np.all(boxes <= 128)
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 16)
    for i in range(5):
      for j in range(i + 1, 5):
        a, b = boxes[i], boxes[j]
        overlap = (min(a[2], b[2]) > max(a[0], b[0]) and
                   min(a[3], b[3]) > max(a[1], b[1]))
        assert not overlap


def test_digits_are_drawn_inside_their_boxes():
  data = md.generate("test", SMALL)
  img, boxes = data["images"][0, ..., 0].astype(float), data["boxes"][0]
  for y0, x0, y1, x1 in boxes.astype(int):
    assert img[y0:y1, x0:x1].max() > 200  # bright strokes
  assert np.median(img) < 60  # dark background


def test_deterministic_and_splits_differ():
  a = md.generate("train", SMALL)
  b = md.generate("train", SMALL)
  np.testing.assert_array_equal(a["images"], b["images"])
  c = md.generate("test", SMALL)
  assert not np.array_equal(a["images"][:12], c["images"])
  other_seed = md.generate("train", md.MegapixelDigitsConfig(
      canvas_size=128, digit_size=16, train_examples=24, seed=1))
  assert not np.array_equal(a["images"], other_seed["images"])


def test_train_and_test_glyphs_are_disjoint():
  train, _ = md.glyphs("train", SMALL)
  test, _ = md.glyphs("test", SMALL)
  train_set = {g.tobytes() for g in train}
  shared = sum(g.tobytes() in train_set for g in test)
  # sklearn's digits hold a handful of exact duplicates; the pools are
  # disjoint sets of instances, so at most those may coincide
  assert shared <= 5
  assert len(train) + len(test) == 1797


def test_tfrecord_cache_round_trip(tmp_path):
  directory = md.prepare(SMALL, str(tmp_path), ("train",))
  assert (tmp_path / "megapixel_digits" / SMALL.fingerprint()).is_dir()
  mtime = (tmp_path / "megapixel_digits" / SMALL.fingerprint() /
           "train.tfrecord").stat().st_mtime
  md.prepare(SMALL, str(tmp_path), ("train",))  # cached: not rewritten
  assert (tmp_path / "megapixel_digits" / SMALL.fingerprint() /
          "train.tfrecord").stat().st_mtime == mtime
  expected = md.generate("train", SMALL)
  ds = md.dataset("train", SMALL, str(tmp_path), with_boxes=True)
  rows = list(ds.as_numpy_iterator())
  assert len(rows) == 24 and directory
  np.testing.assert_array_equal(np.stack([r["image"] for r in rows]),
                                expected["images"])
  np.testing.assert_array_equal([r["label"] for r in rows],
                                expected["labels"])
  np.testing.assert_allclose(np.stack([r["boxes"] for r in rows]),
                             expected["boxes"])
  image, label = next(iter(md.dataset("train", SMALL, str(tmp_path))))
  assert image.shape == (128, 128, 1) and label.dtype == tf.int32


def test_texture_background():
  cfg = md.MegapixelDigitsConfig(canvas_size=128, digit_size=16,
                                 texture="gravel", train_examples=2)
  plain = md.generate("train", md.MegapixelDigitsConfig(
      canvas_size=128, digit_size=16, train_examples=2))
  textured = md.generate("train", cfg)
  assert textured["images"].mean() > plain["images"].mean() + 20


@pytest.mark.parametrize("kwargs,match", [
    ({"texture": "marble"}, "texture must be one of"),
    ({"num_target": 2}, "strict majority"),
    ({"canvas_size": 40, "digit_size": 24}, "do not fit"),
])
def test_bad_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    md.MegapixelDigitsConfig(**kwargs)


def test_unknown_split():
  with pytest.raises(ValueError, match="split must be one of"):
    md.generate("dev", SMALL)
