"""The progress bar's line on the attention policy."""
import math

import numpy as np
import pytest

from tnet_tf.training import callbacks


def test_fixed_scale_cap_is_the_best_unit_vector():
  # brute force over unit vectors (a, -b, ..., -b): the cap is their best
  cells = 25
  best = 0.0
  for a in np.linspace(0.0, 1.0, 20001):
    b = math.sqrt((1 - a * a) / (cells - 1))
    best = max(best, math.exp(a) / (math.exp(a) + (cells - 1) *
                                    math.exp(-b)))
  assert callbacks.top_probability_cap(cells, False) == pytest.approx(
      best, abs=1e-6)
  assert callbacks.top_probability_cap(cells, False) == pytest.approx(
      0.1036, abs=1e-4)
  assert callbacks.top_probability_cap(cells, True) == 1.0


@pytest.mark.parametrize("top, learned, state", [
    (0.042, False, "still uniform"),
    (0.070, False, "learning where to look"),
    (0.100, False, "peaked"),
    (0.100, True, "still uniform"),  # 6% of the way to 1
    (0.700, True, "peaked"),
])
def test_policy_line_measures_against_the_scale_cap(top, learned, state):
  line = callbacks.policy_line({"top_probability": top, "entropy": 3.0}, 25,
                               learned)
  assert line.startswith(f"attention policy {state}")
  assert "uniform 0.040" in line


def test_policy_line_warns_that_greedy_selection_follows_the_ranking():
  logs = {"top_probability": 0.02, "entropy": 5.5}
  greedy = callbacks.policy_line(logs, 256, True, greedy=True)
  assert greedy.startswith("attention policy still uniform")
  assert "greedy selection takes the top-ranked cells" in greedy
  assert "greedy" not in callbacks.policy_line(logs, 256, True)
  peaked = callbacks.policy_line({"top_probability": 0.9, "entropy": 0.5},
                                 256, True, greedy=True)
  assert "greedy" not in peaked


def test_inference_line_names_the_gap_it_sees():
  assert callbacks.inference_line({"top1": 0.9}) is None  # no check yet
  agree = callbacks.inference_line(
      {"top1": 0.90, "heldout_top1": 0.85, "train_images_top1": 0.92})
  assert agree.startswith("inference check: held-out 85.0%, training "
                          "images 92.0% (inference mode) vs 90.0%")
  assert "WARNING" not in agree
  # the training images right in training mode only: the batch
  batch = callbacks.inference_line(
      {"top1": 0.90, "heldout_top1": 0.55, "train_images_top1": 0.56})
  assert "leans on its training batch" in batch
  # right on its own training images only: memorisation
  memo = callbacks.inference_line(
      {"top1": 0.90, "heldout_top1": 0.53, "train_images_top1": 0.97})
  assert "memorises its training images" in memo
  # a gap of at most MONITOR_GAP is noise of 128 images, not a warning
  edge = callbacks.inference_line(
      {"top1": 0.80, "heldout_top1": 0.66, "train_images_top1": 0.80})
  assert "WARNING" not in edge
