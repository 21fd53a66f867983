"""The performance benchmark (issue 7): its ratios, and a --quick smoke run.

The smoke run uses the tiny-CNN family at r = 32 (inputs 32..256), so it
checks the machinery and the results record, not issue 7's targets.
"""
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import performance
from tnet_tf.config import preset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
REQUIRED = ("speedup_896", "speedup_896_b1", "overhead",
            "scaling_3584_over_896", "train_speedup_448", "memory_ratio_896")


def test_locations_follow_the_levels_each_size_supports():
  cfg = preset("fmow_stage2", input_size=None)
  got = {s: performance.locations_for(cfg, s)
         for s in (224, 448, 896, 1792, 3584)}
  assert got == {224: (), 448: (2,), 896: (2, 1), 1792: (2, 1),
                 3584: (2, 1)}


def test_ratios_by_hand():
  def row(kind, size, batch, ms, locs=(), mb=None, gmacs=None):
    return {"kind": kind, "input": size, "batch": batch, "ms_per_image": ms,
            "locations": list(locs), "peak_rss_mb": mb, "gmacs": gmacs}
  rows = []
  for b, scale in ((1, 2.0), (8, 1.0)):
    rows += [row("tnet", 896, b, 50 * scale, (2, 1), 900, 2.0),
             row("baseline", 896, b, 200 * scale, (), 2000, 6.0),
             row("tnet", 3584, b, 55 * scale, (2, 1)),
             row("backbone_calls", None, b, 40 * scale, (2, 1))]
  train = {"tnet": {"images_per_s": 3.0}, "baseline": {"images_per_s": 2.0}}
  got = performance.ratios(rows, train, 896, 3584, memory_floor=600.0)
  assert got["speedup_896"] == pytest.approx(4.0)
  assert got["speedup_896_b1"] == pytest.approx(4.0)
  assert got["overhead"] == pytest.approx(1.25)
  assert got["scaling_3584_over_896"] == pytest.approx(1.1)
  assert got["train_speedup_448"] == pytest.approx(1.5)
  assert got["memory_ratio_896"] == pytest.approx(0.45)
  assert got["memory_ratio_896_above_floor"] == pytest.approx(300 / 1400)
  assert got["gmacs_ratio_896"] == pytest.approx(3.0)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench") / "results.json"
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.performance", "--quick",
       "--family=toy", f"--out={out}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out, encoding="utf-8") as f:
    recorded = json.load(f)
  assert len(recorded["runs"]) == 1  # --quick: one run
  return {**recorded["runs"][0], **{k: recorded[k] for k in REQUIRED}}, (
      proc.stdout)


def _positive(value):
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_writes_every_ratio(quick_run):
  results, stdout = quick_run
  for key in REQUIRED + ("overhead_b1", "memory_ratio_896_above_floor",
                         "memory_floor_mb"):
    assert _positive(results[key]), (key, results[key])
    assert key in stdout
  machine = results["machine"]
  assert machine["cpu"] and machine["cores"] >= 1 and machine["tensorflow"]
  assert _positive(results["train"]["tnet"]["images_per_s"])
  assert _positive(results["train"]["baseline"]["images_per_s"])
  assert results["train"]["locations"] == [2]


@pytest.mark.slow
def test_quick_run_rows(quick_run):
  results, _ = quick_run
  rows = results["rows"]
  tnet = {(r["input"], r["batch"]): r for r in rows if r["kind"] == "tnet"}
  assert set(tnet) == {(s, b) for s in (32, 64, 128, 256) for b in (1, 8)}
  assert [tnet[(s, 1)]["locations"] for s in (32, 64, 128, 256)] == [
      [], [2], [2, 1], [2, 1]]
  for row in rows:
    assert _positive(row["ms_per_image"]), row
    if row["kind"] != "backbone_calls":
      assert _positive(row["gmacs"]) and _positive(row["params_m"]), row
  # TNet's cost does not grow past the reference size; the baseline's does
  assert tnet[(256, 1)]["gmacs"] == pytest.approx(tnet[(128, 1)]["gmacs"])
  base = {r["input"]: r["gmacs"] for r in rows if r["kind"] == "baseline"}
  assert base[256] == pytest.approx(4 * base[128], rel=0.05)
  calls = {tuple(r["locations"]): r["crop_batches"] for r in rows
           if r["kind"] == "backbone_calls" and r["batch"] == 8}
  assert calls == {(): [8], (2,): [8, 16], (2, 1): [8, 16, 16]}
  assert _positive(tnet[(128, 8)]["peak_rss_mb"])


@pytest.mark.slow
def test_load_guard_refuses_to_record_on_a_busy_machine(tmp_path):
  """Another process spinning on a core while the benchmark runs: the run
  is written as disturbed and results.json is left as it was."""
  out = tmp_path / "results.json"
  out.write_text('{"recorded": "before"}')
  busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
  try:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.performance", "--quick",
         "--family=toy", "--sizes=128", "--batches=1", "--repeats=1",
         "--warmup=0", "--train_repeats=1", "--memory_sizes=",
         "--wait_idle=0", f"--out={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  finally:
    busy.kill()
    busy.wait()
  assert proc.returncode == 3, proc.stderr[-3000:]
  assert "DISTURBED" in proc.stdout
  assert json.loads(out.read_text()) == {"recorded": "before"}
  disturbed = json.loads((tmp_path / "results.disturbed.json").read_text())
  assert disturbed["disturbed"] is True
  assert disturbed["machine"]["load_during"][0]["mean_cores"] > 0.5


def test_spread_and_mean_of_two_runs():
  from benchmarks import record
  runs = [{"a": 3.0, "b": 1.0, "c": None}, {"a": 3.3, "b": 1.0, "c": 2.0}]
  assert record.spread(runs, ["a", "b", "c"]) == {
      "a": pytest.approx(0.3 / 3.15), "b": 0.0, "c": None}
  assert record.mean_of(runs, ["a", "c"]) == {"a": pytest.approx(3.15),
                                              "c": None}
