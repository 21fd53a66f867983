"""The trainer in-process: callbacks, the precision policy, resume, the
run directory's record."""
import json
import os

import pytest
import tf_keras as keras

from tnet_tf.training import runs
from tnet_tf.training import callbacks
from tnet_tf.training import trainer
from tnet_tf.config import (DataConfig, Experiment, PolicyConfig,
                            RuntimeConfig, TrainConfig, preset)


def _experiment(mixed_precision: bool = False, **train) -> Experiment:
  defaults = dict(batch_size=4, train_steps=4, eval_locations=((), (2,)))
  defaults.update(train)
  return Experiment(model=preset("toy"),
                    data=DataConfig(name="toy", image_size=(64, 64),
                                    num_examples=16),
                    train=TrainConfig(**defaults),
                    runtime=RuntimeConfig(checkpoint_every=2, log_every=2,
                                          mixed_precision=mixed_precision),
                    eval_examples=8, export=False)


class _Recorder(callbacks.Callback):
  def __init__(self):
    self.events = []

  def on_train_begin(self, run):
    self.events.append(("begin", run.start_step))

  def on_step_begin(self, step, run):
    self.events.append(("step", step))

  def on_log(self, step, logs, run):
    self.events.append(("log", step, sorted(logs)[:2]))

  def on_evaluate(self, step, rows, run):
    self.events.append(("evaluate", step, [r["locations"] for r in rows]))

  def on_train_end(self, summary, run):
    self.events.append(("end", summary["step"]))


def test_callbacks_see_every_step_and_the_run_resumes(tmp_path):
  run_dir = str(tmp_path / "run")
  recorder = _Recorder()
  summary, task = trainer.train_and_evaluate(_experiment(), run_dir,
                                             [recorder])
  assert summary["step"] == 4 and task.levels == 2
  steps = [e[1] for e in recorder.events if e[0] == "step"]
  assert steps == [0, 1, 2, 3]
  assert [e[1] for e in recorder.events if e[0] == "log"] == [2, 4]
  assert ("evaluate", 4, [[], [2]]) in recorder.events
  assert recorder.events[0] == ("begin", 0)
  assert recorder.events[-1] == ("end", 4)
  # the record reads back as the same experiment
  assert runs.read_experiment(run_dir) == _experiment()
  # the same experiment with more steps resumes at step 4
  again = _Recorder()
  summary, _ = trainer.train_and_evaluate(_experiment(train_steps=6),
                                          run_dir, [again])
  assert again.events[0] == ("begin", 4)
  assert summary["step"] == 6 and summary["resumed_from"].endswith("ckpt-4")
  assert summary["train_seconds"] > 0


def test_precision_policy_is_restored_after_the_run(tmp_path):
  before = keras.mixed_precision.global_policy().name
  summary, task = trainer.train_and_evaluate(
      _experiment(mixed_precision=True, train_steps=2), str(tmp_path / "r"))
  assert task.network.feature_extraction.model.layers[1].compute_dtype == (
      "float16")
  assert keras.mixed_precision.global_policy().name == before == "float32"
  assert summary["step"] == 2


def test_eval_mode_needs_a_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="--mode=eval: no checkpoint"):
    trainer.train_and_evaluate(_experiment().replace(mode="eval"),
                               str(tmp_path / "empty"))
  run_dir = str(tmp_path / "run")
  trainer.train_and_evaluate(_experiment(train_steps=2), run_dir)
  summary, _ = trainer.train_and_evaluate(_experiment().replace(mode="eval"),
                                          run_dir)
  assert summary["step"] == 2
  assert os.path.exists(os.path.join(run_dir, "eval_validation.json"))
  with open(os.path.join(run_dir, "config.json")) as fh:
    assert json.load(fh)["train"]["train_steps"] == 2  # not rewritten


def test_the_monitor_checks_held_out_and_training_images_in_inference(
    tmp_path):
  """Every ``monitor_every`` steps the logs carry top-1 in inference mode
  on the first ``monitor_examples`` held-out and training images: the
  numbers ``evaluate`` gives for those images with the same weights."""
  from tnet_tf import data as data_lib
  from tnet_tf.training.evaluation import evaluate_at_locations
  recorder = _Recorder()
  logged = []

  class Logs(callbacks.Callback):
    def on_log(self, step, logs, run):
      logged.append((step, dict(logs)))

  experiment = _experiment(monitor_examples=6, monitor_every=2)
  _, task = trainer.train_and_evaluate(experiment, str(tmp_path / "run"),
                                       [recorder, Logs()])
  step, logs = logged[-1]
  assert step == 4
  for key, split in (("heldout_top1", "validation"),
                     ("train_images_top1", "train")):
    images = data_lib.build(split, experiment.data).take(6).batch(4)
    row = evaluate_at_locations(task, images, [task.default_locations])[0]
    assert row["examples"] == 6
    assert logs[key] == pytest.approx(row["top1"])
  quiet = []

  class Quiet(callbacks.Callback):
    def on_log(self, step, logs, run):
      quiet.append(logs)

  trainer.train_and_evaluate(_experiment(monitor_examples=0, train_steps=2),
                             str(tmp_path / "off"), [Quiet()])
  assert "heldout_top1" not in quiet[-1]


def test_a_run_directory_of_an_earlier_layout_is_checked_field_by_field(
    tmp_path):
  """A config.json of the flat layout resumes with the same architecture
  and names the field (at its new place) that another one changes."""
  experiment = _experiment()
  flat = experiment.to_record()
  flat["model"].update(flat["model"].pop("policy"))
  flat["train"].update(flat.pop("runtime"))
  flat["loss"].update(flat.pop("exploration"))
  with open(tmp_path / runs.CONFIG, "w") as fh:
    json.dump(flat, fh)
  trainer.check_run_dir(str(tmp_path), experiment)  # the same: no error
  other = experiment.replace(model=experiment.model.replace(
      policy=PolicyConfig(selection="sampling"), grid_size=2))
  with pytest.raises(ValueError, match=r"grid_size: 3 -> 2; "
                     r"policy.selection: 'greedy' -> 'sampling'"):
    trainer.check_run_dir(str(tmp_path), other)
