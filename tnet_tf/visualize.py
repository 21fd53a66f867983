"""Figures and tables of results: the accuracy/cost trade-off and attention.

Pure numpy/matplotlib (no TensorFlow), so that saved evaluation rows and
attention records (``boxes``, ``levels``, ``feature_weights`` from
``TNet.call``, as numpy) can be plotted anywhere. Reproduces the paper's
Fig. 1b (``plot_tradeoff``) and Fig. 1c (``attention_grid``).
"""
from __future__ import annotations

import io
import math
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.patheffects as path_effects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from tnet_tf.model.inputs import total_locations  # noqa: E402
from tnet_tf.model.outputs import TNetOutput  # noqa: E402

# One fixed, clearly distinct colour per attention level (level 1 is the whole
# image and is not drawn as a box); deeper levels beyond these cycle.
LEVEL_COLORS = {2: "#ff8c00", 3: "#00e5ff", 4: "#ff00ff", 5: "#7cfc00",
                6: "#ffff00", 7: "#ff3030"}
TARGET_COLOR = "white"
_DPI = 120
_BASELINE_MARKERS = ("s", "^", "D", "v", "P", "X", "*", "<", ">")
_DASH = "–"  # en dash: an empty table cell


def level_color(level: int) -> str:
  """The colour of the boxes of attention ``level`` (2, 3, ...)."""
  level = int(level)
  if level in LEVEL_COLORS:
    return LEVEL_COLORS[level]
  keys = sorted(LEVEL_COLORS)
  return LEVEL_COLORS[keys[(level - keys[0]) % len(keys)]]


def _line_width(level: int) -> float:
  return max(0.8, 2.4 - 0.4 * (int(level) - 2))


def _accuracy(row: dict) -> float:
  """A row's top-1 accuracy in [0, 1]: ``accuracy``, else ``top1``.

  ``evaluation.evaluate_at_locations`` names it ``top1``.
  """
  if "accuracy" in row:
    return float(row["accuracy"])
  return float(row["top1"])


