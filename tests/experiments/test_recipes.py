"""Every recipe (flag file) of experiments/ runs on the fake datasets, so
none can rot: 2 training steps (or the evaluation it asks for), overriding
only where the data is, the step count, the batch size and the export.

A handful run in the default suite; the rest (the large backbones) are
``slow`` (``make test-all``). All are parsed in the default suite."""
import contextlib
import glob
import importlib
import json
import os
import re

from absl import flags
import pytest

from tnet_tf.experiments import runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
FLAGS = flags.FLAGS
INCLUDES = {"common.flags", "baseline_common.flags"}
RECIPES = sorted(
    os.path.relpath(p, REPO)
    for p in glob.glob(os.path.join(REPO, "experiments", "*", "*.flags"))
    if os.path.basename(p) not in INCLUDES and "/birds/" not in p)
# one TNet per backbone family and an evaluation run (≈ 1.5 min on 2
# cores; the birds' TNet-B0, ~50 s, runs with the slow ones)
FAST = {"experiments/imagenet/tnet.flags",
        "experiments/imagenet/tnet_eval.flags",
        "experiments/fmow/tnet_stage1.flags"}
_DEFAULTS = {}


def _entry(recipe: str):
  return importlib.import_module(
      f"tnet_tf.experiments.{recipe.split('/')[1]}")


@contextlib.contextmanager
def _flags(recipe: str, workdir: str, data_dir: str, *extra: str):
  """Parses ``recipe`` as its entry point would, inside ``workdir``."""
  entry = _entry(recipe)
  if not _DEFAULTS:
    _DEFAULTS.update({name: FLAGS[name].default for name in FLAGS})
  FLAGS.unparse_flags()
  for name, value in _DEFAULTS.items():
    FLAGS.set_default(name, value)
  for name, value in entry.DEFAULTS.items():
    FLAGS.set_default(name, value)
  cwd = os.getcwd()
  os.chdir(workdir)
  try:
    FLAGS(["recipe", f"--flagfile={recipe}", f"--data_dir={data_dir}",
           "--train_epochs=0", "--train_steps=2", "--batch_size=2",
           "--eval_examples=2", "--backbone_weights=", "--noexport",
           "--checkpoint_every=2", "--log_every=1", *extra])
    yield
  finally:
    os.chdir(cwd)
    FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, paper_datasets):
  root = tmp_path_factory.mktemp("recipes")
  os.symlink(os.path.join(REPO, "experiments"), root / "experiments")
  return str(root), paper_datasets["imagenet"]["data_dir"]


def _prerequisite(recipe: str):
  if recipe.endswith("_eval.flags"):
    return recipe.replace("_eval.flags", ".flags")
  text = open(os.path.join(REPO, recipe)).read()
  match = re.search(r"--init_checkpoint=runs/(\w+)/(\w+)", text)
  if match:
    return f"experiments/{match.group(1)}/{match.group(2)}.flags"
  return None


def _run_dir(recipe: str, workdir: str) -> str:
  with _flags(recipe, workdir[0], workdir[1]):
    return os.path.join(workdir[0], FLAGS.run_dir)


def _run(recipe: str, workdir) -> dict:
  """Runs ``recipe`` (after what it needs) and returns its summary."""
  before = _prerequisite(recipe)
  if before and not os.path.exists(
      os.path.join(_run_dir(before, workdir), "summary.json")):
    _run(before, workdir)
  with _flags(recipe, *workdir):
    mode, split = FLAGS.mode, FLAGS.eval_split
    runner.main(["recipe"])
    run_dir = FLAGS.run_dir
  name = "summary.json" if mode == "train" else f"eval_{split}.json"
  with open(os.path.join(workdir[0], run_dir, name)) as fh:
    return json.load(fh)


def test_every_recipe_names_its_paper_result():
  assert len(RECIPES) >= 40
  for recipe in RECIPES:
    first = open(os.path.join(REPO, recipe)).readline()
    assert re.match(r"# (Table [12]|Fig\. 3|§5\.5)", first), recipe


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_parses_into_configs(recipe, workdir):
  with _flags(recipe, *workdir):
    model_cfg, loss_cfg, train_cfg, data_cfg, kind = (
        runner.configs_from_flags())
  assert train_cfg.train_steps == 2 and data_cfg.name in (
      "imagenet", "fmow", "fmow_crop", "cub", "nabirds")
  assert kind == ("baseline" if "/en_b" in recipe or "bagnet77" in recipe
                  else "tnet")


def _check(recipe: str, summary: dict) -> None:
  settings = summary["config"]["train"]["eval_locations"]
  assert len(summary["eval"]) == max(1, len(settings))
  for row in summary["eval"]:
    assert 0.0 <= row["top1"] <= 1.0 and row["loss"] > 0
  if "_eval" not in recipe:
    assert summary["step"] == 2


@pytest.mark.parametrize("recipe", [
    r if r in FAST else pytest.param(r, marks=pytest.mark.slow)
    for r in RECIPES])
def test_recipe_runs_two_steps(recipe, workdir):
  _check(recipe, _run(recipe, workdir))
