"""Performance table of issue 7: TNet-B0 (fMoW) against full-image EN-B0.

In one process: GMACs, parameters and ms per image (batch 1 and 8, medians
of interleaved runs after warm-up) of TNet and the EfficientNet-B0 baseline at
r, 2r, 4r, 8r and 16r (224² … 3584²); the time of TNet's backbone calls alone
(same batch shapes per level); training throughput of the full
``train_step`` at 2r; and peak memory (VmHWM) of each model's inference in
subprocesses it launches itself. Prints the table and the ratios of issue 7
and writes them to ``--out``::

  python -m benchmarks.performance            # two recorded runs
  python -m benchmarks.performance --quick    # a short smoke run

It waits for an idle machine, runs the whole table twice in a row and
records the mean and spread of the ratios only if no other process
disturbed a run (``benchmarks/record.py``).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from benchmarks import record  # noqa: E402
from tnet_tf.model import baselines  # noqa: E402
from tnet_tf.model import cost  # noqa: E402
from tnet_tf.config import ModelConfig, preset  # noqa: E402
from tnet_tf.model.layers import grid  # noqa: E402
from tnet_tf.model.inputs import features_per_level  # noqa: E402
from tnet_tf.model.tnet import TNet  # noqa: E402
from tnet_tf.model.inputs import total_locations  # noqa: E402
from tnet_tf.training import tasks  # noqa: E402

# family -> (inference preset and overrides: 3 levels; training preset: the
# 2-level model; full-image baseline backbone)
FAMILIES = {
    "fmow": (("fmow_stage2", {}), ("fmow", {}), "efficientnet-b0"),
    # tiny CNN, r = 32: for the smoke test only
    "toy": (("toy", {"levels": 3, "locations": (2, 1)}), ("toy", {}),
            "tiny_cnn"),
}
# issue 7's targets: (ratio, at least / at most, bound)
TARGETS = {
    "speedup_896": (">=", 3.0),
    "speedup_896_b1": (">=", 2.5),
    "overhead": ("<=", 1.10),
    "scaling_3584_over_896": ("<=", 1.10),
    "train_speedup_448": (">=", 1.3),
    "memory_ratio_896": ("<=", 0.4),
}

# every ratio the results record holds, in the order printed
RATIO_KEYS = (
    "speedup_896", "speedup_896_b1", "gmacs_ratio_896", "overhead",
    "overhead_b1", "scaling_3584_over_896", "scaling_3584_over_896_b1",
    "train_speedup_448", "memory_ratio_896", "memory_ratio_896_b1",
    "memory_ratio_896_above_floor", "memory_ratio_896_above_floor_b1",
    "memory_floor_mb")

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Flags of the command line only: importing this module defines none."""
  flags.DEFINE_enum("family", "fmow", sorted(FAMILIES),
                    "fmow: TNet-B0 and EN-B0 (issue 7); toy: the tiny CNN, "
                    "for smoke tests.")
  flags.DEFINE_list("sizes", None,
                    "Square input sizes (default r, 4r, 16r, i.e. 224, 896, "
                    "3584 for fmow; --quick: r..8r).")
  flags.DEFINE_list("batches", ["1", "8"], "Inference batch sizes.")
  flags.DEFINE_integer("repeats", 5,
                       "Timed runs per case (median); --quick: 3.")
  flags.DEFINE_integer("warmup", 2,
                       "Untimed runs per case first; --quick: 1.")
  flags.DEFINE_integer("train_batch", 8, "Batch of the training steps.")
  flags.DEFINE_integer("train_repeats", None,
                       "Timed training steps per model (default --repeats).")
  flags.DEFINE_list("memory_sizes", None,
                    "Sizes whose peak memory is measured (default 4r); "
                    "empty: none.")
  flags.DEFINE_integer("max_baseline_pixels", 8 * 1792 * 1792,
                       "Skip baseline cases of more batch*H*W pixels (EN-B0 "
                       "at 3584² batch 8: ~20 GB and minutes per call).")
  flags.DEFINE_integer("intra_op_threads", 0,
                       "TF intra-op threads (0: TF's default).")
  flags.DEFINE_integer("inter_op_threads", 0,
                       "TF inter-op threads (0: TF's default).")
  flags.DEFINE_bool("quick", False, "Short smoke run (see the defaults; "
                    "--runs defaults to 1).")
  record.define_flags("benchmarks/results.json")
  flags.adopt_module_key_flags(record)  # listed by --help
  flags.DEFINE_string("memory_child", None,
                      "Internal: KIND:SIZE:BATCH, run one inference case in "
                      "this process and exit (peak memory subprocess).")


