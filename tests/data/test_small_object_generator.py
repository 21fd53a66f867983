"""The small-object task: one object, its box, the same brightness for
every shape."""
import numpy as np
import pytest

from tnet_tf.data import small_object as so

CFG = so.SmallObjectConfig(train_examples=40, test_examples=8)


@pytest.mark.parametrize("shape", so.SHAPES)
def test_every_shape_has_the_same_mean_brightness(shape):
  mask = so.shape_mask(shape, 16)
  assert mask.shape == (16, 16)
  assert mask.mean() == pytest.approx(so.MASK_MEAN, abs=1e-9)
  assert mask.max() <= 1.0


def test_shapes_differ_up_close():
  masks = [so.shape_mask(s, 16) > 0.5 for s in so.SHAPES]
  for a in range(len(masks)):
    for b in range(a):
      assert (masks[a] != masks[b]).mean() > 0.15


def test_draw_is_deterministic_and_the_box_holds_the_object():
  image, label, box = so.draw(CFG, "train", 3)
  again, label2, box2 = so.draw(CFG, "train", 3)
  np.testing.assert_array_equal(image, again)
  assert label == label2 and (box == box2).all()
  other, _, _ = so.draw(CFG, "test", 3)
  assert not np.array_equal(image, other)  # splits do not share canvases
  assert image.shape == (256, 256, 1) and image.dtype == np.uint8
  y0, x0, y1, x1 = box.astype(int)
  assert (y1 - y0, x1 - x0) == (16, 16) and 0 <= y0 and y1 <= 256
  # the object's mask reads at its brightness inside the box
  mask = so.shape_mask(so.SHAPES[label], 16)
  inside = image[y0:y1, x0:x1, 0][mask == mask.max()].astype(float)
  # the shape's pixels are at its brightness (>= half of 255), blended
  assert np.median(inside) >= 0.5 * 255 * mask.max()
  outside = np.median(image[..., 0])  # the clutter's background, ~40
  assert outside < 60


def test_labels_cover_the_classes_and_datasets_carry_boxes():
  labels = [int(so.draw(CFG, "train", i)[1]) for i in range(40)]
  assert set(labels) == set(range(CFG.num_classes))
  two = so.SmallObjectConfig(num_classes=2, test_examples=8)
  ds = so.dataset("test", two, with_boxes=True).batch(8)
  batch = next(iter(ds))
  assert batch["boxes"].shape == (8, 1, 4)
  assert set(batch["label"].numpy()) <= {0, 1}


def test_the_downscaled_view_shows_a_blob_not_a_shape():
  # at the base resolution (256 -> 32 px) each shape is a 2x2 blob of the
  # same mean: the area-averaged object cells of two shapes agree closely
  means = []
  for shape in so.SHAPES:
    mask = so.shape_mask(shape, 16)
    means.append(mask.reshape(2, 8, 2, 8).mean(axis=(1, 3)))
  spread = np.ptp(np.stack(means), axis=0)
  assert spread.max() < 0.25


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 5}, "num_classes"),
    ({"canvas_size": 64}, "8 px"),
])
def test_bad_configuration_is_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    so.SmallObjectConfig(**kwargs)
