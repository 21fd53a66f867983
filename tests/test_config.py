"""Configs: the Experiment record that every run directory holds."""
import json
import os

import numpy as np
import pytest

from tnet_tf.training import tasks
import layouts
from tnet_tf.config import (DataConfig, Experiment, ExplorationConfig,
                            LossConfig, PolicyConfig, RuntimeConfig,
                            TrainConfig, preset)

FLAT_RECORD = os.path.join(os.path.dirname(__file__), "cli", "data",
                           "flat_config.json")


def _experiment() -> Experiment:
  return Experiment(
      model=preset("synthetic", locations=(3,),
                   policy=PolicyConfig(location_scale="learned")),
      data=DataConfig(name="megapixel_digits", image_size=(256, 256),
                      resize_to=(32, 32), options={"digit_size": 32,
                                                   "texture": None}),
      train=TrainConfig(eval_locations=((), (1,), (3,)), lr_schedule="step",
                        lr_decay_steps=(80,)),
      runtime=RuntimeConfig(summaries=("weights",)),
      exploration=ExplorationConfig(scan_steps=5),
      loss=LossConfig(lambda_f=0.5, perfreg_cap=2), kind="tnet",
      mode="train", eval_examples=7, export=False)


def test_record_round_trip_through_json():
  experiment = _experiment()
  record = json.loads(json.dumps(experiment.to_record()))
  again = Experiment.from_record(record)
  assert again == experiment
  assert again.model.backbone_kwargs == {"widths": (16, 32, 48, 64),
                                         "norm": "renorm"}
  assert again.train.eval_locations == ((), (1,), (3,))


def test_record_gives_the_same_architecture(rng):
  experiment = _experiment()
  again = Experiment.from_record(json.loads(json.dumps(
      experiment.to_record())))
  a = tasks.create(experiment.kind, experiment.model)
  b = tasks.create(again.kind, again.model)
  assert [v.shape for v in a.weights] == [v.shape for v in b.weights]
  assert [v.name for v in a.weights] == [v.name for v in b.weights]
  b.set_weights(a.get_weights())
  images = rng.integers(0, 256, (2, 256, 256, 1)).astype(np.uint8)
  np.testing.assert_allclose(b(images)["logits"], a(images)["logits"],
                             atol=1e-6)


def test_old_records_and_bad_values():
  # a record of an earlier version: unknown fields are dropped
  record = _experiment().to_record()
  record["train"]["run_dir"] = "runs/old"
  assert Experiment.from_record(record) == _experiment()
  with pytest.raises(ValueError, match="no 'model' entry"):
    Experiment.from_record({"train": {}})
  with pytest.raises(ValueError, match="kind must be one of"):
    _experiment().replace(kind="cnn")
  with pytest.raises(ValueError, match="mode must be one of"):
    _experiment().replace(mode="serve")


def test_a_decay_without_the_step_schedule_is_refused():
  """A decay the constant schedule would ignore (--lr_decay_fractions
  alone once trained the whole run at the first rate) is an error."""
  with pytest.raises(ValueError, match="lr_schedule='step' only"):
    TrainConfig(lr_decay_steps=(640,))
  with pytest.raises(ValueError, match="needs lr_decay_steps"):
    TrainConfig(lr_schedule="step")
  assert TrainConfig(lr_schedule="step",
                     lr_decay_steps=(640,)).lr_decay_steps == (640,)


def test_the_small_cnn_norm_is_written_into_the_record():
  """The small CNN's normalisation is part of every record, so a default
  that changes (batch norm → batch renormalisation, issue 24) does not
  change what an earlier run directory rebuilds."""
  from tnet_tf.config import ModelConfig
  new = ModelConfig(backbone="tiny_cnn", num_classes=3)
  assert new.backbone_kwargs["norm"] == "renorm"
  assert ModelConfig(backbone="tiny_cnn", num_classes=3, backbone_kwargs={
      "norm": "batch"}).backbone_kwargs["norm"] == "batch"
  exp = Experiment(model=new)
  record = json.loads(json.dumps(exp.to_record()))
  assert Experiment.from_record(record).model.backbone_kwargs["norm"] == (
      "renorm")
  del record["model"]["backbone_kwargs"]["norm"]  # written before issue 24
  assert Experiment.from_record(record).model.backbone_kwargs["norm"] == (
      "batch")
  record["model"]["backbone_kwargs"]["batch_norm"] = False
  assert Experiment.from_record(record).model.backbone_kwargs["norm"] == (
      "none")


def test_records_are_grouped():
  record = _experiment().to_record()
  assert record["model"]["policy"]["location_scale"] == "learned"
  assert record["exploration"] == {"random_steps": 0, "anneal_steps": 0,
                                   "scan_steps": 5}
  assert record["runtime"]["summaries"] == ["weights"]
  assert "summaries" not in record["train"]
  assert "scan_steps" not in record["loss"]
  assert "selection" not in record["model"]


def test_a_flat_record_of_an_earlier_version_loads_to_the_same_values():
  """A config.json written before the configuration was grouped (a
  megapixel-digits run): every value it holds is read, at its new place;
  the one it held that is no longer a field (``loss.train_locations``)
  and the duplicate ``train.backbone_weights`` are dropped."""
  with open(FLAT_RECORD) as fh:
    flat = json.load(fh)
  assert "policy" not in flat["model"] and "runtime" not in flat
  experiment = Experiment.from_record(flat)
  new = experiment.to_record()
  old = layouts.at_new_places(flat)
  dropped = {("loss", "train_locations")}
  assert set(old) - set(layouts.leaves(new)) == dropped
  assert {p: v for p, v in old.items() if p not in dropped} == (
      layouts.leaves(new))
  assert experiment.model.policy.selection == flat["model"]["selection"]
  assert experiment.runtime.checkpoint_every == (
      flat["train"]["checkpoint_every"])
  assert experiment.exploration.scan_steps == flat["loss"]["scan_steps"]
  # written again in the grouped layout, it reads back the same
  assert Experiment.from_record(json.loads(json.dumps(new))) == experiment


def test_a_record_with_both_layouts_keeps_the_grouped_value():
  record = _experiment().to_record()
  record["model"]["selection"] = "sampling"  # stale flat copy
  assert Experiment.from_record(record) == _experiment()