# ------------------------------------------------------------------ models
def model_config(family: str, training: bool = False) -> ModelConfig:
  name, overrides = FAMILIES[family][1 if training else 0]
  return preset(name, input_size=None, **overrides)


def build_baseline(family: str, cfg: ModelConfig) -> keras.Model:
  """The full-image classifier on the family's backbone, any input size."""
  kwargs = {k: v for k, v in cfg.backbone_kwargs.items()
            if k in ("block_drop_rate", "widths")}
  return baselines.build_classifier(FAMILIES[family][2], cfg.num_classes,
                                    (None, None), cfg.dropout, **kwargs)


def locations_for(cfg: ModelConfig, size: int) -> tuple[int, ...]:
  """The config's locations, for as many levels as ``size`` supports."""
  levels = min(cfg.levels, grid.max_levels((size, size), cfg.base_resolution,
                                           cfg.cell_fraction))
  return tuple(cfg.locations[:levels - 1])


def tnet_fn(model: TNet, locations: Sequence[int]):
  """Inference as served: uint8 images → logits, one ``tf.function``."""
  return tf.function(lambda x: model(x, training=False,
                                     locations=tuple(locations))["logits"])


def baseline_fn(model: keras.Model):
  return tf.function(lambda x: model(tf.cast(x, tf.float32), training=False))


def backbone_fn(model: TNet):
  """TNet's backbone alone on a list of crop batches (one per level).

  Each call starts after the previous one's ``F`` map exists, as in TNet,
  where the location module reads ``F`` to choose the next level's crops;
  independent calls would instead overlap on the two cores.
  """
  extractor = model.feature_extraction

  def calls(crops):
    outputs, previous = [], []
    for c in crops:
      with tf.control_dependencies(previous):
        f_map, v = extractor(tf.identity(c), training=False)
      outputs.append((f_map, v))
      previous = [f_map]
    return outputs
  return tf.function(calls)


def backbone_inputs(model: TNet, locations: Sequence[int],
                    batch: int) -> list[tf.Tensor]:
  """Float crops of the shapes TNet's levels feed its backbone."""
  r = model.config.base_resolution
  return [tf.random.uniform([batch * g, r, r, 3], 0.0, 255.0)
          for g in features_per_level(locations)]


def random_images(batch: int, size: int, seed: int = 0) -> tf.Tensor:
  rng = np.random.default_rng(seed)
  return tf.constant(rng.integers(0, 256, (batch, size, size, 3), np.uint8))


def set_threads() -> None:
  tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
  tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)


# ------------------------------------------------------------ peak memory
def memory_child(spec: str) -> None:
  """Runs one inference case three times and prints its peak RSS (VmHWM).

  ``spec`` is ``KIND:SIZE:BATCH``; KIND ``tnet``, ``baseline``,
  ``backbone_calls`` (TNet's backbone on the crop batches of SIZE) or
  ``floor`` (the same imports, no model: what every case pays).
  """
  kind, size, batch = spec.split(":")
  size, batch = int(size), int(batch)
  set_threads()
  cfg = model_config(FLAGS.family)
  if kind != "floor":
    if kind == "baseline":
      fn, inputs = baseline_fn(build_baseline(FLAGS.family, cfg)), None
    else:
      model = TNet(cfg)
      locs = locations_for(cfg, size)
      fn, inputs = ((tnet_fn(model, locs), None) if kind == "tnet" else
                    (backbone_fn(model), backbone_inputs(model, locs, batch)))
    inputs = random_images(batch, size) if inputs is None else inputs
    for _ in range(3):
      tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
  with open("/proc/self/status", encoding="ascii") as f:
    kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
  print(json.dumps({"vmhwm_mb": kb / 1024.0}))


