"""Cell geometry and resampling: the authors' integer cells and half-pixel
bilinear resize, the box filter, and the continuous align-corners cells."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.model import resampling
from tnet_tf.model import sources
from tnet_tf.model.tnet import TNet


def _cells(size, n, c):
  """[start, end) of each cell of a region of ``size`` px (one axis)."""
  side, stride, before = resampling.pixel_grid(size, n, c)
  return [(j * stride - before, j * stride - before + side) for j in range(n)]


def test_integer_cells_are_the_authors():
  # worked from ImageNet/models.py (create_masked_batch): side round(c·s),
  # stride rounded up, the overhang padded before (the larger half)
  assert _cells(224, 5, 0.34375) == [(-1, 76), (36, 113), (73, 150),
                                     (110, 187), (147, 224)]
  assert _cells(448, 5, 0.35) == [(-1, 156), (72, 229), (145, 302),
                                  (218, 375), (291, 448)]
  assert _cells(448, 3, 0.5) == [(0, 224), (112, 336), (224, 448)]
  assert _cells(896, 3, 0.5) == [(0, 448), (224, 672), (448, 896)]
  # the same arithmetic on tensors (dynamic image sizes)
  side, stride, before = resampling.pixel_grid(tf.constant(448), 5, 0.35)
  assert (float(side), float(stride), float(before)) == (157, 73, 1)


def _model_cells(size, n, c, r):
  model = TNet(tiny_config(levels=2, locations=(n * n,), grid_size=n,
                           cell_fraction=c, base_resolution=r,
                           backbone_kwargs={"widths": (8, 8, 8)}))
  out = model(np.zeros((1, size, size, 3), np.uint8), training=False)
  return sorted(tuple(int(round(v)) for v in box)
                for box in out["boxes"].numpy()[0, 1:])


def test_tnet_attends_the_authors_cells_of_a_448_image():
  got = _model_cells(448, 3, 0.5, 32)
  want = sorted((y0, x0, y1, x1) for y0, y1 in _cells(448, 3, 0.5)
                for x0, x1 in _cells(448, 3, 0.5))
  assert got == want


def _window(image, y0, x0, side):
  """The cell's pixels, mid-grey where it overhangs the image."""
  h, w = image.shape[:2]
  padded = np.full((h + 2 * side, w + 2 * side, image.shape[2]), 127.5)
  padded[side:side + h, side:side + w] = image
  return padded[side + y0:side + y0 + side, side + x0:side + x0 + side]


@pytest.mark.parametrize("size,n,c,r", [(448, 5, 0.35, 224),  # up 157 → 224
                                        (224, 5, 0.34375, 32),  # down 77 → 32
                                        (448, 3, 0.5, 112)])  # 2×: a mean
