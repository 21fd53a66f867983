"""Generated pyramidal slides (tnet_tf.data.slides)."""
import zlib

import numpy as np
import pytest
import tifffile

from tnet_tf.data import slides


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("slides") / "slide.tif")
  spec = slides.SlideSpec(size=2048, label=1, lesions=2, lesion_px=64,
                          min_level_px=512, seed=5)
  return path, spec, slides.write(path, spec)


def test_a_tiled_pyramid_of_halving_levels(written):
  path, spec, info = written
  assert info["levels"] == [2048, 1024, 512] and info["label"] == 1
  with tifffile.TiffFile(path) as tif:
    series = tif.series[0]
    assert [l.shape for l in series.levels] == [
        (2048, 2048, 3), (1024, 1024, 3), (512, 512, 3)]
    assert all(p.is_tiled and p.tilewidth == spec.tile
               for p in [tif.pages[0]] + list(tif.pages[0].pages))


def test_levels_agree_and_lesions_lie_where_the_boxes_say(written):
  path, spec, info = written
  with tifffile.TiffFile(path) as tif:
    full = tif.series[0].levels[0].asarray()
    half = tif.series[0].levels[1].asarray()
  # a 2×2 mean of level 0 against level 1: the same slide (the texture's
  # edges and the lesions' rims differ by a pixel at most)
  mean = full.reshape(1024, 2, 1024, 2, 3).mean((1, 3))
  assert np.mean(np.abs(mean - half.astype(float)) > 60) < 0.02
  for y0, x0, y1, x1 in np.round(info["boxes"]).astype(int):
    box = full[y0:y1, x0:x1]
    dark = np.all(box == (90, 40, 110), -1)
    assert 0.2 < dark.mean() < 0.8  # a ring: dark rim, tissue inside
    assert not dark[(y1 - y0) // 2, (x1 - x0) // 2]
  lesion = np.all(full == (90, 40, 110), -1)
  inside = np.zeros_like(lesion)
  for y0, x0, y1, x1 in np.round(info["boxes"]).astype(int):
    inside[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = True
  assert not (lesion & ~inside).any()  # no lesion pixel outside a box
  assert (full == slides.BACKGROUND).all(-1).mean() > 0.3  # mostly glass


def test_deterministic_by_seed_and_discs_for_class_0():
  a = slides.Slide(slides.SlideSpec(size=1024, seed=2, lesion_px=32))
  b = slides.Slide(slides.SlideSpec(size=1024, seed=2, lesion_px=32))
  np.testing.assert_array_equal(a.boxes, b.boxes)
  y0, x0, y1, x1 = a.boxes[0]
  t = a.spec.tile
  ty, tx = int((y0 + y1) / 2) // t, int((x0 + x1) / 2) // t
  tile = a.tile(0, ty, tx)
  np.testing.assert_array_equal(tile, b.tile(0, ty, tx))
  cy, cx = int((y0 + y1) / 2) - ty * t, int((x0 + x1) / 2) - tx * t
  assert tuple(tile[cy, cx]) == (90, 40, 110)  # a disc: dark at its centre


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 300}, "size"), ({"size": 2048, "label": 2}, "label"),
    ({"size": 2048, "tile": 100}, "tile"),
    ({"size": 2048, "lesion_px": 4}, "lesion_px"),
])
def test_bad_specs_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    slides.SlideSpec(**kwargs)


def test_tiles_drawn_once_per_level_equal_the_tiles_drawn_one_by_one():
  # blank and tissue-only tiles are compressed once per level and reused:
  # each must be the tile that drawing it would give
  slide = slides.Slide(slides.SlideSpec(size=2048, min_level_px=256,
                                        lesion_px=64, seed=5))
  kinds = set()
  for level, side in enumerate(slide.sizes):
    n = -(-side // 256)
    for i, data in enumerate(slide.encoded_tiles(level)):
      ty, tx = divmod(i, n)
      kinds.add(slide.kind(level, ty, tx))
      tile = np.frombuffer(zlib.decompress(data), np.uint8).reshape(
          256, 256, 3)
      np.testing.assert_array_equal(tile, slide.tile(level, ty, tx))
  assert kinds == {"blank", "tissue", "mixed"}