def _tradeoff_figure(rows: Sequence[dict], baselines: dict[str, dict],
                     title: str = "Accuracy vs. cost") -> plt.Figure:
  """The Fig. 1b figure, unsaved (for ``plot_tradeoff`` and the tests).

  The TNet line is the figure's first line (``ax.lines[0]``), with points
  sorted by GMACs.
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.6))
  rows = sorted(rows, key=lambda r: float(r["gmacs"]))
  xs = [float(r["gmacs"]) for r in rows]
  ys = [100.0 * _accuracy(r) for r in rows]
  if rows:
    ax.plot(xs, ys, "o-", color="tab:blue", label="TNet", zorder=3)
    for r, x, y in zip(rows, xs, ys):
      ax.annotate(str(int(r.get("total_locations", 0))), (x, y),
                  textcoords="offset points", xytext=(5, -11), fontsize=8,
                  color="tab:blue")
  for i, (name, b) in enumerate(baselines.items()):
    ax.plot([float(b["gmacs"])], [100.0 * _accuracy(b)],
            linestyle="none", marker=_BASELINE_MARKERS[
                i % len(_BASELINE_MARKERS)], markersize=8,
            color=f"C{(i + 1) % 10}", label=name, zorder=3)
  all_x = xs + [float(b["gmacs"]) for b in baselines.values()]
  positive = [x for x in all_x if x > 0]
  if (positive and len(positive) == len(all_x)
      and max(positive) / min(positive) > 20):
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(
        lambda x, _: f"{x:g}"))
  ax.set_xlabel("GMACs per image")
  ax.set_ylabel("top-1 accuracy (%)")
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  if rows or baselines:
    ax.legend(loc="best", fontsize=9)  # clear of every point
  fig.tight_layout()
  return fig


def plot_tradeoff(rows: list[dict], baselines: dict[str, dict], path: str,
                  title: str = "Accuracy vs. cost") -> str:
  """Plots top-1 accuracy (%) against GMACs per image (the paper's Fig. 1b).

  ``rows``: TNet evaluation rows (``total_locations``, ``accuracy`` in
  [0, 1], ``gmacs``), drawn as one line annotated with the number of attended
  locations. ``baselines``: name → ``{"accuracy", "gmacs"}``, one marker
  each. The x axis is logarithmic when the GMACs span more than 20×.
  Saves a PNG to ``path`` and returns it.
  """
  fig = _tradeoff_figure(rows, baselines, title)
  try:
    fig.savefig(path, dpi=_DPI, format="png")
  finally:
    plt.close(fig)
  return path


def _display_image(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
  """An image of pixel values in [0, 255] → array and ``imshow`` kwargs."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    return image.astype(np.float32), dict(cmap="gray", vmin=0, vmax=255)
  if image.ndim == 3 and image.shape[-1] == 3:
    if image.dtype == np.uint8:
      return image, {}
    return np.clip(image.astype(np.float32) / 255.0, 0.0, 1.0), {}
  raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got {image.shape}")


def _outlined(width: float = 2.0) -> list:
  return [path_effects.withStroke(linewidth=width, foreground="black")]


class _WeightLabels:
  """Writes weights at box corners, stacking labels whose corners coincide.

  Nested cells often share their parent's top-left corner (and level-2 cells
  the image's), so a label anchored near an earlier one moves a line down.
  """

  def __init__(self, ax, tolerance: float):
    self.ax = ax
    self.tolerance = tolerance
    self.anchors: list[tuple[float, float]] = []

  def add(self, x: float, y: float, text: str, color: str) -> None:
    stacked = sum(abs(x - px) <= self.tolerance and
                  abs(y - py) <= self.tolerance for px, py in self.anchors)
    self.anchors.append((x, y))
    self.ax.annotate(text, (x, y), xytext=(3, -3 - 9 * stacked),
                     textcoords="offset points", color=color, fontsize=7,
                     ha="left", va="top", path_effects=_outlined())


def draw_attention(image: np.ndarray, boxes: np.ndarray, levels: np.ndarray,
                   ax, weights: Optional[np.ndarray] = None,
                   title: Optional[str] = None,
                   target_boxes: Optional[np.ndarray] = None) -> None:
  """Draws an image and the boxes TNet attended to on ``ax``.

  ``boxes`` ``[N, 4]``: (y0, x0, y1, x1) in continuous input-pixel
  coordinates (pixels 10..19 → 10, 20); ``levels`` ``[N]``. Level-1 boxes
  (the whole image) are skipped; the others are outlined in their level's
  colour. ``weights`` ``[N]`` are written at each box's top-left corner (the
  level-1 weight at the image's). ``target_boxes`` ``[M, 4]`` (e.g. ground
  truth) are drawn as thin dashed white rectangles.
  """
  pixels, kwargs = _display_image(image)
  h, w = pixels.shape[:2]
  # extent puts pixel i on [i, i + 1], matching the boxes' coordinates.
  ax.imshow(pixels, extent=(0, w, h, 0), origin="upper",
            interpolation="nearest", **kwargs)
  boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
  levels = np.asarray(levels).reshape(-1).astype(int)
  if len(levels) != len(boxes):
    raise ValueError(f"{len(boxes)} boxes but {len(levels)} levels")
  if weights is not None:
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(boxes):
      raise ValueError(f"{len(boxes)} boxes but {len(weights)} weights")
  labels = _WeightLabels(ax, tolerance=0.03 * max(h, w))
  for i, ((y0, x0, y1, x1), level) in enumerate(zip(boxes, levels)):
    if level <= 1:
      if weights is not None:
        labels.add(0.0, 0.0, f"{weights[i]:.2f}", "white")
      continue
    color = level_color(level)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                           edgecolor=color, linewidth=_line_width(level)))
    if weights is not None:
      labels.add(x0, y0, f"{weights[i]:.2f}", color)
  if target_boxes is not None:
    for y0, x0, y1, x1 in np.asarray(target_boxes,
                                     dtype=np.float64).reshape(-1, 4):
      ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                             edgecolor=TARGET_COLOR, linewidth=0.8,
                             linestyle="--"))
  ax.set_xlim(0, w)
  ax.set_ylim(h, 0)
  ax.set_xticks([])
  ax.set_yticks([])
  if title is not None:
    ax.set_title(title, fontsize=9)