def peak_memory(cases: Sequence[tuple[str, int, int]],
                parallel: int = 2) -> dict:
  """Peak RSS (MB) of each ``(kind, size, batch)`` inference subprocess.

  ``parallel`` children run at a time (peak RSS is per process); each
  reports its own VmHWM, the kernel's high-water mark of its resident set,
  taken after its last call.
  """
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  common = [f"--family={FLAGS.family}",
            f"--intra_op_threads={FLAGS.intra_op_threads}",
            f"--inter_op_threads={FLAGS.inter_op_threads}"]
  peaks = {}
  for start in range(0, len(cases), parallel):
    running = []
    for case in cases[start:start + parallel]:
      spec = ":".join(str(c) for c in case)
      proc = subprocess.Popen(
          [sys.executable, "-m", "benchmarks.performance",
           f"--memory_child={spec}", *common], cwd=repo,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      running.append((case, proc))
    for case, proc in running:
      out, err = proc.communicate()
      if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess {case} failed "
                           f"({proc.returncode}):\n{err[-3000:]}")
      peaks[case] = json.loads(out.strip().splitlines()[-1])["vmhwm_mb"]
  return peaks


# --------------------------------------------------------------- timing
def inference_times(model: TNet, baseline: keras.Model, sizes: Sequence[int],
                    batch: int, warmup: int, repeats: int) -> dict:
  """Median ms per image of every case at one batch size, interleaved.

  Cases: TNet and the baseline at each size, and TNet's backbone calls alone
  for each distinct locations setting; one round runs each case once.
  """
  cases = {}
  for size in sizes:  # one tf.function per case: no retracing warnings
    locs = locations_for(model.config, size)
    images = random_images(batch, size, seed=size)
    if ("backbone_calls", locs) not in cases:
      cases[("backbone_calls", locs)] = (
          backbone_fn(model), backbone_inputs(model, locs, batch), batch)
    cases[("tnet", size)] = (tnet_fn(model, locs), images, batch)
    if batch * size * size <= FLAGS.max_baseline_pixels:
      cases[("baseline", size)] = (baseline_fn(baseline), images, batch)
  times = cost.time_interleaved(cases, warmup, repeats)
  return {key: _stats(t) for key, t in times.items()}


def _stats(times: Sequence[float]) -> dict:
  q1, median, q3 = np.percentile(times, [25, 50, 75])
  return {"ms_per_image": float(median), "ms_iqr": [float(q1), float(q3)]}


def train_throughput(family: str, size: int, batch: int, warmup: int,
                     repeats: int) -> dict:
  """Images/s of ``train_step`` (via ``make_train_function``), interleaved."""
  cfg = model_config(family, training=True)
  tnet = tasks.create("tnet", cfg)
  tnet.compile(keras.optimizers.Adam(1e-3))
  baseline = tasks.create("baseline", tasks.model_config_for("baseline", cfg))
  baseline.compile(keras.optimizers.Adam(1e-3))
  rng = np.random.default_rng(1)
  labels = tf.constant(rng.integers(0, cfg.num_classes, batch), tf.int32)
  data = tf.data.Dataset.from_tensors(
      (random_images(batch, size, seed=1), labels)).repeat()
  cases = {name: (model.make_train_function(), iter(data), batch)
           for name, model in (("tnet", tnet), ("baseline", baseline))}
  times = cost.time_interleaved(cases, warmup, repeats)
  out = {}
  for name, t in times.items():
    stats = _stats(t)
    stats["images_per_s"] = 1000.0 / stats["ms_per_image"]
    out[name] = stats
  out["locations"] = list(cfg.locations)
  return out


