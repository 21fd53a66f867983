"""Images read region by region: the lazy path equals the in-memory one,
reads only what it needs, and names the file when it cannot read."""
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tifffile

from conftest import tiny_config
from tnet_tf.data import regions
from tnet_tf.model import resampling
from tnet_tf.data import slides
from tnet_tf.model.tnet import TNet


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("slides") / "slide.tif")
  info = slides.write(path, slides.SlideSpec(size=4096, min_level_px=256,
                                             seed=3))
  return path, info


@pytest.mark.parametrize("name", ["authors", "antialias"])
def test_lazy_reads_equal_the_in_memory_path(tmp_path, name):
  # a one-level tiled TIFF holds the same pixels as the array: the same
  # resampling must give the same probabilities and boxes, eagerly and in
  # a graph; the image is not a multiple of the tile and cells overhang
  model = TNet(tiny_config(resampling=name, locations=(2, 2)))
  image = np.random.default_rng(0).integers(0, 256, [301, 259, 3], np.uint8)
  path = str(tmp_path / "one.tif")
  tifffile.imwrite(path, image, tile=(64, 64), compression="zlib")
  ref = model(image[None], training=False)
  lazy = model(regions.Regions([regions.open_source(path)]), training=False)
  graph = tf.function(lambda: model(regions.Regions(
      [regions.open_source(path)]), training=False))()
  for out in (lazy, graph):
    np.testing.assert_allclose(tf.nn.softmax(out["logits"]),
                               tf.nn.softmax(ref["logits"]), atol=1e-4)
    np.testing.assert_allclose(out["boxes"], ref["boxes"], atol=0.5)
  assert ref["boxes"].shape[1] == 1 + 2 + 4


def test_pyramid_regions_come_from_the_coarsest_level_that_suffices(slide):
  path, _ = slide
  source = regions.open_source(path)
  assert source.level_shapes == [(4096, 4096), (2048, 2048), (1024, 1024),
                                 (512, 512), (256, 256)]
  assert regions.overview_level(source, 32) == 4
  assert regions.overview_level(source, 300) == 3  # 512 ≥ 300, 256 is not
  assert regions.overview_level(source, 5000) == 0
  assert regions.region_level(source, (2048, 2048), 32) == 4  # 128 px
  assert regions.region_level(source, (200, 200), 32) == 2  # 50 px
  assert regions.region_level(source, (20, 20), 32) == 0


def test_crops_from_a_pyramid_match_the_full_resolution_image(slide):
  # a region read at a coarser level and box-filtered there shows what the
  # full-resolution image box-filtered shows: 0.2 grey levels apart at
  # depth 2, 2.5 at depth 3 (read at 1/16 scale, whose texture the
  # generator point-samples); boxes shifted by 2% of the image give 5.2
  # and 5.7
  path, _ = slide
  full = tifffile.imread(path)
  cells = resampling.create("antialias", 3, 0.5)
  boxes = tf.constant([[0.25, 0.5, 0.75, 1.0], [0.5, 0.25, 1.0, 0.75],
                       [0.0, 0.0, 0.5, 0.5]])
  index = tf.zeros([3], tf.int32)
  lazy = regions.Regions([regions.open_source(path)])
  for depth, r, bound in ((2, 32, 1.0), (3, 64, 4.0)):
    got = lazy.crops(cells, None, boxes / (2 ** (depth - 2)), index, r,
                     depth)
    want = cells.crops(None, tf.constant(full[None]), boxes /
                       (2 ** (depth - 2)), index, r, depth)
    assert float(tf.reduce_mean(tf.abs(got - want))) < bound
  source = lazy.sources[0]
  assert source.decoded_pixels < 0.05 * 4096 ** 2


def test_traversal_of_a_slide_reads_a_small_fraction(slide):
  path, _ = slide
  model = TNet(tiny_config(resampling="antialias"))
  source = regions.open_source(path)
  out = model(regions.Regions([source]), training=False)
  assert out["boxes"].shape == (1, 5, 4)
  assert float(out["boxes"][0, 0, 2]) == 4096.0  # level-0 pixels
  # the 256 px overview, then 128-px windows of levels 4 and 3
  assert source.decoded_pixels <= 0.02 * 4096 ** 2