def test_authors_cells_resized_half_pixel_bilinear(rng, size, n, c, r):
  image = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
  cells = resampling.create("authors", n, c)
  starts = [(y0, x0) for y0, _ in _cells(size, n, c)[:2]
            for x0, _ in _cells(size, n, c)[-2:]]
  boxes = tf.constant([[y / size, x / size, 0, 0] for y, x in starts],
                      tf.float32)
  got = cells.crops(None, tf.constant(image[None]), boxes,
                    tf.zeros([4], tf.int32), r, 2).numpy()
  side = resampling.pixel_grid(size, n, c)[0]
  for crop, (y0, x0) in zip(got, starts):
    want = tf.image.resize(_window(image, y0, x0, side)[None], [r, r],
                           "bilinear", antialias=False)[0]
    np.testing.assert_allclose(crop, want, atol=1e-2)  # float rounding
  if side == 2 * r:  # a 2× reduction is the exact 2×2 mean
    y0, x0 = starts[0]
    win = _window(image, y0, x0, side)
    mean = win.reshape(r, 2, r, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(got[0], mean, atol=1e-4)


def test_antialias_is_a_box_filter(rng):
  """At an integer ratio the box filter is the area mean; the authors'
  bilinear at 4× reads only 4 of every 16 pixels."""
  image = rng.integers(0, 256, (1, 128, 128, 3)).astype(np.uint8)
  area = tf.image.resize(image.astype(np.float32), [32, 32], "area")
  smooth = resampling.create("antialias", 3, 0.5).whole(None, image, 32)
  np.testing.assert_allclose(smooth, area, atol=1e-3)
  sharp = resampling.create("authors", 3, 0.5).whole(None, image, 32)
  assert float(tf.reduce_max(tf.abs(sharp - area))) > 20


def test_level_three_windows_are_cells_of_cells():
  cells = resampling.create("authors", 5, 0.35)
  assert cells.level_size((448, 600), 1) == (448, 600)
  assert cells.level_size((448, 600), 2) == (157, 210)  # round(0.35·s)
  assert cells.level_size((448, 600), 3) == (55, 74)


def test_unknown_resampling_is_named():
  with pytest.raises(ValueError, match="resampling must be one of"):
    tiny_config(resampling="lanczos")


def test_antialias_level_one_by_area_matches_the_supersampled_filter(rng):
  """The TF sampling takes level 1 from one area resize; TFLite's builtin
  sampling (no area op) supersamples: at an integer ratio both are the box
  filter, and at 1500 → 128 the area resize is the exact-ratio mean."""
  from tnet_tf.model.tnet import Sampling
  from tnet_tf.inference.tflite import BuiltinSampling
  image = rng.integers(0, 256, (2, 96, 96, 1)).astype(np.uint8)
  cells = resampling.create("antialias", 3, 0.5)
  by_area = cells.whole(Sampling(), image, 24)
  supersampled = cells.whole(BuiltinSampling(), image, 24)
  np.testing.assert_allclose(by_area, supersampled, atol=1e-3)
  big = rng.integers(0, 256, (1, 150, 150, 1)).astype(np.uint8)
  mean = float(big.mean())
  assert float(tf.reduce_mean(cells.whole(Sampling(), big, 128))) == (
      pytest.approx(mean, rel=1e-3))


def test_cells_inside_the_image_skip_the_padding_checks(rng):
  """896 px, a 3×3 grid of halves: every cell of levels 2–3 is inside the
  image, and sampling without the checks gives the same pixels; 448 px on
  the 5×5 grid of 35% cells overhangs by a pixel and keeps them."""
  cells = resampling.create("authors", 3, 0.5)
  assert cells.inside((896, 896), 3)
  assert not resampling.create("authors", 5, 0.35).inside((448, 448), 2)
  assert not cells.inside((tf.constant(896), 896), 2)  # not static
  image = tf.constant(rng.integers(0, 256, (2, 96, 96, 3)).astype(np.uint8))
  starts = tf.constant([[0.0, 24.0], [48.0, 48.0]])
  fast = cells._sample(image, starts, (48, 48), tf.constant([0, 1]), 16,
                       inside=True)
  checked = cells._sample(image, starts, (48, 48), tf.constant([0, 1]), 16)
  np.testing.assert_array_equal(fast.numpy(), checked.numpy())


@pytest.mark.parametrize("window", [48, 37])
def test_shrinking_inside_the_image_is_one_crop_and_resize(rng, window):
  """Where a window lies inside the image and is shrunk, TF's and TFLite's
  crop_and_resize from the first half-pixel centre to the last read the
  pixels the gathers read (float rounding of the box aside)."""
  from tnet_tf.model.tnet import Sampling
  from tnet_tf.inference.tflite import BuiltinSampling
  cells = resampling.create("authors", 3, 0.5)
  image = tf.constant(rng.integers(0, 256, (2, 96, 96, 3)).astype(np.uint8))
  starts = tf.constant([[0.0, 24.0], [96.0 - window, 7.0]])
  index = tf.constant([1, 0])
  gathered = cells._sample(image, starts, (window, window), index, 16,
                           inside=True)
  for sampling in (Sampling(), BuiltinSampling()):
    one_op = cells._sample(image, starts, (window, window), index, 16,
                           inside=True, sampling=sampling)
    np.testing.assert_allclose(one_op.numpy(), gathered.numpy(), atol=2e-3)
  # level 1 of a whole image too
  np.testing.assert_allclose(
      cells.whole(Sampling(), image, 32).numpy(),
      tf.image.resize(tf.cast(image, tf.float32), [32, 32], "bilinear",
                      antialias=False).numpy(), atol=2e-3)


def _grey_window(image, y0, x0, height, width):
  """``image[y0:y0+height, x0:x0+width]``, mid-grey (the authors' 0 in
  [-1, 1]) wherever the window leaves ``image``: their tf.pad of the
  batch the window is cut from."""
  out = np.full((height, width, image.shape[2]), resampling.PAD_VALUE)
  ys = slice(max(y0, 0), min(y0 + height, image.shape[0]))
  xs = slice(max(x0, 0), min(x0 + width, image.shape[1]))
  out[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = image[ys, xs]
  return out


class _Recorded(sources.ImageTensor):
  """Pixels in memory that keep every crop TNet reads, by level."""

  def __init__(self, images):
    super().__init__(tf.constant(images))
    self.read = {}

  def crops(self, resampling, sampling, boxes, box_image, r, depth,
            bounds=None):
    out = super().crops(resampling, sampling, boxes, box_image, r, depth,
                        bounds)
    self.read[depth] = out.numpy()
    return out


def test_level_three_cells_read_grey_beyond_their_region(rng):
  """A 3-level model on an image the grid does not tile: the authors cut a
  level-3 cell from its level-2 region (padded), not from the image, so
  where the cell overhangs the region it reads grey even though the image
  goes on there (fMoW/models_fMoW.py create_masked_batch on the batch of
  parent crops)."""
  h, w, r = 181, 130, 48  # level 2: 90×65 (pad 1×1); level 3: 45×32
  image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
  model = TNet(tiny_config(base_resolution=r, locations=(9, 9),
                           backbone_kwargs={"widths": (8, 8, 8)}))
  source = _Recorded(image[None])
  out = model(source, training=False)
  sides = [model.resampling.level_size((h, w), d) for d in (2, 3)]
  starts = np.round(out["boxes"].numpy()[0, :, :2]).astype(int)
  parents, cells = starts[1:10], starts[10:]
  overhanging = 0
  for i, ((cy, cx), crop) in enumerate(zip(cells, source.read[3])):
    py, px = parents[i // 9]  # the region the cell divides
    region = _grey_window(image, py, px, *sides[0])
    window = _grey_window(region, cy - py, cx - px, *sides[1])
    want = tf.image.resize(window[None], [r, r], "bilinear",
                           antialias=False)[0].numpy()
    np.testing.assert_allclose(crop, want, atol=1e-2)
    beyond = _grey_window(image, cy, cx, *sides[1])
    overhanging += not np.array_equal(beyond, window)
  # the cells whose overhang lies in the image, where reading the region's
  # padding differs from reading the image: the first row (column) of the
  # regions below (right of) the first: 4·5 + 2·3 + 2·3
  assert overhanging == 32