# --------------------------------------------------------------- report
def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
  if a is None or b is None or not b:
    return None
  return float(a) / float(b)


def ratios(rows: list[dict], train: dict, ref: int, largest: int,
           memory_floor: Optional[float] = None) -> dict:
  """Issue 7's ratios at the largest batch, and at batch 1 (``_b1``)."""
  def get(kind, size, batch, key="ms_per_image", locs=None):
    for row in rows:
      if (row["kind"] == kind and row["batch"] == batch and
          (size is None or row["input"] == size) and
          (locs is None or row["locations"] == list(locs))):
        return row.get(key)
    return None
  ref_locs = next(r["locations"] for r in rows
                  if r["kind"] == "tnet" and r["input"] == ref)
  out = {}
  big = max(r["batch"] for r in rows)
  for suffix, b in (("", big), ("_b1", 1)):
    out["speedup_896" + suffix] = _ratio(get("baseline", ref, b),
                                         get("tnet", ref, b))
    out["overhead" + suffix] = _ratio(
        get("tnet", ref, b), get("backbone_calls", None, b, locs=ref_locs))
    out["scaling_3584_over_896" + suffix] = (  # None without a larger size
        _ratio(get("tnet", largest, b), get("tnet", ref, b))
        if largest > ref else None)
    tnet_mb = get("tnet", ref, b, "peak_rss_mb")
    base_mb = get("baseline", ref, b, "peak_rss_mb")
    out["memory_ratio_896" + suffix] = _ratio(tnet_mb, base_mb)
    if memory_floor is not None and tnet_mb and base_mb:
      out["memory_ratio_896_above_floor" + suffix] = _ratio(
          tnet_mb - memory_floor, base_mb - memory_floor)
  out["train_speedup_448"] = _ratio(train["tnet"]["images_per_s"],
                                    train["baseline"]["images_per_s"])
  out["gmacs_ratio_896"] = _ratio(get("baseline", ref, big, "gmacs"),
                                  get("tnet", ref, big, "gmacs"))
  out["memory_floor_mb"] = memory_floor
  for key, value in list(out.items()):
    if value is not None and not math.isfinite(value):
      out[key] = None
  return out


def format_table(rows: list[dict], batches: Sequence[int]) -> str:
  """One line per (model, input): GMACs, params, ms and peak MB per batch."""
  head = (f"{'model':<16}{'input':>6} {'locations':<10}{'GMACs':>8}"
          f"{'params M':>9}" +
          "".join(f"{f'ms b{b}':>9}" for b in batches) +
          "".join(f"{f'MB b{b}':>8}" for b in batches))
  lines, seen = [head, "-" * len(head)], []
  for row in rows:
    key = (row["model"], row["input"], tuple(row["locations"]))
    if key in seen:
      continue
    seen.append(key)
    same = {r["batch"]: r for r in rows
            if (r["model"], r["input"], tuple(r["locations"])) == key}
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    lines.append(
        f"{row['model']:<16}{row['input'] or '':>6} "
        f"{str(row['locations']):<10}{fmt(row.get('gmacs'), '8.3f'):>8}"
        f"{fmt(row.get('params_m'), '9.2f'):>9}" +
        "".join(f"{fmt(same.get(b, {}).get('ms_per_image'), '9.1f'):>9}"
                for b in batches) +
        "".join(f"{fmt(same.get(b, {}).get('peak_rss_mb'), '8.0f'):>8}"
                for b in batches))
  return "\n".join(lines)


def format_ratios(values: dict) -> str:
  lines = []
  for key, value in values.items():
    target = TARGETS.get(key)
    text = f"{value:.3f}" if value is not None else "n/a"
    if target and value is not None:
      op, bound = target
      ok = value >= bound if op == ">=" else value <= bound
      text += f"   (target {op} {bound}: {'met' if ok else 'NOT met'})"
    lines.append(f"  {key:<32} {text}")
  return "\n".join(lines)


