import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.model.layers import grid


@pytest.mark.parametrize("n,c", [(5, 0.34375), (3, 0.5), (5, 0.35), (2, 0.6)])
def test_cells_tile_parent_exactly(n, c):
  cells = grid.cell_boxes(n, c)
  assert cells.shape == (n * n, 4)
  np.testing.assert_allclose(cells[:, 2] - cells[:, 0], c)
  np.testing.assert_allclose(cells[:, 3] - cells[:, 1], c)
  rows = cells[::n, 0]  # y0 of each grid row
  cols = cells[:n, 1]
  for starts in (rows, cols):
    assert starts[0] == 0.0
    np.testing.assert_allclose(starts[-1] + c, 1.0)
    np.testing.assert_allclose(np.diff(starts), (1 - c) / (n - 1))
  # row-major: index 1 is the second cell of the first row
  assert cells[1, 0] == 0.0 and cells[1, 1] > 0.0
  # union covers every point of the parent
  pts = np.linspace(0, 1, 101)
  covered = [(np.any((cols <= p) & (p <= cols + c))) for p in pts]
  assert all(covered)


def test_imagenet_cells_are_77_px_of_224():
  cells = grid.cell_boxes(5, 0.34375) * 224
  np.testing.assert_allclose(cells[:, 2] - cells[:, 0], 77.0)
  np.testing.assert_allclose(cells[:5, 1], [0, 36.75, 73.5, 110.25, 147])


def test_bad_grid_arguments():
  with pytest.raises(ValueError, match="cell_fraction"):
    grid.cell_boxes(3, 0.0)
  with pytest.raises(ValueError, match="gaps"):
    grid.cell_boxes(5, 0.1)
  with pytest.raises(ValueError, match="grid_size"):
    grid.cell_boxes(0, 0.5)


def test_child_boxes_nest_inside_parent():
  parent = tf.constant([[0.25, 0.5, 0.75, 1.0]])
  cells = tf.constant(grid.cell_boxes(3, 0.5), tf.float32)
  children = grid.child_boxes(parent[:, None, :], cells[None]).numpy()[0]
  assert np.all(children[:, 0] >= 0.25) and np.all(children[:, 2] <= 0.75)
  assert np.all(children[:, 1] >= 0.5) and np.all(children[:, 3] <= 1.0)
  np.testing.assert_allclose(children[0], [0.25, 0.5, 0.5, 0.75])
  np.testing.assert_allclose(children[-1], [0.5, 0.75, 0.75, 1.0])


def test_to_pixels_non_square():
  boxes = tf.constant([[0.0, 0.0, 0.5, 0.25]])
  px = grid.to_pixels(boxes, tf.constant([100, 400])).numpy()
  np.testing.assert_allclose(px, [[0, 0, 50, 100]])


@pytest.mark.parametrize("box_px", [(0, 0, 16, 16), (8, 24, 24, 40),
                                    (5, 3, 29, 51), (40, 10, 64, 70)])
def test_crop_equals_slice_and_resize(box_px, rng):
  """A pixel-aligned box cropped by crop_and_resize is the slice, resized
  with align-corners bilinear interpolation (exactly the slice at size r)."""
  image = rng.uniform(0, 255, (1, 64, 80, 3)).astype(np.float32)
  y0, x0, y1, x1 = box_px
  norm = tf.constant([[y0 / 64, x0 / 80, y1 / 64, x1 / 80]], tf.float32)
  size = 16
  crop = tf.image.crop_and_resize(image, grid.crop_boxes(norm, [64, 80]),
                                  [0], [size, size]).numpy()
  direct = tf.compat.v1.image.resize_bilinear(
      image[:, y0:y1, x0:x1], [size, size], align_corners=True).numpy()
  np.testing.assert_allclose(crop, direct, atol=1e-3)
  if (y1 - y0, x1 - x0) == (size, size):
    np.testing.assert_allclose(crop, image[:, y0:y1, x0:x1], atol=1e-3)


def test_max_levels():
  assert grid.max_levels((224, 224), 77, 0.34375) == 2
  assert grid.max_levels((448, 448), 224, 0.5) == 2
  assert grid.max_levels((896, 896), 224, 0.5) == 3
  assert grid.max_levels((896, 448), 224, 0.5) == 2  # shorter side rules
  assert grid.max_levels((448, 448), 224, 0.35) == 1  # CUB must upsample
  assert grid.max_levels((100, 100), 224, 0.5) == 1


def test_grid_sample_indices():
  assert grid.grid_sample_indices(28, 5, 0.35) == [4, 9, 14, 18, 23]
  assert grid.grid_sample_indices(4, 2, 0.5) == [1, 3]


def test_cells_at_the_image_edge_have_no_black_border():
  """crop_and_resize writes 0 for samples past the last pixel, where
  float32 rounding can put the last sample of a box ending there: TNet's
  cells never get there (levels 2 and 3 were checked at 64..1099, 1792 and
  3584 px on the three paper grids)."""
  cells = tf.constant(grid.cell_boxes(5, 0.35), tf.float32)
  for size in range(100, 260, 3):
    image = tf.fill([1, size, size + 5, 1], 200.0)
    boxes = grid.crop_boxes(cells, tf.constant([size, size + 5]))
    crops = tf.image.crop_and_resize(image, boxes, tf.zeros([25], tf.int32),
                                     [32, 32])
    assert float(tf.reduce_min(crops)) == pytest.approx(200.0), size


def test_overlapping_cells_by_hand():
  # 3×3 cells half the side: stride 1/4, so neighbours share area and
  # cells two apart only touch
  over = grid.overlapping_cells(3, 0.5)
  assert over.shape == (9, 9) and over.diagonal().all()
  assert over[0, 1] and over[0, 4] and not over[0, 2] and not over[0, 8]
  np.testing.assert_array_equal(over, over.T)
  assert not grid.overlapping_cells(4, 0.25)[0, 1]  # a tiling: no overlap


def test_suppressed_top_k_passes_over_overlapping_cells():
  over = grid.overlapping_cells(3, 0.5)
  scores = tf.constant([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
  # 0 first (1, 3, 4 overlap it), then 2 (5 overlaps it), then 6 (7
  # overlaps it), then 8: the four corners
  np.testing.assert_array_equal(
      grid.suppressed_top_k(scores, 4, over).numpy(), [[0, 2, 6, 8]])
  # past the clear cells: the best not taken, in order
  np.testing.assert_array_equal(
      grid.suppressed_top_k(scores, 6, over).numpy(), [[0, 2, 6, 8, 1, 3]])
  # a tensor k, two rows
  two = tf.stack([scores[0], scores[0][::-1]])
  out = grid.suppressed_top_k(two, tf.constant(2), over).numpy()
  np.testing.assert_array_equal(out, [[0, 2], [8, 6]])