def test_pixel_types_are_read_as_uint8(tmp_path):
  grey16 = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 21
  tifffile.imwrite(tmp_path / "g16.tif", grey16)
  source = regions.open_source(str(tmp_path / "g16.tif"))
  assert source.channels == 1
  np.testing.assert_array_equal(
      source.read(0, 0, 64, 0, 48)[..., 0],
      np.round(grey16 * (255 / 65535)).astype(np.uint8))
  rgba = np.random.default_rng(0).integers(0, 256, [20, 30, 4], np.uint8)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
  source = regions.open_source(str(tmp_path / "a.png"))
  np.testing.assert_array_equal(source.read(0, 0, 20, 0, 30), rgba[..., :3])
  padded = source.window(0, -2, 3, 28, 32, 127.5)
  assert padded.shape == (5, 4, 3)
  assert (padded[:2] == 127.5).all() and (padded[:, 2:] == 127.5).all()
  np.testing.assert_array_equal(padded[2:, :2], rgba[:3, 28:30, :3])


def test_a_stripped_tiff_too_large_to_decode_whole_is_reduced_in_bands(
    tmp_path):
  image = np.random.default_rng(1).integers(0, 256, [512, 384, 3], np.uint8)
  path = str(tmp_path / "strips.tif")
  tifffile.imwrite(path, image, rowsperstrip=16)
  source = regions.open_source(path)
  lazy = regions.Regions([source], max_pixels=50_000)
  cells = resampling.create("antialias", 3, 0.5)
  got = lazy.whole(cells, None, 64)
  assert got.shape == (1, 64, 64, 3)
  # box-reduced by 6 (384 // 64) in bands, then area-resized: the same
  # box average as an area resize of the whole image, to rounding
  want = tf.image.resize(image[None].astype(np.float32), [64, 64],
                         method="area")
  assert float(tf.reduce_mean(tf.abs(got - want))) < 8.0
  assert source.decoded_pixels == 512 * 384


def test_a_truncated_tiff_names_the_file_and_level(slide, tmp_path):
  path, _ = slide
  data = open(path, "rb").read()
  bad = str(tmp_path / "truncated.tif")
  with open(bad, "wb") as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(regions.RegionReadError,
                     match=r"truncated.tif: level 0: the file is truncated"):
    regions.open_source(bad)
  with open(bad, "wb") as f:
    f.write(data[:100])
  with pytest.raises(regions.RegionReadError, match="truncated.tif"):
    regions.open_source(bad)


def test_a_tile_that_fails_to_decode_names_the_file_and_region(slide,
                                                               tmp_path):
  path, _ = slide
  page = regions.TiffSource(path)._pages[0]
  index = int(np.argmax(page.databytecounts))  # a tissue tile of level 0
  data = bytearray(open(path, "rb").read())
  offset = int(page.dataoffsets[index])
  data[offset + 2:offset + 300] = bytes(298)
  bad = str(tmp_path / "badtile.tif")
  with open(bad, "wb") as f:
    f.write(bytes(data))
  source = regions.open_source(bad)  # the two coarsest levels are intact
  row, col = divmod(index, 16)
  with pytest.raises(regions.RegionReadError) as err:
    source.read(0, row * 256, row * 256 + 10, col * 256, col * 256 + 10)
  assert f"badtile.tif: level 0, tile {index} (rows {row * 256}:" in str(
      err.value)
  assert "fails to decode" in str(err.value)


def test_an_error_inside_a_traversal_reaches_the_caller_with_the_file():
  class Failing(regions.ArraySource):
    def _read(self, level, y0, y1, x0, x1):
      if y1 - y0 < self.level_shapes[0][0]:  # any region, not the whole
        raise regions.RegionReadError(f"{self.name}: level 0, rows "
                                      f"{y0}:{y1} fails to decode")
      return super()._read(level, y0, y1, x0, x1)

  model = TNet(tiny_config())
  source = Failing(np.zeros([200, 200, 3], np.uint8), "broken.svs")
  with pytest.raises(regions.RegionReadError, match="broken.svs: level 0"):
    model(regions.Regions([source]), training=False)
  with pytest.raises(tf.errors.OpError, match="broken.svs: level 0"):
    tf.function(lambda: model(regions.Regions([source]),
                              training=False))()


def test_pyramid_levels_that_disagree_are_named(tmp_path):
  flat = np.full([1024, 1024, 3], 240, np.uint8)
  noise = np.random.default_rng(0).integers(0, 256, [512, 512, 3], np.uint8)
  with tifffile.TiffWriter(tmp_path / "content.tif") as tif:
    tif.write(flat, tile=(256, 256), subifds=1)
    tif.write(noise, tile=(256, 256), subfiletype=1)
  with pytest.raises(regions.RegionReadError,
                     match=r"content.tif: pyramid levels disagree: level 1 "
                           r"differs from level 0"):
    regions.open_source(str(tmp_path / "content.tif"))
  with tifffile.TiffWriter(tmp_path / "aspect.tif") as tif:
    tif.write(flat, tile=(256, 256), subifds=1)
    tif.write(flat[:512, :256], tile=(256, 256), subfiletype=1)
  with pytest.raises(regions.RegionReadError,
                     match=r"aspect.tif: pyramid levels disagree"):
    regions.open_source(str(tmp_path / "aspect.tif"))
  source = regions.ArraySource(flat, "made.tif")
  source.level_shapes = [(1024, 1024), (512, 300)]
  with pytest.raises(regions.RegionReadError, match="level 1 is 512x300"):
    regions._check_pyramid(source)