# ----------------------------------------------------------------- main
def _flag(name: str, quick_value):
  """The flag's value, or ``quick_value`` under --quick if not given."""
  if FLAGS.quick and not FLAGS[name].present:
    return quick_value
  return FLAGS[name].value


def _memory_cases(cfg: ModelConfig, sizes: Sequence[int],
                  batches: Sequence[int], backbone_calls: bool = True
                  ) -> list[tuple[str, int, int]]:
  cases = [("floor", 0, 0)]
  for b in batches:
    seen = set()
    for size in sizes:
      cases.append(("tnet", size, b))
      if b * size * size <= FLAGS.max_baseline_pixels:
        cases.append(("baseline", size, b))
      locs = locations_for(cfg, size)
      if backbone_calls and locs not in seen:
        seen.add(locs)
        cases.append(("backbone_calls", size, b))
  return cases


def _gmacs(model: TNet, baseline: keras.Model, sizes: Sequence[int]) -> dict:
  """GMACs of one image per ``(kind, size)``, counted on the traced graph."""
  out = {}
  for size in sizes:
    locs = locations_for(model.config, size)
    out[("tnet", size)] = cost.count_macs(
        lambda x, l=locs: model(x, training=False, locations=l)["logits"],
        [1, size, size, 3], tf.uint8) / 1e9
    out[("baseline", size)] = cost.count_macs(
        lambda x: baseline(x, training=False), [1, size, size, 3]) / 1e9
  return out


def run_benchmark() -> dict:
  """Every measurement of the table; returns the results record."""
  set_threads()
  family = FLAGS.family
  cfg = model_config(family)
  r = cfg.base_resolution
  default_sizes = ([r, 2 * r, 4 * r, 8 * r] if FLAGS.quick
                   else [r, 4 * r, 16 * r])
  sizes = [int(s) for s in (FLAGS.sizes or default_sizes)]
  ref, largest, train_size = 4 * r, max(sizes), 2 * r
  if ref not in sizes:
    raise app.UsageError(f"--sizes must include 4r = {ref} (the ratios' "
                         "reference size)")
  batches = sorted({int(b) for b in FLAGS.batches})
  repeats, warmup = _flag("repeats", 3), _flag("warmup", 1)
  train_repeats = FLAGS.train_repeats or repeats
  if FLAGS.memory_sizes is None:
    memory_sizes = [ref]
  else:
    memory_sizes = [int(s) for s in FLAGS.memory_sizes]
  memory_batches = batches[-1:] if FLAGS.quick else batches
  load_before = os.getloadavg()
  start = time.perf_counter()
  say = lambda text: print(f"[{time.perf_counter() - start:6.0f} s] {text}",
                           flush=True)

  # peak memory subprocesses run while the models are built and their MACs
  # counted, and end before any timing (they would disturb it)
  memory_cases = (_memory_cases(cfg, memory_sizes, memory_batches,
                                backbone_calls=not FLAGS.quick)
                  if memory_sizes else [])
  say(f"peak memory: {len(memory_cases)} subprocesses, in the background")
  peaks, errors = {}, []
  def measure():
    try:
      peaks.update(peak_memory(memory_cases, 3 if FLAGS.quick else 2))
    except Exception as err:  # pylint: disable=broad-except
      errors.append(err)
  memory_thread = threading.Thread(target=measure)
  memory_thread.start()

  tf.random.set_seed(0)
  model = TNet(cfg)
  baseline = build_baseline(family, cfg)
  params = {"tnet": model.count_params() / 1e6,
            "baseline": baseline.count_params() / 1e6}
  say("GMACs")
  gmacs = _gmacs(model, baseline, sizes)
  say("waiting for the peak memory subprocesses")
  memory_thread.join()
  if errors:
    raise errors[0]

  names = {"tnet": f"tnet-{FAMILIES[family][2].split('-')[-1]}",
           "baseline": FAMILIES[family][2]}
  rows = []
  for b in batches:
    say(f"inference, batch {b}")
    times = inference_times(model, baseline, sizes, b, warmup, repeats)
    for size in sizes:
      locs = list(locations_for(cfg, size))
      for kind in ("tnet", "baseline"):
        row = {"model": names[kind], "kind": kind, "input": size, "batch": b,
               "locations": locs if kind == "tnet" else [],
               "total_locations": (total_locations(locs) if kind == "tnet"
                                   else 0),
               "gmacs": gmacs[(kind, size)], "params_m": params[kind],
               "peak_rss_mb": peaks.get((kind, size, b)),
               **times.get((kind, size), {})}
        if (kind, size) not in times:
          row["skipped"] = "over --max_baseline_pixels (memory)"
        rows.append(row)
    for key, stats in times.items():
      if key[0] == "backbone_calls":
        locs = list(key[1])
        size = next(s for s in sizes if locations_for(cfg, s) == key[1])
        rows.append({"model": "backbone_calls", "kind": "backbone_calls",
                     "input": None, "batch": b, "locations": locs,
                     "crop_batches": [b * g for g in features_per_level(locs)],
                     "peak_rss_mb": peaks.get(("backbone_calls", size, b)),
                     **stats})
  say(f"training throughput at {train_size}², batch {FLAGS.train_batch}")
  train = train_throughput(family, train_size, FLAGS.train_batch, warmup,
                           train_repeats)
  values = ratios(rows, train, ref, largest, peaks.get(("floor", 0, 0)))
  say("done")
  return {
      **values,
      "targets": {k: list(v) for k, v in TARGETS.items()},
      "sizes": {"reference": ref, "largest": largest, "train": train_size},
      "train": {**train, "input": train_size, "batch": FLAGS.train_batch},
      "machine": record.machine({
          "intra_op_threads": FLAGS.intra_op_threads,
          "inter_op_threads": FLAGS.inter_op_threads,
          "load_average_before": list(load_before),
          "load_average_after": list(os.getloadavg())}),
      "settings": {"runtime": "TensorFlow (tf.function, what the "
                              "SavedModel serves), default threads",
                   "family": family, "sizes": sizes, "batches": batches,
                   "repeats": repeats, "warmup": warmup,
                   "train_repeats": train_repeats, "quick": FLAGS.quick,
                   "memory_sizes": memory_sizes,
                   "memory_batches": memory_batches},
      "command": " ".join(["python", *sys.argv]),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "rows": rows,
  }


