"""Megapixel MNIST: the published construction, checked canvas by canvas."""
import dataclasses
import os

import numpy as np
import pytest

from tnet_tf.data import megapixel_mnist as mm

SMALL = mm.MegapixelMNISTConfig(canvas_size=300, num_noise=20,
                                train_examples=24, validation_examples=4,
                                test_examples=12)


def test_digit_pools_are_disjoint_real_mnist():
  train, train_labels = mm.digit_pool("train", SMALL)
  test, test_labels = mm.digit_pool("test", SMALL)
  assert train.shape == (4000, 28, 28) and test.shape == (1000, 28, 28)
  assert np.bincount(test_labels).tolist() == [100] * 10
  assert np.bincount(train_labels).tolist() == [400] * 10
  # no digit image is in both pools
  flat = {t.tobytes() for t in train}
  assert not any(t.tobytes() in flat for t in test)
  assert train.max() == 255 and train.dtype == np.uint8


def test_layout_follows_the_published_construction():
  out = mm.layout("train", SMALL)
  _, labels = mm.digit_pool("train", SMALL)
  size = SMALL.canvas_size
  for i in range(SMALL.train_examples):
    classes = labels[out["digits"][i]]
    # 3 digits of the target class, 2 of other classes; label = majority
    assert (classes[:3] == out["labels"][i]).all()
    assert (classes[3:] != out["labels"][i]).all()
    assert out["decisive"][i].tolist() == [True] * 3 + [False] * 2
    pos = out["digit_pos"][i]
    assert pos.min() >= 0 and pos.max() <= size - 28
    for a in range(5):  # no two digits within 28 px on both axes
      for b in range(a):
        d = np.abs(pos[a] - pos[b])
        assert d[0] >= 28 or d[1] >= 28
  noise = out["noise_pos"]
  assert noise.shape == (SMALL.train_examples, 20, 2)
  assert noise.min() >= 28 and noise.max() < size - 28


def test_layout_is_deterministic_by_seed():
  a, b = mm.layout("test", SMALL), mm.layout("test", SMALL)
  c = mm.layout("test", dataclasses.replace(SMALL, seed=1))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a["digit_pos"], c["digit_pos"])


def test_noise_patterns_are_two_bright_lines():
  bank = mm.noise_bank(np.random.default_rng(0), 50)
  assert bank.shape == (50, 28, 28)
  on = bank[bank > 0]
  assert on.min() >= int(0.8 * 255) - 1 and on.max() <= 255
  # two lines of 56 samples each, across the patch: 28..112 pixels
  counts = (bank > 0).reshape(50, -1).sum(1)
  assert counts.min() >= 28 and counts.max() <= 112
  # both lines start at one corner of the patch
  corners = bank[:, [0, 0, -1, -1], [0, -1, 0, -1]]
  assert ((corners > 0).sum(1) >= 1).all()


@pytest.mark.parametrize("rule", ["max", "top"])
def test_ips_label_rules(rule):
  classes = np.array([4, 4, 4, 7, 1])
  positions = np.array([[500, 0], [300, 0], [400, 0], [900, 0], [100, 0]])
  label, decisive = mm._label(classes, positions, rule, 3)
  assert (label, decisive) == ((7, [3]) if rule == "max" else (1, [4]))


def test_canvas_draws_digits_over_noise_and_boxes_mark_the_target(tmp_path):
  ds = mm.dataset("test", SMALL, str(tmp_path), with_boxes=True)
  example = next(iter(ds))
  out = mm.layout("test", SMALL)
  digits, _ = mm.digit_pool("test", SMALL)
  image = example["image"].numpy()[..., 0]
  assert image.shape == (300, 300)
  for k, (y, x) in zip(out["digits"][0], out["digit_pos"][0]):
    np.testing.assert_array_equal(image[y:y + 28, x:x + 28], digits[k])
  boxes = example["boxes"].numpy()
  np.testing.assert_array_equal(boxes[:3, :2], out["digit_pos"][0][:3])
  np.testing.assert_array_equal(boxes[:3, 2:] - boxes[:3, :2], 28)
  assert (boxes[3:] == 0).all()  # not deciding: empty boxes
  assert int(example["label"]) == out["labels"][0]
  # stored once, by configuration
  assert os.path.exists(mm.cache_path(SMALL, "test", str(tmp_path)))


def test_fresh_positions_move_the_same_digits(tmp_path):
  cfg = dataclasses.replace(SMALL, fresh_positions=True)
  records, decoder = mm.layouts("train", cfg, str(tmp_path))
  record = next(iter(records))
  image_a, label = decoder(True)(record, np.array([0, 1]))
  image_b, _ = decoder(True)(record, np.array([0, 2]))
  fixed, _ = decoder(False)(record, np.array([0, 1]))
  assert not np.array_equal(image_a.numpy(), image_b.numpy())
  assert int(label) == int(record[4])
  # the same five digits (the same ink), elsewhere
  digits, _ = mm.digit_pool("train", cfg)
  out = mm.layout("train", cfg)
  y, x = out["digit_pos"][0][0]
  np.testing.assert_array_equal(fixed.numpy()[y:y + 28, x:x + 28, 0],
                                digits[out["digits"][0][0]])


@pytest.mark.parametrize("kwargs, message", [
    ({"label_rule": "mean"}, "label_rule"),
    ({"num_target": 2}, "majority"),
    ({"canvas_size": 64}, "canvas_size"),
    ({"fresh_positions": True, "label_rule": "top"}, "top-most"),
])
def test_bad_configuration_is_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    mm.MegapixelMNISTConfig(**kwargs)


def test_digit_cells_hold_one_whole_pool_digit_of_their_label():
  """Without noise a cell is exactly one digit of its split's pool, of the
  returned label, wholly inside; with noise, patterns around it."""
  quiet = dataclasses.replace(SMALL, num_noise=0)
  for split in ("train", "test"):
    pool, labels = mm.digit_pool(split, quiet)
    cells, classes = mm.Renderer(split, quiet).digit_cells(
        40, 6, np.random.default_rng(0))
    assert cells.shape == (6, 40, 40, 1) and cells.dtype == np.uint8
    for cell, label in zip(cells[..., 0], classes):
      windows = np.lib.stride_tricks.sliding_window_view(cell, (28, 28))
      ink_outside = cell.sum() - windows.reshape(-1, 28, 28).sum((1, 2))
      same = (windows.reshape(-1, 1, 784) ==
              pool[labels == label].reshape(1, -1, 784)).all(-1)
      assert same.any(), "no pool digit of the label wholly in the cell"
      hit = np.flatnonzero(same.any(1))
      assert (ink_outside[hit] == 0).any()  # nothing else on the cell
  noisy = mm.MegapixelMNISTConfig(num_noise=5000)  # ~1 pattern per 450 px²
  cells, _ = mm.Renderer("train", noisy).digit_cells(
      135, 8, np.random.default_rng(0))
  assert (cells > 0).mean() > 0.03  # a digit alone inks ~1% of 135²
  with pytest.raises(ValueError, match="cell"):
    mm.Renderer("train", SMALL).digit_cells(20, 1, np.random.default_rng(0))
