"""Benchmark hygiene: how busy the machine is with other work.

The load that matters is the CPU time of *other* processes while a
benchmark runs: on 2 cores, a second job slows a large-input model far more
than many small calls, and interleaving runs does not undo that (a run
recorded under a load average of 5.85 read 5.0× where an idle re-run reads
3.3×). ``LoadMonitor`` samples the machine's busy time (``/proc/stat``)
minus this process's own and its waited children's (``os.times``) in a
background thread; ``wait_until_idle`` waits for a quiet machine first.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Optional

_HZ = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
  """CPU seconds spent not idle by the whole machine since boot."""
  with open("/proc/stat", encoding="ascii") as f:
    fields = [int(v) for v in f.readline().split()[1:]]
  # user nice system idle iowait irq softirq steal (guest time is in user)
  busy = sum(fields[:3]) + sum(fields[5:8])
  return busy / _HZ


def _live_descendants_seconds() -> float:
  """CPU seconds of this process's live descendants (not yet waited for),
  with the descendants they waited for."""
  parents, times = {}, {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
      continue  # gone meanwhile
    parents[int(entry)] = int(fields[1])
    # its own time and its waited children's: a grandchild reaped by a
    # live child stays counted (Beam's workers are reaped by their
    # launchers, which this process reaps last)
    times[int(entry)] = sum(int(v) for v in fields[11:15]) / _HZ
  ours, frontier = set(), {os.getpid()}
  while frontier:
    frontier = {pid for pid, ppid in parents.items()
                if ppid in frontier and pid not in ours}
    ours |= frontier
  return sum(times[pid] for pid in ours)


def own_seconds() -> float:
  """CPU seconds of this process (all threads) and of its descendants,
  waited for (``os.times``) or still running (``/proc``)."""
  t = os.times()
  return (t.user + t.system + t.children_user + t.children_system +
          _live_descendants_seconds())


class LoadMonitor:
  """Samples other processes' CPU use, in cores (2.0 = both cores busy),
  every ``interval`` seconds while running."""

  def __init__(self, interval: float = 1.0):
    self.interval = interval
    self.samples: list[float] = []
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def sample(self, seconds: float) -> float:
    """Other processes' load over the next ``seconds`` (blocking)."""
    wall, busy, own = time.monotonic(), machine_busy_seconds(), own_seconds()
    time.sleep(seconds)
    wall = time.monotonic() - wall
    others = (machine_busy_seconds() - busy) - (own_seconds() - own)
    return max(0.0, others / max(wall, 1e-9))

  def _run(self):
    while not self._stop.is_set():
      self.samples.append(self.sample(self.interval))

  def __enter__(self) -> "LoadMonitor":
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()

  def summary(self) -> dict:
    values = sorted(self.samples) or [0.0]
    return {"mean_cores": sum(values) / len(values),
            "p90_cores": values[int(0.9 * (len(values) - 1))],
            "max_cores": values[-1], "samples": len(self.samples),
            "interval_s": self.interval}


def wait_until_idle(threshold: float, window: float = 5.0,
                    timeout: float = 600.0, say=print) -> dict:
  """Waits until other processes use less than ``threshold`` cores over a
  ``window``, at most ``timeout`` seconds. Returns what was measured."""
  monitor = LoadMonitor()
  started = time.monotonic()
  load = monitor.sample(window)
  while load >= threshold and time.monotonic() - started < timeout:
    say(f"machine busy: other processes use {load:.2f} cores "
        f"(threshold {threshold}); waiting")
    load = monitor.sample(window)
  return {"load_cores": load, "idle": load < threshold,
          "waited_s": time.monotonic() - started - window,
          "threshold_cores": threshold, "load_average": list(os.getloadavg())}
