"""TNet-B0 against EfficientNet-B0 at 896² in every runtime tried.

  python -m benchmarks.runtimes                    # two recorded runs
  python -m benchmarks.runtimes --accuracy_run=runs/synthetic/tnet

For each runtime — TensorFlow (what the SavedModel runs) with its default
threads, one thread, BatchNormalization folded into the convolutions, or
oneDNN's automatic bfloat16; LiteRT (XNNPACK) float with 1 thread (its
default) or 2, and int8 — one subprocess builds TNet-B0 (the fMoW stage-2
architecture: 3 levels, [2, 1] locations) and the EN-B0 classifier (random
weights, seed 0), both from uint8 images to class probabilities, and times
them in turns at batch 1 and 8 (median ms per image). TNet's cost per level
comes from timing [] , [2] and [2, 1]; in TensorFlow a per-op profile says
where the time goes. ``--accuracy_run`` also evaluates a trained TNet of
the built-in benchmark in each runtime (the accuracy change where the
precision changes). The record (``benchmarks/runtimes.json``) is written
by ``benchmarks/record.py``: two consecutive runs on an idle machine.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import record  # noqa: E402

# name -> how: "tf" (intra, inter threads; fold; bf16) or "litert"
RUNTIMES = {
    "tf": {"kind": "tf"},
    "tf_1thread": {"kind": "tf", "threads": 1},
    "tf_bn_folded": {"kind": "tf", "fold": True},
    "tf_bf16": {"kind": "tf", "bf16": True},
    "litert_1thread": {"kind": "litert", "threads": 1},
    "litert": {"kind": "litert", "threads": 2},
    "litert_int8": {"kind": "litert", "threads": 2, "int8": True},
}
SIZE, LOCATIONS = 896, (2, 1)
FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_list("runtimes", list(RUNTIMES), "Runtimes to measure.")
  flags.DEFINE_integer("repeats", 7, "Timed rounds per case (median).")
  flags.DEFINE_integer("warmup", 2, "Untimed rounds first.")
  flags.DEFINE_string("accuracy_run", None,
                      "A trained run of the built-in benchmark (e.g. "
                      "runs/synthetic/tnet): its test accuracy per runtime.")
  record.define_flags("benchmarks/runtimes.json")
  flags.adopt_module_key_flags(record)  # listed by --help
  flags.DEFINE_string("child", None, "Internal: measure one runtime here.")


# ------------------------------------------------------------ in a child
def _configure(spec: dict) -> None:
  import tensorflow as tf
  if spec.get("bf16"):
    tf.config.optimizer.set_experimental_options(
        {"auto_mixed_precision_onednn_bfloat16": True})
  if spec.get("threads") and spec["kind"] == "tf":
    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])


def _models(spec: dict):
  """TNet-B0 (3 levels) and the EN-B0 task, random weights, seed 0."""
  import tensorflow as tf
  from tnet_tf.tools import compress
  from tnet_tf.training import tasks
  from tnet_tf.config import preset
  tf.random.set_seed(0)
  cfg = preset("fmow_stage2", input_size=None)
  tnet = tasks.create("tnet", cfg).network
  base = tasks.create("baseline", tasks.model_config_for("baseline", cfg))
  if spec.get("fold"):  # the same weights, BN folded into the convs
    tnet = compress.rewrite(tnet, lambda layer: layer,
                            backbone=compress.fold_batch_norms)
    folded = compress.fold_batch_norms(base.network)
    return tnet, lambda x: folded(tf.cast(x, tf.float32))["logits"]
  return tnet, lambda x: base(x, training=False)["logits"]


def _tf_callables(spec: dict) -> dict:
  import tensorflow as tf
  tnet, base = _models(spec)

  def tnet_at(locations):
    return tf.function(lambda x: tf.nn.softmax(
        tnet(x, training=False, locations=locations)["logits"]))
  calls = {f"tnet{list(l)}": tnet_at(l) for l in ((), (2,), LOCATIONS)}
  calls["base"] = tf.function(lambda x: tf.nn.softmax(base(x)))
  return calls


def _litert_callables(spec: dict) -> dict:
  import tensorflow as tf
  from ai_edge_litert import interpreter as litert
  from tnet_tf.inference import tflite
  tnet, base = _models(spec)
  rng = np.random.default_rng(1)
  calibration = [rng.integers(0, 256, (1, SIZE, SIZE, 3), np.uint8)
                 for _ in range(4)]
  quant = "int8" if spec.get("int8") else "float"
  representative = (tflite.representative_data(
      calibration, [LOCATIONS, (2,), ()], tnet.config.levels)
                    if quant == "int8" else None)
  run = tflite.Interpreter(tflite.convert(
      tnet, (SIZE, SIZE), 3, quantization=quant,
      representative=representative), num_threads=spec["threads"])
  fn = tf.function(lambda x: {"probabilities": tf.nn.softmax(base(x))},
                   input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3],
                                                  tf.uint8, name="images")])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [fn.get_concrete_function()])
  if quant == "int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in calibration)
  base_run = litert.Interpreter(model_content=converter.convert(),
                                num_threads=spec["threads"])
  shape = {}

  def base_call(x):
    index = base_run.get_input_details()[0]["index"]
    if shape.get("x") != x.shape:
      base_run.resize_tensor_input(index, x.shape)
      base_run.allocate_tensors()
      shape["x"] = x.shape
    base_run.set_tensor(index, x)
    base_run.invoke()
    return base_run.get_tensor(base_run.get_output_details()[0]["index"])

  # tensors out, as cost.time_interleaved fetches them
  calls = {f"tnet{list(l)}": (lambda x, l=l: tf.constant(run(x, list(l))))
           for l in ((), (2,), LOCATIONS)}
  calls["base"] = lambda x: tf.constant(base_call(x))
  return calls


def _op_profile(fn, images, top: int = 8) -> dict:
  """TensorFlow op types by their share of the CPU time of ``fn``."""
  import tensorflow as tf
  from tensorflow.python.profiler.internal import (
      _pywrap_profiler_plugin as plugin)
  logdir = tempfile.mkdtemp(prefix="tnet_profile_")
  tf.profiler.experimental.start(logdir)
  for _ in range(3):
    fn(images).numpy()
  tf.profiler.experimental.stop()
  paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"),
                    recursive=True)
  data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
  if not ok:
    return {}
  table = json.loads(data)[0]
  cols = [c["id"] for c in table["cols"]]
  totals = {}
  for row in table["rows"]:
    rec = dict(zip(cols, [c["v"] for c in row["c"]]))
    totals[rec["type"]] = totals.get(rec["type"], 0.0) + rec[
        "total_self_time"]
  idle = totals.pop("IDLE", 0.0)  # threads waiting: not an op
  busy = sum(totals.values())
  ops = [{"op": k, "ms_per_call": v / 1000 / 3, "share": v / busy}
         for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]
  return {"busy_thread_ms_per_call": busy / 1000 / 3,
          "idle_thread_ms_per_call": idle / 1000 / 3, "ops": ops}


def _accuracy(spec: dict, run_dir: str) -> dict:
  """Test accuracy of a trained built-in-benchmark TNet in this runtime,
  at the run's largest evaluated locations setting."""
  import tensorflow as tf
  from tnet_tf import data as data_lib
  from tnet_tf.tools import compress
  from tnet_tf.model import inputs
  from tnet_tf.training import runs
  from tnet_tf.inference import tflite
  loaded = runs.load(run_dir)
  exp = loaded.experiment
  tnet = loaded.task.network
  locations = max(exp.train.eval_locations or (exp.model.locations,),
                  key=inputs.total_locations)
  test = data_lib.build(exp.data.eval_split, exp.data).batch(100)
  if spec["kind"] == "tf":
    fn = tf.function(lambda x: tnet(x, training=False,
                                    locations=locations)["logits"])
    predict = lambda x: fn(x).numpy()
  else:
    quant = "int8" if spec.get("int8") else "float"
    rep = (tflite.representative_data(compress.first_images(
        exp.data, exp.data.train_split, 64), [locations], exp.model.levels)
           if quant == "int8" else None)
    run = tflite.Interpreter(tflite.convert(
        tnet, exp.model.input_size, data_lib.channels(exp.data),
        quantization=quant, representative=rep),
                             num_threads=spec["threads"])
    predict = lambda x: np.concatenate(
        [run(x[i:i + 1].numpy(), locations) for i in range(len(x))])
  hits = total = 0
  for images, labels in test:
    hits += int(np.sum(np.argmax(predict(images), -1) == labels.numpy()))
    total += len(labels)
  return {"accuracy": hits / total, "examples": total,
          "locations": list(locations)}


