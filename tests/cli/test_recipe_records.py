"""Every recipe of experiments/ means what it meant before the
configuration was grouped: its record now holds, value for value, the
record the flat-config code wrote (``data/recipe_records.json``, made by
``data/make_recipe_records.py`` at commit 5ddfa56), each value at its new
place."""
import importlib.util
import json
import os

import pytest

import layouts
from tnet_tf.config import Experiment

DATA = os.path.join(os.path.dirname(__file__), "data")
_spec = importlib.util.spec_from_file_location(
    "make_recipe_records", os.path.join(DATA, "make_recipe_records.py"))
maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(maker)
with open(os.path.join(DATA, "recipe_records.json")) as _fh:
  GOLDEN = json.load(_fh)


@pytest.fixture(scope="module")
def data_dir(paper_datasets):
  return paper_datasets["imagenet"]["data_dir"]


def test_every_recipe_has_its_record():
  assert sorted(maker.cases()) == sorted(GOLDEN)
  assert len(maker.recipes()) >= 40


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_recipe_means_what_it_meant(key, data_dir):
  recipe, *extra = maker.cases()[key]
  new = maker.record(recipe, data_dir, *extra)
  old = GOLDEN[key]
  assert layouts.leaves(new) == layouts.at_new_places(old)
  assert set(new) == {"model_kind", "model", "data", "train", "loss",
                      "exploration", "runtime", "mode", "eval_examples",
                      "export"}
  # the flat record, read by this version, is the same experiment
  assert Experiment.from_record(old) == Experiment.from_record(new)
