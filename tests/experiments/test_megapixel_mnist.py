"""The Megapixel MNIST job end to end, in miniature."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_megapixel_mnist_job_end_to_end(tmp_path):
  run_dir = tmp_path / "run"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             TNET_TF_CACHE=str(tmp_path / "cache"))
  proc = subprocess.run(
      [sys.executable, "-m", "tnet_tf.experiments.megapixel_mnist",
       f"--run_dir={run_dir}", "--input_size=300", "--base_resolution=32",
       "--grid_size=8", "--cell_fraction=0.15",  # cells of 45 px >= r
       "--train_examples=32", "--test_examples=16", "--train_steps=3",
       "--baseline_steps=3", "--full_resolution_steps=2", "--batch_size=8",
       "--timing_batch=2", "--overlay_examples=2", "--eval_locations=0;2",
       "--checkpoint_every=3", "--log_every=1", "--reader_steps=2"],
      capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(run_dir / "results.json") as fh:
    results = json.load(fh)
  assert [r["locations"] for r in results["tnet"]] == [[], [2]]
  for row in results["tnet"] + [results["downscaled"],
                                results["full_resolution"]]:
    assert 0.0 <= row["accuracy"] <= 1.0 and row["gmacs"] > 0
  assert results["full_resolution"]["train_seconds"] > 0
  loc = results["localization"]
  assert 0.0 <= loc["rate"] <= 1.0 and 0.0 < loc["chance"] < 1.0
  assert results["data"]["canvas_size"] == 300
  # the backbone pre-trained on digit cells (15% of 300 px: 45 px)
  reader = results["data"]["reader"]
  assert reader["steps"] == 2 and 0.0 <= reader["accuracy"] <= 1.0
  assert (run_dir / "reader" / "weights.h5").exists()
  for name in ("tradeoff.png", "attention.png", "results.md"):
    assert (run_dir / name).exists()


def test_a_bad_label_rule_is_a_usage_error(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "tnet_tf.experiments.megapixel_mnist",
       f"--run_dir={tmp_path}", "--label_rule=mean"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode != 0
  assert "label_rule" in proc.stderr and "Traceback" not in proc.stderr


def test_pretraining_and_given_weights_are_a_usage_error(tmp_path):
  weights = tmp_path / "w.h5"
  weights.write_bytes(b"")
  proc = subprocess.run(
      [sys.executable, "-m", "tnet_tf.experiments.megapixel_mnist",
       f"--run_dir={tmp_path}", "--reader_steps=10",
       f"--backbone_weights={weights}", "--train_examples=8",
       "--test_examples=8", "--input_size=300",
       f"--data_dir={tmp_path / 'cache'}"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode != 0
  assert "--reader_steps" in proc.stderr and "Traceback" not in proc.stderr
