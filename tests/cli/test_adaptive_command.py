"""``python -m tnet_tf.cli.adaptive`` as a user runs it: a fitted halting
module in the run directory, the rows, the plot, and the export that
serves by the module."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from fakes import runs as fake_runs


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, "-m", "tnet_tf.cli.adaptive", *args],
                        capture_output=True, text=True, timeout=600,
                        env=env)


@pytest.mark.slow  # ~50 s end to end (three processes): make test-all
def test_fits_evaluates_and_writes_the_comparison(tmp_path):
  run_dir = str(tmp_path / "run")
  # as many classes as the toy data has (its loss is evaluated too)
  fake_runs.make_run(run_dir, names=("a", "b", "c", "d"), levels=2,
                     locations=(3,))
  out = str(tmp_path / "adaptive.json")
  common = [f"--run_dir={run_dir}", "--rules=max_probability,learned",
            "--thresholds=0.5", "--learned_thresholds=0.5,1.01",
            "--examples=16", "--batch_size=8", "--halting_examples=24",
            "--timing_images=8", "--repeats=1", f"--out={out}"]
  # the toy run is evaluated on its validation split: fitting there is
  # refused
  proc = _run(*common)
  assert proc.returncode != 0
  assert "is the split this run is evaluated on" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = _run(*common, "--halting_split=test")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    rows = json.load(f)
  assert [(r["rule"], r["k"], r["threshold"]) for r in rows] == [
      (None, k, None) for k in range(4)] + [
          ("max_probability", None, 0.5), ("learned", None, 0.5),
          ("learned", None, 1.01)]
  assert all(r["examples"] == 16 and r["ms_per_image"] > 0 and
             r["ms_per_image_b8"] > 0 for r in rows)
  # above 1 the learned rule reads every cell: the fixed k = 3 row
  assert rows[-1]["mean_locations"] == 3.0
  assert rows[-1]["accuracy"] == rows[3]["accuracy"]
  assert os.path.getsize(os.path.splitext(out)[0] + ".png") > 1000
  with open(os.path.join(run_dir, "halting", "halting.json")) as f:
    about = json.load(f)
  assert about["checkpoint"] == "ckpt-1" and about["split"] == "test"
  assert len(about["weights_sha256"]) == 64 and about["max_locations"] == 3
  # exported, the run serves adaptive attention by its halting module
  saved = str(tmp_path / "saved")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-m", "tnet_tf.cli.export",
                         f"--run_dir={run_dir}", f"--output={saved}"],
                        capture_output=True, text=True, timeout=600,
                        env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  meta = tf.saved_model.load(saved).signatures["metadata"]()
  assert meta["adaptive_rule"].numpy() == b"learned"
  assert int(meta["adaptive_max_locations"]) == 3
