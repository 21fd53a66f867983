"""Tests of the result figures and tables (tnet_tf.visualize)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from tnet_tf import visualize  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ROWS = [
    {"locations": [], "total_locations": 0, "accuracy": 0.5, "gmacs": 1.0},
    {"locations": [1], "total_locations": 1, "accuracy": 0.6, "gmacs": 2.0},
    {"locations": [3], "total_locations": 3, "accuracy": 0.7, "gmacs": 4.0},
]
BASELINES = {"downscaled": {"accuracy": 0.45, "gmacs": 1.0},
             "full resolution": {"accuracy": 0.75, "gmacs": 50.0}}

# (y0, x0, y1, x1): one level-1, two level-2 and one level-3 box.
BOXES = np.array([[0, 0, 128, 128], [10, 20, 74, 84], [50, 60, 114, 124],
                  [12, 22, 44, 54]], dtype=np.float32)
LEVELS = np.array([1, 2, 2, 3])


def _is_png(path: str) -> bool:
  with open(path, "rb") as f:
    return f.read(8) == PNG_SIGNATURE


def _rectangles(ax) -> list[Rectangle]:
  return [p for p in ax.patches if isinstance(p, Rectangle)]


def _xywh(rect: Rectangle) -> tuple[float, float, float, float]:
  return (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height())


def _expected_xywh(box) -> tuple[float, float, float, float]:
  y0, x0, y1, x1 = box
  return (x0, y0, x1 - x0, y1 - y0)


def _is_dashed(rect: Rectangle) -> bool:
  return rect.get_linestyle() in ("--", "dashed")


def test_plot_tradeoff_writes_png(tmp_path):
  path = str(tmp_path / "tradeoff.png")
  assert visualize.plot_tradeoff(ROWS, BASELINES, path) == path
  assert os.path.exists(path)
  assert _is_png(path)
  assert os.path.getsize(path) > 5000


def test_tradeoff_figure_data_and_labels():
  # Unsorted input: the line runs in order of GMACs.
  fig = visualize._tradeoff_figure(ROWS[::-1], BASELINES, title="T")
  try:
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), [1.0, 2.0, 4.0])
    np.testing.assert_allclose(line.get_ydata(), [50.0, 60.0, 70.0])
    assert line.get_marker() not in (None, "", "None", " ")
    annotations = sorted(t.get_text() for t in ax.texts)
    assert annotations == ["0", "1", "3"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(labels) == {"TNet", "downscaled", "full resolution"}
    # Each baseline: one point at its (GMACs, accuracy %), distinct markers.
    by_label = {l.get_label(): l for l in ax.lines}
    full = by_label["full resolution"]
    np.testing.assert_allclose(full.get_xdata(), [50.0])
    np.testing.assert_allclose(full.get_ydata(), [75.0])
    assert by_label["downscaled"].get_marker() != full.get_marker()
    assert ax.get_xlabel() == "GMACs per image"
    assert ax.get_ylabel() == "top-1 accuracy (%)"
    assert ax.get_title() == "T"
    # 50 / 1 > 20: logarithmic.
    assert ax.get_xscale() == "log"
  finally:
    plt.close(fig)


def test_tradeoff_figure_linear_for_small_span():
  baselines = {"downscaled": {"accuracy": 0.45, "gmacs": 1.0},
               "full resolution": {"accuracy": 0.75, "gmacs": 20.0}}
  fig = visualize._tradeoff_figure(ROWS, baselines)
  try:
    assert fig.axes[0].get_xscale() == "linear"
  finally:
    plt.close(fig)


def test_plot_tradeoff_closes_figure(tmp_path):
  before = plt.get_fignums()
  visualize.plot_tradeoff(ROWS, BASELINES, str(tmp_path / "t.png"))
  assert plt.get_fignums() == before


def test_draw_attention_boxes_match_and_colours():
  fig, ax = plt.subplots()
  try:
    image = np.zeros([128, 128], np.uint8)
    visualize.draw_attention(image, BOXES, LEVELS, ax, title="digit 3")
    rects = _rectangles(ax)
    assert len(rects) == 3
    for rect, box in zip(rects, BOXES[1:]):
      np.testing.assert_allclose(_xywh(rect), _expected_xywh(box))
      assert not rect.get_fill()
    colors = [mcolors.to_hex(r.get_edgecolor()) for r in rects]
    assert colors[0] == colors[1]
    assert colors[2] != colors[0]
    assert rects[0].get_linewidth() > rects[2].get_linewidth()
    assert ax.get_title() == "digit 3"
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    # The image spans pixel edges 0..W, 0..H, with y growing downwards.
    image_artist, = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert tuple(image_artist.get_extent()) == (0, 128, 128, 0)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
  finally:
    plt.close(fig)


def test_draw_attention_target_boxes_dashed():
  fig, ax = plt.subplots()
  try:
    targets = np.array([[30, 40, 58, 68], [70, 80, 98, 108]], np.float32)
    visualize.draw_attention(np.zeros([128, 128, 3], np.uint8), BOXES,
                             LEVELS, ax, target_boxes=targets)
    rects = _rectangles(ax)
    assert len(rects) == 5
    dashed = [r for r in rects if _is_dashed(r)]
    assert len(dashed) == 2
    assert sorted(_xywh(r) for r in dashed) == sorted(
        _expected_xywh(b) for b in targets)
    assert len([r for r in rects if not _is_dashed(r)]) == 3
  finally:
    plt.close(fig)


def test_draw_attention_weights_text():
  fig, ax = plt.subplots()
  try:
    weights = np.array([0.1234, 0.5, 0.25, 0.126])
    visualize.draw_attention(np.zeros([128, 128, 1], np.float32), BOXES,
                             LEVELS, ax, weights=weights)
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"0.12", "0.50", "0.25", "0.13"}
    # Each box's weight in its colour, near its top-left corner.
    rects = _rectangles(ax)
    for text, rect in zip(["0.50", "0.25", "0.13"], rects):
      assert (mcolors.to_hex(texts[text].get_color())
              == mcolors.to_hex(rect.get_edgecolor()))
      x, y = texts[text].xy  # the anchor, in data coordinates
      assert abs(x - rect.get_x()) < 5 and abs(y - rect.get_y()) < 5
    x, y = texts["0.12"].xy
    assert x < 5 and y < 5
  finally:
    plt.close(fig)


def test_draw_attention_stacks_labels_at_shared_corners():
  fig, ax = plt.subplots()
  try:
    # A level-2 box at the image's corner and a level-3 box at its corner.
    boxes = np.array([[0, 0, 128, 128], [0, 0, 64, 64], [0, 0, 32, 32],
                      [64, 64, 128, 128]], np.float32)
    visualize.draw_attention(np.zeros([128, 128]), boxes, [1, 2, 3, 2], ax,
                             weights=[0.1, 0.2, 0.3, 0.4])
    offsets = {t.get_text(): t.get_position() for t in ax.texts}
    ys = [offsets[k][1] for k in ("0.10", "0.20", "0.30")]
    assert len(set(ys)) == 3  # one line each, not on top of one another
    assert offsets["0.40"] == offsets["0.10"]  # a free corner: first line
  finally:
    plt.close(fig)


def test_draw_attention_rejects_mismatched_levels():
  fig, ax = plt.subplots()
  try:
    with pytest.raises(ValueError):
      visualize.draw_attention(np.zeros([8, 8]), BOXES, LEVELS[:2], ax)
  finally:
    plt.close(fig)


def _records(n: int) -> list[dict]:
  return [{"boxes": BOXES, "levels": LEVELS,
           "feature_weights": np.full([4], 0.25)} for _ in range(n)]


def test_attention_grid_writes_png(tmp_path):
  images = np.zeros([5, 128, 128, 1], np.uint8)
  path = str(tmp_path / "grid.png")
  before = plt.get_fignums()
  assert visualize.attention_grid(images, _records(5), path, cols=3) == path
  assert _is_png(path)
  assert os.path.getsize(path) > 5000
  assert plt.get_fignums() == before


def test_attention_grid_figure_axes_and_legend():
  images = np.zeros([5, 128, 128, 1], np.uint8)
  titles = [f"image {i}" for i in range(5)]
  fig = visualize._attention_grid_figure(images, _records(5), titles, cols=3)
  try:
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 5
    assert len(fig.axes) == 5  # the sixth grid cell is removed
    assert [ax.get_title() for ax in image_axes] == titles
    assert all(len(_rectangles(ax)) == 3 for ax in image_axes)
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["level 2",
                                                          "level 3"]
  finally:
    plt.close(fig)


def test_results_markdown():
  rows = [dict(ROWS[0], ms_per_image=1.234),
          {"locations": [2, 1], "total_locations": 4, "accuracy": 0.98765,
           "gmacs": 12.3456}]
  baselines = {"full resolution": {"accuracy": 0.9, "gmacs": 50.0,
                                   "ms_per_image": 10.0},
               "tiny": {"accuracy": 0.1, "gmacs": 0.01234}}
  table = visualize.results_markdown(rows, baselines)
  lines = table.strip().split("\n")
  assert lines[0] == "| model | locations | accuracy (%) | GMACs | ms/image |"
  assert set(lines[1]) <= set("|-: ")
  assert len(lines) == 2 + 4
  cells = [[c.strip() for c in line.strip("|").split("|")]
           for line in lines[2:]]
  assert cells[0] == ["TNet", "[] (total 0)", "50.00", "1.00", "1.23"]
  assert cells[1] == ["TNet", "[2, 1] (total 4)", "98.77", "12.35", "–"]
  assert cells[2] == ["full resolution", "–", "90.00", "50.00", "10.00"]
  assert cells[3] == ["tiny", "–", "10.00", "0.012", "–"]