def child(name: str) -> None:
  from tnet_tf.model import cost
  spec = RUNTIMES[name]
  _configure(spec)
  calls = (_tf_callables(spec) if spec["kind"] == "tf" else
           _litert_callables(spec))
  rng = np.random.default_rng(0)
  out = {"runtime": name, **spec}
  for batch in (1, 8):
    images = rng.integers(0, 256, (batch, SIZE, SIZE, 3), np.uint8)
    names = list(calls) if batch == 1 else ["tnet[2, 1]", "base"]
    times = cost.time_interleaved(
        {n: (calls[n], images, batch) for n in names}, FLAGS.warmup,
        FLAGS.repeats)
    out[f"b{batch}"] = {n: float(np.median(t)) for n, t in times.items()}
  if name == "tf":
    import tensorflow as tf
    image = tf.constant(rng.integers(0, 256, (1, SIZE, SIZE, 3), np.uint8))
    out["op_profile_b1"] = {"tnet": _op_profile(calls["tnet[2, 1]"], image),
                            "base": _op_profile(calls["base"], image)}
  if FLAGS.accuracy_run:
    out["accuracy"] = _accuracy(spec, FLAGS.accuracy_run)
  print("RESULT" + json.dumps(out))


# ----------------------------------------------------------- the parent
def measure_all(runtimes: Sequence[str]) -> dict:
  """Every runtime, one subprocess each, one after the other."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  results = {}
  for name in runtimes:
    print(f"  {name} ...", flush=True)
    args = [sys.executable, "-m", "benchmarks.runtimes", f"--child={name}",
            f"--repeats={FLAGS.repeats}", f"--warmup={FLAGS.warmup}"]
    if FLAGS.accuracy_run:
      args.append(f"--accuracy_run={os.path.abspath(FLAGS.accuracy_run)}")
    proc = subprocess.run(args, cwd=repo, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or "RESULT" not in proc.stdout:
      raise RuntimeError(f"runtime {name} failed:\n{proc.stderr[-3000:]}")
    results[name] = json.loads(proc.stdout.split("RESULT", 1)[1])
  return summarise(results)


def summarise(results: dict) -> dict:
  """Per runtime: ms/image of both models at b1/b8, their ratios, TNet's
  cost per level, and 8 concurrent requests served one by one or batched."""
  out = {"runtimes": results}
  for name, r in results.items():
    b1, b8 = r["b1"], r["b8"]
    out[f"{name}_speedup_896_b1"] = b1["base"] / b1["tnet[2, 1]"]
    out[f"{name}_speedup_896"] = b8["base"] / b8["tnet[2, 1]"]
    if r["kind"] == "tf":  # a TFLite file runs every level always (a level
      # with 0 locations attends 1 cell weighted 0): no per-level cost there
      r["tnet_levels_ms_b1"] = {
          "level 1": b1["tnet[]"],
          "level 2 (+2 crops)": b1["tnet[2]"] - b1["tnet[]"],
          "level 3 (+2 crops)": b1["tnet[2, 1]"] - b1["tnet[2]"]}
    # 8 requests at once: one after the other (mean wait + own time) or
    # as one batch through the levels (each waits for the batch)
    r["eight_requests"] = {
        "one_by_one": {"mean_latency_ms": 4.5 * b1["tnet[2, 1]"],
                       "images_per_s": 1000 / b1["tnet[2, 1]"]},
        "batched": {"mean_latency_ms": 8 * b8["tnet[2, 1]"],
                    "images_per_s": 1000 / b8["tnet[2, 1]"]}}
  return out


def ratio_keys(runtimes: Sequence[str]) -> list[str]:
  return [f"{n}_{k}" for n in runtimes for k in ("speedup_896_b1",
                                                 "speedup_896")]


def format_table(record_: dict, runtimes: Sequence[str]) -> str:
  runs = record_["runs"]
  lines = [f"{'runtime':<16}{'TNet b1':>9}{'EN-B0 b1':>10}{'ratio':>7}"
           f"{'TNet b8':>9}{'EN-B0 b8':>10}{'ratio':>7}{'spread':>8}"
           f"{'acc %':>7}"]
  for name in runtimes:
    ms = lambda b, m: np.mean([r["runtimes"][name][b][m] for r in runs])
    spread = max(record_["spread"].get(k) or 0.0
                 for k in ratio_keys([name]))
    acc = runs[0]["runtimes"][name].get("accuracy", {}).get("accuracy")
    lines.append(
        f"{name:<16}{ms('b1', 'tnet[2, 1]'):9.1f}{ms('b1', 'base'):10.1f}"
        f"{record_[f'{name}_speedup_896_b1']:7.2f}"
        f"{ms('b8', 'tnet[2, 1]'):9.1f}{ms('b8', 'base'):10.1f}"
        f"{record_[f'{name}_speedup_896']:7.2f}{spread:8.1%}"
        f"{'' if acc is None else f'{100 * acc:7.1f}'}")
  return "\n".join(lines)


def main(argv):
  del argv
  if FLAGS.child:
    child(FLAGS.child)
    return
  unknown = [r for r in FLAGS.runtimes if r not in RUNTIMES]
  if unknown:
    raise app.UsageError(f"unknown --runtimes {unknown}; known: "
                         f"{list(RUNTIMES)}")
  status = record.guarded_by_flags(lambda: measure_all(FLAGS.runtimes),
                                   ratio_keys(FLAGS.runtimes))
  path = (FLAGS.out if status == 0 else
          os.path.splitext(FLAGS.out)[0] + ".disturbed.json")
  with open(path, encoding="utf-8") as f:
    print(format_table(json.load(f), FLAGS.runtimes))
  sys.exit(status)


if __name__ == "__main__":
  define_flags()
  app.run(main)
