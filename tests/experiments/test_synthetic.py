"""The built-in benchmark: its metric by hand, and the whole job end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.experiments import synthetic


def test_all_regions_of_a_grid():
  regions = synthetic.all_regions(100, 3, 0.5, levels=3)
  assert [len(r) for r in regions] == [9, 81]
  np.testing.assert_allclose(regions[0][0], [0, 0, 50, 50])
  np.testing.assert_allclose(regions[1][0], [0, 0, 25, 25])
  np.testing.assert_allclose(regions[0][-1], [50, 50, 100, 100])


def test_contains_needs_half_the_digit():
  regions = np.array([[0, 0, 50, 50]], float)
  digits = np.array([[10, 10, 20, 20],    # inside
                     [45, 10, 55, 20],    # half inside
                     [46, 10, 56, 20],    # 40% inside
                     [60, 60, 70, 70]],   # outside
                    float)
  np.testing.assert_array_equal(synthetic._contains(regions, digits),
                                [[True, True, False, False]])


class _FixedAttention:
  """A stand-in TNet that always attends to cell 0 of a 2×2 grid."""

  class config:  # pylint: disable=invalid-name
    grid_size = 2
    cell_fraction = 0.5

  def __call__(self, images, training=False, locations=()):
    b = tf.shape(images)[0]
    boxes = tf.constant([[0, 0, 100, 100], [0, 0, 50, 50]], tf.float32)
    return {"boxes": tf.tile(boxes[None], [b, 1, 1]),
            "levels": tf.constant([1, 2])}


def test_localization_rate_and_chance_by_hand():
  # image 0: a target in cell 0 (hit); image 1: the target in cell 3 (miss);
  # the second box of each image is empty padding and must count for nothing
  boxes = np.array([[[5, 5, 15, 15], [0, 0, 0, 0]],
                    [[80, 80, 90, 90], [0, 0, 0, 0]]], np.float32)
  ds = tf.data.Dataset.from_tensor_slices({
      "image": np.zeros([2, 100, 100, 1], np.uint8), "boxes": boxes}).batch(2)
  result = synthetic.localization(_FixedAttention(), ds, (1,))
  assert result["rate"] == pytest.approx(0.5)
  # each target lies in exactly one of the 4 cells: chance 1/4
  assert result["chance"] == pytest.approx(0.25)
  assert result["per_level"]["2"]["regions"] == 2


@pytest.mark.slow  # 70 s
def test_the_main_job_end_to_end(tmp_path):
  """A miniature of `make demo`: every output is written and well formed."""
  run_dir = tmp_path / "run"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             TNET_TF_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "tnet_tf.experiments.synthetic",
       f"--run_dir={run_dir}", "--input_size=128", "--digit_size=16",
       "--train_examples=64", "--test_examples=32", "--train_steps=4",
       "--baseline_steps=4", "--full_resolution_steps=2", "--batch_size=8",
       "--timing_batch=4", "--overlay_examples=4", "--eval_locations=0;1;3",
       "--checkpoint_every=2", "--log_every=2"],
      capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(run_dir / "results.json") as fh:
    results = json.load(fh)
  assert [r["locations"] for r in results["tnet"]] == [[], [1], [3]]
  for row in results["tnet"] + [results["downscaled"],
                                results["full_resolution"]]:
    assert 0.0 <= row["accuracy"] <= 1.0
    assert row["gmacs"] > 0 and row["ms_per_image"] > 0
  gmacs = [r["gmacs"] for r in results["tnet"]]
  assert gmacs == sorted(gmacs)
  assert results["tnet"][0]["gmacs"] == pytest.approx(
      results["downscaled"]["gmacs"], rel=0.05)
  assert results["full_resolution"]["gmacs"] > 3 * gmacs[-1]
  assert 0.0 <= results["localization"]["chance"] <= 1.0
  for name in ("tradeoff.png", "attention.png"):
    with open(run_dir / name, "rb") as fh:
      assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "| TNet |" in (run_dir / "results.md").read_text()
  assert (run_dir / "saved_model" / "saved_model.pb").exists()
  for sub in ("tnet", "downscaled", "full_resolution"):
    assert (run_dir / sub / "summary.json").exists()
    assert os.listdir(run_dir / sub / "train")  # TensorBoard events
