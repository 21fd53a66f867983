"""TNet finds one small object that the downscaled view cannot read."""
import dataclasses

from absl import flags
import pytest

from tnet_tf import data as data_lib
from tnet_tf.data import small_object as so
from tnet_tf.experiments import ablation
from tnet_tf.cli import flags as experiment_flags
from tnet_tf.experiments import small_object
from tnet_tf.training import tasks
from tnet_tf.training import trainer

# the attention policy the test trains (tnet_tf.experiments.ablation):
# 86.8% at 3 locations on 500 test canvases, localisation 5.2x chance,
# 85-129 s of training on 2 cores in two runs (normalisation.json);
# the paper's rule reaches 72.8%. The 90% is not reached yet.
POLICY = "all together + batch renormalisation"
ACCURACY_AT_3 = 0.80


def _experiment(tmp_path):
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  small_object.define_flags(fv)
  for name, value in small_object.DEFAULTS.items():
    fv.set_default(name, value)
  fv(["test", f"--run_dir={tmp_path}", "--test_examples=300",
      f"--data_dir={tmp_path / 'cache'}"])
  exp = experiment_flags.experiment_from_flags(fv)
  data = dataclasses.replace(exp.data, options={
      "num_classes": exp.model.num_classes, "num_lines": fv.num_lines,
      "train_examples": fv.train_examples, "test_examples": 300})
  return exp.replace(data=data, export=False), data_lib.small_object_config(
      data)


@pytest.mark.slow
def test_attention_finds_the_object_the_downscaled_view_misses(tmp_path):
  exp, cfg = _experiment(tmp_path)
  boxed = lambda n: so.dataset("test", cfg, with_boxes=True).batch(n)
  tnet = ablation.apply(exp, ablation.NORMALISATION[POLICY])
  result = ablation.measure(tnet, str(tmp_path / "tnet"), boxed)
  assert result["accuracy"]["3"] >= ACCURACY_AT_3
  loc = result["localization"]
  assert loc["rate"] >= 3 * loc["chance"]
  # the same backbone on the canvas downscaled to r: at chance
  r = exp.model.base_resolution
  down = exp.replace(kind="baseline", model=tasks.model_config_for(
      "baseline", exp.model, input_size=(r, r)), data=dataclasses.replace(
          exp.data, resize_to=(r, r)))
  summary, _ = trainer.train_and_evaluate(down, str(tmp_path / "down"))
  assert summary["eval"][0]["top1"] <= 0.6
