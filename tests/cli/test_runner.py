"""The experiment runner, driven as a user would: the command line."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

RUNNER = [sys.executable, "-m", "tnet_tf.cli.runner"]
FAST = ["--batch_size=8", "--num_examples=64", "--eval_examples=32",
        "--log_every=5", "--shuffle_buffer=64"]


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.update(extra)
  return env


def run(*args, timeout=600, env=None):
  return subprocess.run(RUNNER + list(args), capture_output=True, text=True,
                        timeout=timeout, env=env or _env())


def _summary(run_dir):
  with open(os.path.join(run_dir, "summary.json")) as fh:
    return json.load(fh)


def test_trains_evaluates_and_writes_everything(tmp_path):
  run_dir = str(tmp_path / "run")
  proc = run(f"--run_dir={run_dir}", "--train_steps=10",
             "--checkpoint_every=5", "--eval_locations=0;1;2,0",
             "--eval_thresholds=0,1.01",
             "--summaries=weights,gradients", *FAST)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = _summary(run_dir)
  assert summary["step"] == 10
  assert [r["locations"] for r in summary["eval"]] == [[], [1], [2]]
  # adaptive attention: threshold 0 reads nothing past level 1 (the
  # locations=0 row), above 1 every cell (the trained locations' row)
  k = summary["config"]["model"]["locations"][0]
  fixed = {tuple(r["locations"]): r for r in summary["eval"]}
  never, always = summary["eval_adaptive"]
  assert (never["threshold"], never["mean_locations"]) == (0.0, 0.0)
  assert abs(never["top1"] - fixed[()]["top1"]) < 1e-6
  assert (always["max_locations"], always["mean_locations"]) == (k, k)
  if (k,) in fixed:
    assert abs(always["loss"] - fixed[(k,)]["loss"]) < 1e-4
  assert summary["versions"]["tensorflow"] == tf.__version__
  assert summary["config"]["model"]["backbone"] == "tiny_cnn"
  for key in ("loss", "ce", "seq_reinforce", "perfeature_ce",
              "perfeature_reinforce", "top1", "top5", "reward", "baseline",
              "locations", "entropy"):
    assert key in summary["train_metrics"], key
  assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == [
      "checkpoint", "ckpt-10.data-00000-of-00001", "ckpt-10.index",
      "ckpt-5.data-00000-of-00001", "ckpt-5.index"]
  tags = set()
  for name in os.listdir(os.path.join(run_dir, "train")):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(run_dir, "train", name)):
      tags.update(v.tag for v in event.summary.value)
  assert {"loss", "reward", "baseline", "entropy", "learning_rate"} <= tags
  assert any(t.startswith("weights/") for t in tags)
  assert any(t.startswith("gradients/") for t in tags)
  assert "locations=[1] top1=" in proc.stdout


@pytest.mark.slow  # ~35 s: the default suite's 10-minute budget
def test_resumes_after_sigkill(tmp_path):
  """Killed after a checkpoint, the same command resumes at the saved step
  with the saved baseline and optimiser state and ends at the step count."""
  run_dir = str(tmp_path / "run")
  args = [f"--run_dir={run_dir}", "--train_steps=150",
          "--checkpoint_every=10", *FAST]
  proc = subprocess.Popen(RUNNER + args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=_env())
  ckpt_dir = os.path.join(run_dir, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline:
    if tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else 0:
      break
    if proc.poll() is not None:
      pytest.fail("the run ended before its first checkpoint")
    time.sleep(0.05)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  saved = tf.train.latest_checkpoint(ckpt_dir)
  saved_step = int(saved.rsplit("-", 1)[1])
  assert 10 <= saved_step < 150
  reader = tf.train.load_checkpoint(saved)
  names = reader.get_variable_to_shape_map()
  baseline_key = [n for n in names if "reinforce_baseline" in n]
  assert len(baseline_key) == 1
  saved_baseline = float(reader.get_tensor(baseline_key[0]))
  assert saved_baseline != 0.5  # it moved during training
  opt_keys = [n for n in names if n.startswith(("optimizer/_variables/",
                                                 "optimizer/_iterations/"))]
  saved_checksum = sum(float(np.abs(reader.get_tensor(n).astype(np.float64)
                                    ).sum()) for n in opt_keys)

  again = run(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  with open(os.path.join(run_dir, "resume_log.jsonl")) as fh:
    entry = json.loads(fh.readline())
  assert entry["step"] == saved_step
  assert entry["optimizer_iterations"] == saved_step
  assert entry["baseline"] == pytest.approx(saved_baseline, abs=1e-7)
  assert entry["optimizer_checksum"] == pytest.approx(saved_checksum,
                                                      rel=1e-6)
  summary = _summary(run_dir)
  assert summary["step"] == 150
  assert summary["resumed_from"].endswith(f"ckpt-{saved_step}")


@pytest.mark.slow  # ~30-45 s: the default suite's 10-minute budget
def test_learns_beyond_chance(tmp_path):
  """The toy texture task (4 classes) is solved only by looking closer."""
  run_dir = str(tmp_path / "run")
  proc = run(f"--run_dir={run_dir}", "--train_steps=500",
             "--checkpoint_every=500", "--log_every=50", "--batch_size=32",
             "--eval_locations=0;3", "--eval_examples=256")
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = _summary(run_dir)
  by_locs = {len(r["locations"]) and r["locations"][0]: r
             for r in summary["eval"]}
  assert by_locs[3]["top1"] > 0.25 + 0.35, summary["eval"]
  assert by_locs[3]["top1"] > by_locs[0]["top1"] + 0.2, summary["eval"]
  assert by_locs[3]["loss"] < by_locs[0]["loss"] - 0.5, summary["eval"]
  train = summary["train_metrics"]
  assert train["ce"] < np.log(4) - 0.5 and train["reward"] > 0.6, train


def test_baseline_on_the_same_path(tmp_path):
  run_dir = str(tmp_path / "run")
  proc = run(f"--run_dir={run_dir}", "--model=baseline", "--train_steps=6",
             "--checkpoint_every=3", "--l2=1e-4", *FAST)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = _summary(run_dir)
  assert summary["step"] == 6 and summary["eval"][0]["locations"] == []
  assert {"loss", "top1", "top5"} <= set(summary["train_metrics"])
  assert os.path.exists(os.path.join(run_dir, "checkpoints", "ckpt-6.index"))


@pytest.mark.parametrize("args,message", [
    (["--strategy=gpu_cluster"], "strategy"),
    (["--dataset=imagenet22k"], "--dataset='imagenet22k' is unknown"),
    (["--eval_locations=1;x"], "'x' is not a comma list"),
    (["--eval_thresholds=0.9,high"], "'high' is not a number"),
    (["--model=baseline", "--eval_thresholds=0.9"], "two-level TNet"),
    (["--locations=2,1"], "one count per level"),
    (["--locations=12"], "locations for level 2 must be in [0, 9]"),
    (["--summaries=activations"], "summaries must be among"),
    (["--lr_schedule=step"], "needs lr_decay_steps"),
    (["--num_dropout_layers=2"], "backbone 'tiny_cnn' does not take"),
    (["--backbone=resnet"], "unknown backbone 'resnet'"),
])
def test_bad_flags_are_clear_errors(tmp_path, args, message):
  proc = run(f"--run_dir={tmp_path}", "--train_steps=1", *args, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow  # ~30-45 s: the default suite's 10-minute budget
def test_other_architecture_in_run_dir_is_refused(tmp_path):
  run_dir = str(tmp_path / "run")
  assert run(f"--run_dir={run_dir}", "--train_steps=2",
             "--checkpoint_every=2", *FAST).returncode == 0
  proc = run(f"--run_dir={run_dir}", "--train_steps=4", "--grid_size=2",
             "--cell_fraction=0.5", *FAST)
  assert proc.returncode != 0
  assert "holds a run of a different architecture" in proc.stderr
  assert "grid_size: 3 -> 2" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow  # ~30-45 s: the default suite's 10-minute budget
def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
  first = str(tmp_path / "a")
  assert run(f"--run_dir={first}", "--train_steps=2", "--checkpoint_every=2",
             *FAST).returncode == 0
  proc = run(f"--run_dir={tmp_path / 'b'}", "--train_steps=2",
             "--feature_weighting",
             f"--init_checkpoint={first}/checkpoints/ckpt-2", *FAST)
  assert proc.returncode != 0
  assert "does not match this model" in proc.stderr
  assert "Traceback" not in proc.stderr
  # the same architecture starts from it
  ok = run(f"--run_dir={tmp_path / 'c'}", "--train_steps=2",
           f"--init_checkpoint={first}/checkpoints/ckpt-2", *FAST)
  assert ok.returncode == 0, ok.stderr[-2000:]


def test_pretrained_backbone_file_that_does_not_match(tmp_path):
  import tf_keras as keras
  path = str(tmp_path / "other.h5")
  inp = keras.Input((32, 32, 3))
  keras.Model(inp, keras.layers.Conv2D(3, 5)(inp)).save_weights(path)
  proc = run(f"--run_dir={tmp_path / 'r'}", "--train_steps=1",
             f"--backbone_weights={path}", *FAST)
  assert proc.returncode != 0
  assert "do not match the layers" in proc.stderr
  assert "Traceback" not in proc.stderr
  missing = run(f"--run_dir={tmp_path / 'r2'}", "--train_steps=1",
                f"--backbone_weights={tmp_path / 'nope.h5'}", *FAST)
  assert "weights file not found" in missing.stderr


@pytest.mark.slow  # ~30-45 s: the default suite's 10-minute budget
def test_mixed_precision_two_learning_rates_and_xla(tmp_path):
  proc = run(f"--run_dir={tmp_path / 'mp'}", "--train_steps=3",
             "--mixed_precision", "--backbone_learning_rate=1e-4",
             "--lr_schedule=cosine", "--optimizer=adamw",
             "--weight_decay=1e-4", "--contrastive_weight=1", "--l2=1e-4",
             "--num_samples=2", *FAST)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert np.isfinite(_summary(str(tmp_path / "mp"))["train_metrics"]["loss"])
  proc = run(f"--run_dir={tmp_path / 'xla'}", "--train_steps=2",
             "--jit_compile", *FAST)
  assert proc.returncode == 0, proc.stderr[-3000:]


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


@pytest.mark.slow  # ~35 s: the default suite's 10-minute budget
def test_multi_worker_on_localhost(tmp_path):
  """Two worker processes (TF_CONFIG, MultiWorkerMirroredStrategy) end with
  identical weights and baseline."""
  ports = _free_ports(2)
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  run_dir = str(tmp_path / "run")
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        RUNNER + [f"--run_dir={run_dir}", "--strategy=multi_worker",
                  "--train_steps=6", "--checkpoint_every=3",
                  "--selection=greedy", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(TF_CONFIG=tf_config)))
  for proc in procs:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
  chief = _summary(run_dir)
  with open(os.path.join(run_dir, "summary_worker1.json")) as fh:
    worker = json.load(fh)
  assert chief["num_replicas"] == 2 and chief["step"] == 6
  assert chief["weights_sha256"] == worker["weights_sha256"]
  assert chief["baseline"] == worker["baseline"]
  assert not os.path.exists(os.path.join(run_dir, ".worker_1"))
