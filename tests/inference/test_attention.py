"""Attention export: the coverage statistic by hand, the table, the CLI."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.inference import attention
from tnet_tf.model.tnet import TNet


def test_union_area_by_hand():
  assert attention.union_area([[0, 0, 2, 2], [1, 1, 3, 3]]) == 7.0
  assert attention.union_area([[0, 0, 4, 4], [1, 1, 2, 2]]) == 16.0
  assert attention.union_area([[0, 0, 1, 1], [5, 5, 7, 6]]) == 3.0
  assert attention.union_area(np.zeros((0, 4))) == 0.0


def test_coverage_of_two_neighbouring_fmow_cells():
  # fMoW geometry: 3×3 grid of half-size cells on 896²; cells 0 and 1
  # overlap by half their width: 2·¼ − ⅛ = 0.375 of the image (the paper's
  # §5.4 reports 37.91% on average at this level)
  boxes = np.array([[0, 0, 896, 896], [0, 0, 448, 448], [0, 224, 448, 672],
                    [0, 0, 224, 224]], np.float32)
  levels = np.array([1, 2, 2, 3])
  assert attention.coverage(boxes, levels, (896, 896), 3) == pytest.approx(
      [1.0, 0.375, 1 / 16])


@pytest.fixture(scope="module")
def rows():
  tf.random.set_seed(0)
  model = TNet(tiny_config(levels=3, locations=(2, 1)))
  images = np.random.default_rng(0).integers(0, 256, (5, 128, 96, 3),
                                             dtype=np.uint8)
  labels = np.arange(5) % 5
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
  return attention.collect(model, dataset, (2, 1))


def test_rows_hold_every_box_inside_the_image(rows):
  assert [r["index"] for r in rows] == list(range(5))
  for row in rows:
    boxes = np.array([a["box"] for a in row["attended"]])
    assert [a["level"] for a in row["attended"]] == [1, 2, 2, 3, 3]
    assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= 128)
    assert np.all(boxes[:, [1, 3]] <= 96)
    assert np.all(boxes[:, 2] > boxes[:, 0])
    # candidate cells: level 2 one region of 9 cells, level 3 two regions
    assert np.array(row["cell_probabilities"]["2"]).shape == (1, 9)
    assert np.array(row["cell_probabilities"]["3"]).shape == (2, 9)
    np.testing.assert_allclose(
        np.array(row["cell_probabilities"]["3"]).sum(-1), 1.0, atol=1e-4)
    # an attended cell's probability is its candidate's probability
    level2 = np.array(row["cell_probabilities"]["2"])[0]
    np.testing.assert_allclose(
        sorted(a["probability"] for a in row["attended"]
               if a["level"] == 2), np.sort(level2)[-2:], atol=1e-5)
    assert row["coverage"]["1"] == pytest.approx(1.0)
    assert 0 < row["coverage"]["3"] <= row["coverage"]["2"] < 1


def test_csv_json_and_summary(rows, tmp_path):
  result = attention.write(rows, str(tmp_path))
  with open(tmp_path / "attention.csv") as fh:
    table = list(csv.DictReader(fh))
  assert len(table) == 5
  assert len(json.loads(table[0]["boxes_level3"])) == 2
  assert len(list(attention.iterate_rows(str(tmp_path / "attention.jsonl")))
             ) == 5
  assert result["images"] == 5 and set(result["mean_coverage"]) == {
      "1", "2", "3"}


def test_cli_on_a_trained_run(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  run_dir = str(tmp_path / "run")
  train = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.runner", "--dataset=toy",
       "--preset=toy", f"--run_dir={run_dir}", "--train_steps=2",
       "--batch_size=4", "--num_examples=16", "--noexport"],
      capture_output=True, text=True, env=env, timeout=600)
  assert train.returncode == 0, train.stderr[-2000:]
  tags = set()  # the TensorBoard overlay written at the evaluation
  for path in tf.io.gfile.glob(os.path.join(run_dir, "eval", "events*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  assert "attention/locations_2" in tags
  out = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.attention", f"--run_dir={run_dir}",
       "--max_examples=6", "--locations=3", "--pictures=4"],
      capture_output=True, text=True, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  with open(os.path.join(run_dir, "attention", "attention.csv")) as fh:
    table = list(csv.DictReader(fh))
  assert len(table) == 6 and len(json.loads(table[0]["boxes_level2"])) == 3
  assert os.path.getsize(os.path.join(run_dir, "attention",
                                      "attention.png")) > 1000
  bad = subprocess.run(
      [sys.executable, "-m", "tnet_tf.cli.attention",
       f"--run_dir={tmp_path / 'nowhere'}"],
      capture_output=True, text=True, env=env, timeout=600)
  assert bad.returncode != 0 and "config.json not found" in bad.stderr
  assert "Traceback" not in bad.stderr
