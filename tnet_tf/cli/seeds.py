"""Per-seed accuracy tables from finished runs.

  python -m tnet_tf.cli.seeds "renorm=runs/faces_renorm_s*" \\
      "batch norm=runs/faces_batch_s*" [--out=table.json]

Each argument is ``LABEL=GLOB``: the run directories (each with the
``summary.json`` the trainer writes) of one setting, one per training seed.
Prints, per setting, every seed's accuracy at every evaluated number of
locations, then the mean, the worst and best seed and their spread — the
figures of "Training you can trust" (experiments/README.md).
"""
from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np


def _label(locations: list) -> str:
  return ",".join(str(k) for k in locations) or "0"


def load(pattern: str) -> list[dict]:
  """The seeds (``train.seed``) and accuracy by locations of each run
  directory matching ``pattern``, sorted by seed."""
  runs = []
  for run_dir in sorted(d for d in glob.glob(pattern) if os.path.isdir(d)):
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
      raise SystemExit(f"error: {run_dir} has no summary.json (unfinished?)")
    with open(path) as fh:
      summary = json.load(fh)
    runs.append({
        "run_dir": run_dir, "seed": summary["config"]["train"]["seed"],
        "accuracy": {_label(r["locations"]): r["top1"]
                     for r in summary["eval"]}})
  if not runs:
    raise SystemExit(f"error: no run directory matches {pattern!r}")
  return sorted(runs, key=lambda r: r["seed"])


def summarise(label: str, runs: list[dict]) -> dict:
  settings = list(runs[0]["accuracy"])
  for run in runs:
    if list(run["accuracy"]) != settings:
      raise SystemExit(f"error: {run['run_dir']} was evaluated at "
                       f"{list(run['accuracy'])}, the others at {settings}")
  table = np.array([[r["accuracy"][k] for k in settings] for r in runs])
  return {"setting": label, "locations": settings, "runs": runs,
          "mean": dict(zip(settings, table.mean(0).tolist())),
          "worst": dict(zip(settings, table.min(0).tolist())),
          "best": dict(zip(settings, table.max(0).tolist()))}


def markdown(rows: list[dict]) -> str:
  settings = list(dict.fromkeys(k for row in rows for k in row["locations"]))
  lines = ["| setting | seed | " + " | ".join(
      f"{k} locs (%)" for k in settings) + " |",
           "|---|---|" + "---:|" * len(settings)]
  for row in rows:
    for run in row["runs"]:
      lines.append(f"| {row['setting']} | {run['seed']} | " + " | ".join(
          f"{100 * run['accuracy'][k]:.1f}" if k in run["accuracy"] else "–"
          for k in settings) + " |")
    lines.append(f"| {row['setting']} | **mean (worst–best)** | " +
                 " | ".join(f"**{100 * row['mean'][k]:.1f}** "
                            f"({100 * row['worst'][k]:.1f}–"
                            f"{100 * row['best'][k]:.1f})"
                            if k in row["mean"] else "–"
                            for k in settings) + " |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  out = None
  specs = []
  for arg in argv:
    if arg.startswith("--out="):
      out = arg[len("--out="):]
    elif "=" in arg:
      specs.append(arg.split("=", 1))
    else:
      raise SystemExit(f"error: expected LABEL=GLOB or --out=PATH, got "
                       f"{arg!r}")
  if not specs:
    raise SystemExit(__doc__)
  rows = [summarise(label, load(pattern)) for label, pattern in specs]
  text = markdown(rows)
  print(text)
  if out:
    with open(out, "w") as fh:
      json.dump({"command": "python -m tnet_tf.cli.seeds " +
                            " ".join(f'"{a}"' for a in argv),
                 "rows": rows}, fh, indent=1)


if __name__ == "__main__":
  main(sys.argv[1:])