def test_files_that_are_not_images_or_too_large_are_named(tmp_path):
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(regions.RegionReadError,
                     match="notes.txt: cannot decode the image"):
    regions.open_source(str(tmp_path / "notes.txt"))
  with pytest.raises(regions.RegionReadError, match="no such file"):
    regions.open_source(str(tmp_path / "missing.png"))
  Image.new("RGB", (400, 300)).save(tmp_path / "big.jpg")
  with pytest.raises(regions.RegionReadError,
                     match="too large to decode whole.*pyramidal TIFF"):
    regions.open_source(str(tmp_path / "big.jpg"), max_pixels=100_000)
  with pytest.raises(ValueError, match="sources of one size"):
    regions.Regions([regions.ArraySource(np.zeros([4, 4, 3], np.uint8)),
                     regions.ArraySource(np.zeros([4, 5, 3], np.uint8))])
  model = TNet(tiny_config(resampling="align_corners"))
  with pytest.raises(ValueError, match="'authors' or 'antialias'"):
    model(regions.Regions([regions.ArraySource(
        np.zeros([64, 64, 3], np.uint8))]))


def test_openslide_formats_are_read_through_openslide_or_say_how(tmp_path):
  # OpenSlide recognises a JPEG-tiled TIFF by its content whatever the
  # extension; without the optional extra the error says what to install
  image = np.random.default_rng(2).integers(0, 256, [600, 520, 3], np.uint8)
  path = str(tmp_path / "scan.ndpi")
  tifffile.imwrite(path, image, tile=(256, 256), compression="jpeg",
                   photometric="rgb")
  try:
    import openslide  # noqa: F401
  except ImportError:
    with pytest.raises(regions.RegionReadError,
                       match=r"scan.ndpi: .*pip install 'tnet-tf\[slides\]'"):
      regions.open_source(path)
    return
  source = regions.open_source(path)
  assert isinstance(source, regions.OpenSlideSource)
  assert source.level_shapes == [(600, 520)]
  copy = str(tmp_path / "scan.tif")  # tifffile reads .ndpi as NDPI
  with open(path, "rb") as src, open(copy, "wb") as dst:
    dst.write(src.read())
  tiff = regions.TiffSource(copy)  # the same JPEG tiles through tifffile
  np.testing.assert_array_equal(source.read(0, 100, 390, 30, 500),
                                tiff.read(0, 100, 390, 30, 500))


def test_level_three_reads_from_a_file_bound_by_their_region(tmp_path):
  # a 3-level model on an image the grid does not tile: level-3 cells
  # overhang their region and read grey there (the authors' padding of
  # the parent crop), from a file as from memory
  class Recorded(regions.Regions):
    def crops(self, *args, **kwargs):
      out = super().crops(*args, **kwargs)
      self.read = out.numpy()
      return out

  image = np.random.default_rng(1).integers(0, 256, [181, 130, 3], np.uint8)
  path = str(tmp_path / "one.tif")
  tifffile.imwrite(path, image, tile=(64, 64), compression="zlib")
  model = TNet(tiny_config(base_resolution=48, locations=(9, 9),
                           backbone_kwargs={"widths": (8, 8, 8)}))
  lazy = Recorded([regions.open_source(path)])
  out = model(lazy, training=False)
  boxes = out["boxes"].numpy()[0] / [181, 130, 181, 130]
  parents = np.repeat(boxes[1:10], 9, axis=0)
  want = model.resampling.crops(
      None, tf.constant(image[None]), tf.constant(boxes[10:], tf.float32),
      tf.zeros([81], tf.int32), 48, 3,
      tf.constant(np.concatenate([np.maximum(parents[:, :2], 0),
                                  np.minimum(parents[:, 2:], 1)], 1),
                  tf.float32))
  np.testing.assert_allclose(lazy.read, want, atol=1e-3)
  # and the bounds matter here: without them the crops differ
  free = model.resampling.crops(
      None, tf.constant(image[None]), tf.constant(boxes[10:], tf.float32),
      tf.zeros([81], tf.int32), 48, 3)
  assert np.abs(lazy.read - free.numpy()).max() > 50