def print_run(results: dict) -> None:
  batches = results["settings"]["batches"]
  print(f"\nruntime: {results['settings']['runtime']} (both models, every "
        "row)")
  print(format_table(results["rows"], batches))
  train = results["train"]
  print(f"\ntraining at {train['input']}², batch {train['batch']}: TNet "
        f"{train['locations']} {train['tnet']['images_per_s']:.2f} images/s, "
        f"baseline {train['baseline']['images_per_s']:.2f} images/s")
  print(f"\nratios (sizes: reference {results['sizes']['reference']}², "
        f"largest {results['sizes']['largest']}²; no suffix = batch "
        f"{batches[-1]}):")
  print(format_ratios({k: results.get(k) for k in RATIO_KEYS}))


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")  # one tf.function per case retraces
  if FLAGS.memory_child:
    memory_child(FLAGS.memory_child)
    return

  def measure():
    results = run_benchmark()
    print_run(results)
    return results

  status = record.guarded(
      measure, RATIO_KEYS, FLAGS.out, runs=_flag("runs", 1),
      threshold=FLAGS.idle_threshold, wait=FLAGS.wait_idle)
  with open(FLAGS.out if status == 0 else
            os.path.splitext(FLAGS.out)[0] + ".disturbed.json",
            encoding="utf-8") as f:
    recorded = json.load(f)
  print("\nrecorded figures (mean of the runs; spread = (max - min) / mean):")
  print(format_ratios({k: recorded.get(k) for k in RATIO_KEYS}))
  print("spread: " + ", ".join(f"{k} {v:.1%}" for k, v in
                               recorded["spread"].items() if v is not None))
  sys.exit(status)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