def _attention_grid_figure(images, records: Sequence[dict],
                           titles: Optional[Sequence[str]] = None,
                           cols: int = 4,
                           target_boxes: Optional[Sequence] = None,
                           ) -> plt.Figure:
  """The Fig. 1c figure, unsaved: one axis per image (no empty axes)."""
  n = len(images)
  if len(records) != n:
    raise ValueError(f"{n} images but {len(records)} records")
  if titles is not None and len(titles) != n:
    raise ValueError(f"{n} images but {len(titles)} titles")
  if target_boxes is not None and len(target_boxes) != n:
    raise ValueError(f"{n} images but {len(target_boxes)} target boxes")
  cols = max(1, min(int(cols), n))
  rows = max(1, math.ceil(n / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.5 * rows + 0.5),
                           squeeze=False)
  seen_levels = set()
  for i, ax in enumerate(axes.reshape(-1)):
    if i >= n:
      fig.delaxes(ax)
      continue
    record = records[i]
    levels = np.asarray(record["levels"]).reshape(-1).astype(int)
    seen_levels.update(int(l) for l in levels if l > 1)
    weights = record.get("feature_weights")
    draw_attention(images[i], record["boxes"], levels, ax,
                   weights=None if weights is None else np.asarray(weights),
                   title=None if titles is None else titles[i],
                   target_boxes=(None if target_boxes is None
                                 else target_boxes[i]))
  handles = [Line2D([], [], color=level_color(l), linewidth=_line_width(l),
                    label=f"level {l}") for l in sorted(seen_levels)]
  if target_boxes is not None:
    handles.append(Line2D([], [], color="black", linewidth=0.8,
                          linestyle="--", label="target"))
  top = 1.0
  if handles:
    fig.legend(handles=handles, loc="upper center", ncol=len(handles),
               fontsize=8, frameon=False)
    top = 1.0 - 0.4 / fig.get_figheight()
  fig.tight_layout(rect=(0, 0, 1, top))
  return fig


def attention_grid(images, records: list[dict], path: str,
                   titles: Optional[list[str]] = None, cols: int = 4,
                   target_boxes: Optional[list] = None) -> str:
  """Saves a grid of images with their attended boxes (the paper's Fig. 1c).

  ``records[i]``: ``boxes`` ``[N, 4]``, ``levels`` ``[N]`` and optionally
  ``feature_weights`` ``[N]`` for ``images[i]`` (see ``draw_attention``).
  A figure legend maps colours to the levels that occur. Returns ``path``.
  """
  with open(path, "wb") as fh:
    fh.write(attention_png(images, records, titles, cols, target_boxes))
  return path


def attention_png(images, records: list[dict],
                  titles: Optional[list[str]] = None, cols: int = 4,
                  target_boxes: Optional[list] = None) -> bytes:
  """``attention_grid`` as PNG bytes (e.g. for a TensorBoard image)."""
  fig = _attention_grid_figure(images, records, titles, cols, target_boxes)
  buf = io.BytesIO()
  try:
    fig.savefig(buf, dpi=_DPI, format="png")
  finally:
    plt.close(fig)
  return buf.getvalue()


def _format_gmacs(gmacs: Optional[float]) -> str:
  if gmacs is None:
    return _DASH
  gmacs = float(gmacs)
  return f"{gmacs:.2f}" if abs(gmacs) >= 0.1 or gmacs == 0 else f"{gmacs:.2g}"


def _format_ms(row: dict) -> str:
  ms = row.get("ms_per_image")
  return _DASH if ms is None else f"{float(ms):.2f}"


def results_markdown(rows: list[dict], baselines: dict[str, dict]) -> str:
  """A Markdown table of TNet rows, then baselines, with accuracy and cost.

  Columns: model | locations | accuracy (%) | GMACs | ms/image. Locations
  read like ``[2, 1] (total 3)``; missing values are "–". GMACs have 2
  decimals (2 significant digits below 0.1, e.g. tiny models).
  """
  lines = ["| model | locations | accuracy (%) | GMACs | ms/image |",
           "|---|---|---:|---:|---:|"]
  for row in rows:
    locs = [int(k) for k in row.get("locations", [])]
    total = row.get("total_locations")
    if total is None:
      total = total_locations(locs)
    lines.append(
        f"| TNet | [{', '.join(map(str, locs))}] (total {int(total)}) | "
        f"{100.0 * _accuracy(row):.2f} | {_format_gmacs(row.get('gmacs'))} | "
        f"{_format_ms(row)} |")
  for name, b in baselines.items():
    label = str(name).replace("|", "\\|")
    lines.append(
        f"| {label} | {_DASH} | {100.0 * _accuracy(b):.2f} | "
        f"{_format_gmacs(b.get('gmacs'))} | {_format_ms(b)} |")
  return "\n".join(lines) + "\n"


def overlay_records(record: dict) -> list[dict]:
  """Per image of a model output, what ``visualize.attention_grid`` draws:
  ``boxes``, ``levels`` and, where they are not uniform (a feature weighting
  module, Fig. 4), the ``feature_weights``."""
  out = TNetOutput.of(record)
  boxes = np.asarray(out.boxes)
  levels = np.asarray(out.levels)
  weights = np.asarray(out.feature_weights)
  rows = []
  for i in range(len(boxes)):
    row = {"boxes": boxes[i], "levels": levels}
    if np.ptp(weights[i]) > 1e-6:
      row["feature_weights"] = weights[i]
    rows.append(row)
  return rows
