"""Recording a benchmark so that its figures come back when re-run.

``guarded(measure, ...)`` waits for an idle machine, runs ``measure()`` a
number of times in a row (each under a ``LoadMonitor``), and writes the
results file only when no run was disturbed by other processes. The file
holds every run, the machine block, the load seen before and during each
run, the figures (the mean of the runs) and their spread (the largest
relative difference between runs, per ratio). A disturbed run is written
next to it (``<name>.disturbed.json``) and the command exits with status 3.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from typing import Callable, Optional, Sequence

from absl import flags
import tensorflow as tf
import tf_keras as keras

from benchmarks import hygiene

DISTURBED = 3  # exit status of a run that other processes disturbed


def machine(extra: Optional[dict] = None) -> dict:
  info = {"cpu": platform.processor() or "?", "cores": os.cpu_count(),
          "python": platform.python_version(), "tensorflow": tf.__version__,
          "tf_keras": keras.__version__, "platform": platform.platform()}
  try:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
      names = [l.split(":", 1)[1].strip() for l in f
               if l.startswith("model name")]
    info["cpu"] = names[0] if names else info["cpu"]
    with open("/proc/meminfo", encoding="ascii") as f:
      kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
    info["ram_gib"] = round(kb / 2**20, 1)
  except (OSError, StopIteration, IndexError, ValueError):
    pass
  return {**info, **(extra or {})}


def spread(runs: Sequence[dict], keys: Sequence[str]) -> dict:
  """Per key: (max − min) / mean over the runs (None if a value is missing)."""
  out = {}
  for key in keys:
    values = [run.get(key) for run in runs]
    if any(v is None for v in values) or not values:
      out[key] = None
      continue
    mean = sum(values) / len(values)
    out[key] = (max(values) - min(values)) / abs(mean) if mean else 0.0
  return out


def mean_of(runs: Sequence[dict], keys: Sequence[str]) -> dict:
  out = {}
  for key in keys:
    values = [run.get(key) for run in runs]
    out[key] = (None if any(v is None for v in values)
                else sum(values) / len(values))
  return out


def guarded(measure: Callable[[], dict], keys: Sequence[str], out: str, *,
            runs: int = 2, threshold: float = 0.25, wait: float = 600.0,
            agree: float = 0.10, say=print) -> int:
  """Runs ``measure`` ``runs`` times on an idle machine and records it.

  ``keys`` name the ratios whose spread is checked against ``agree``.
  Returns the exit status: 0 recorded, ``DISTURBED`` (3) disturbed.
  """
  before = hygiene.wait_until_idle(threshold, timeout=wait, say=say)
  results, loads = [], []
  for i in range(runs):
    say(f"run {i + 1} of {runs}")
    with hygiene.LoadMonitor() as monitor:
      results.append(measure())
    loads.append(monitor.summary())
  disturbed = (not before["idle"]) or any(
      load["mean_cores"] >= threshold for load in loads)
  record = {
      **mean_of(results, keys),
      "spread": spread(results, keys),
      "agree_within": agree,
      "agreed": all(v is not None and v <= agree
                    for v in spread(results, keys).values()),
      "machine": machine({"load_before": before, "load_during": loads}),
      "disturbed": disturbed,
      "command": " ".join(["python", "-m", "benchmarks." +
                           os.path.splitext(os.path.basename(
                               sys.argv[0]))[0], *sys.argv[1:]]),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "runs": results}
  path = out
  if disturbed:
    path = os.path.splitext(out)[0] + ".disturbed.json"
    worst = max(load["mean_cores"] for load in loads)
    say(f"DISTURBED: other processes used {worst:.2f} cores during a run "
        f"(threshold {threshold}; before: "
        f"{before['load_cores']:.2f}): {out} is left as it was; this run "
        f"is in {path}")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  say(f"wrote {path}" + ("" if record["agreed"] else
                         f" (runs disagree by more than {agree:.0%})"))
  return DISTURBED if disturbed else 0


def define_flags(out: str) -> None:
  """The flags of recording through ``guarded``: ``--out`` (default
  ``out``), ``--runs``, ``--idle_threshold``, ``--wait_idle``."""
  flags.DEFINE_string("out", out, "Results file.")
  flags.DEFINE_integer("runs", 2, "Consecutive runs recorded.")
  flags.DEFINE_float("idle_threshold", 0.25,
                     "Other processes' CPU use (cores) above which the "
                     "machine counts as busy: wait before, and a run "
                     "during which it is exceeded is not recorded.")
  flags.DEFINE_float("wait_idle", 600.0,
                     "Seconds to wait for an idle machine before starting.")


def guarded_by_flags(measure: Callable[[], dict], keys: Sequence[str]
                     ) -> int:
  """``guarded`` with the flags of ``define_flags``."""
  f = flags.FLAGS
  return guarded(measure, keys, f.out, runs=f.runs,
                 threshold=f.idle_threshold, wait=f.wait_idle)
