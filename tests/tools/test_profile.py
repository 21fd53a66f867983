"""The cost of every configuration matches the paper's Tables 1–2 to 5%."""
import json
import os
import subprocess
import sys

import pytest

from tnet_tf.tools import profile

PAPER = [
    # config, input, locations, GMACs, params (M) or None
    ("imagenet", 224, [], 1.82, None),
    ("imagenet", 224, [1], 3.63, None),
    ("imagenet", 224, [2], 5.43, None),
    ("imagenet", 224, [3], 7.24, None),
    ("imagenet", 224, [5], 10.84, None),
    ("fmow", 448, [], 0.39, None),
    ("fmow", 448, [1], 0.77, None),
    ("fmow", 448, [2], 1.16, None),
    ("fmow", 448, [3], 1.55, None),
    ("fmow", 896, [2, 1], 1.94, None),
    ("fmow", 896, [3, 1], 2.71, None),
    ("bagnet77", 224, [], 18.42, 20.55),
    ("efficientnet-b0", 224, [], 0.39, 4.13),
    ("efficientnet-b0", 448, [], 1.54, 4.13),
    ("efficientnet-b0", 896, [], 6.18, 4.13),
]


@pytest.fixture(scope="module")
def imagenet_rows():
  """The ImageNet TNet's rows: seconds to count (all rows take about a
  minute, ``slow``)."""
  return profile.paper_rows(["imagenet"])


def _check_rows(rows, configs):
  found = {(r["config"], r["input_size"][0], tuple(r["locations"])): r
           for r in rows}
  expected = [row for row in PAPER if row[0] in configs]
  assert len(found) == len(expected)
  for config, size, locs, gmacs, params in expected:
    row = found[(config, size, tuple(locs))]
    assert row["gmacs"] == pytest.approx(gmacs, rel=0.05), (config, locs)
    if params is not None:
      assert row["params_m"] == pytest.approx(params, rel=0.05), config


@pytest.mark.slow
def test_every_paper_row_within_5_percent():
  _check_rows(profile.paper_rows(), {row[0] for row in PAPER})


def test_imagenet_rows_within_5_percent(imagenet_rows):
  _check_rows(imagenet_rows, {"imagenet"})


def test_cost_grows_linearly_with_locations(imagenet_rows):
  imagenet = [r for r in imagenet_rows if r["config"] == "imagenet"]
  per_location = [(b["gmacs"] - a["gmacs"]) / (b["total_locations"] -
                                              a["total_locations"])
                  for a, b in zip(imagenet, imagenet[1:])]
  # each attended location costs one BagNet-77 pass at 77² (~1.80 GMACs);
  # the first one also runs the location module once (~0.02 GMACs)
  assert max(per_location[1:]) - min(per_location[1:]) < 1e-6
  assert per_location[1] == pytest.approx(1.80, rel=0.01)
  assert 0.0 < per_location[0] - per_location[1] < 0.03


def _run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "tnet_tf.cli.profile", *args],
                        capture_output=True, text=True, env=env, timeout=300)


def test_cli_json():
  proc = _run_cli("--config=efficientnet-b0", "--input_size=224", "--json")
  assert proc.returncode == 0, proc.stderr
  rows = json.loads(proc.stdout)
  assert len(rows) == 1
  row = rows[0]
  assert set(row) >= {"config", "input_size", "locations", "gmacs",
                      "params_m"}
  assert row["config"] == "efficientnet-b0" and row["input_size"] == [224, 224]
  assert row["locations"] == [] and row["gmacs"] == pytest.approx(0.39, rel=0.05)


def test_cli_unknown_config_is_a_clear_error():
  proc = _run_cli("--config=resnet50")
  assert proc.returncode != 0
  assert "unknown --config ['resnet50']" in proc.stderr
