"""Per-seed tables from run directories (tnet_tf.cli.seeds)."""
import json

import pytest

from tnet_tf.cli import seeds


def _run(root, name, seed, accuracies, locations=([], [1], [2, 1])):
  run_dir = root / name
  run_dir.mkdir()
  (run_dir / "summary.json").write_text(json.dumps({
      "config": {"train": {"seed": seed}},
      "eval": [{"locations": list(k), "top1": a}
               for k, a in zip(locations, accuracies)]}))
  return run_dir


def test_table_has_every_seed_and_the_mean_worst_best(tmp_path, capsys):
  _run(tmp_path, "a_s3", 3, [0.5, 0.7, 0.9])
  _run(tmp_path, "a_s1", 1, [0.5, 0.6, 0.8])
  _run(tmp_path, "b_s0", 0, [0.5, 0.5, 0.5])
  (tmp_path / "a_s9.log").write_text("a log file, not a run")
  out = tmp_path / "table.json"
  seeds.main([f"A={tmp_path}/a_s*", f"B={tmp_path}/b_s*", f"--out={out}"])
  text = capsys.readouterr().out
  assert "| A | 1 | 50.0 | 60.0 | 80.0 |" in text
  assert "| A | 3 | 50.0 | 70.0 | 90.0 |" in text
  assert "**85.0** (80.0–90.0)" in text  # 2,1 locations: mean, worst–best
  rows = json.loads(out.read_text())["rows"]
  assert [r["seed"] for r in rows[0]["runs"]] == [1, 3]
  assert rows[0]["locations"] == ["0", "1", "2,1"]
  assert rows[1]["mean"]["2,1"] == pytest.approx(0.5)


def test_runs_evaluated_differently_or_missing_are_refused(tmp_path):
  _run(tmp_path, "a_s0", 0, [0.5, 0.7, 0.9])
  _run(tmp_path, "a_s1", 1, [0.5, 0.7], locations=([], [1]))
  with pytest.raises(SystemExit, match="evaluated at"):
    seeds.main([f"A={tmp_path}/a_s*"])
  with pytest.raises(SystemExit, match="no run directory"):
    seeds.main([f"A={tmp_path}/none*"])
  (tmp_path / "c_s0").mkdir()
  with pytest.raises(SystemExit, match="no summary.json"):
    seeds.main([f"C={tmp_path}/c_s*"])
