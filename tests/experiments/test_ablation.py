"""The variant tables' changes (tnet_tf.experiments.ablation)."""
from tnet_tf.config import Experiment, preset
from tnet_tf.experiments import ablation


def test_changes_merge_backbone_options_into_the_preset():
  exp = Experiment(model=preset("small_object"))
  out = ablation.apply(exp, ablation.NORMALISATION[
      "all together + batch renormalisation"])
  kwargs = out.model.backbone_kwargs
  assert kwargs["norm"] == "renorm"
  assert kwargs["widths"] == exp.model.backbone_kwargs["widths"]
  assert kwargs["f_stage"] == 2
  assert out.model.policy.location_scale == "learned"
  assert out.model.policy.location_gradient == "pathwise"
  assert out.exploration.scan_steps == 300
  assert out.loss.location_target == 1.0
  # the plain rows leave the preset alone
  same = ablation.apply(exp, ablation.NORMALISATION["the paper's rule"])
  assert same == exp
