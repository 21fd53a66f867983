"""Every recipe (flag file) of experiments/ runs on the fake datasets, so
none can rot: 2 training steps (or the evaluation it asks for), overriding
only where the data is, the step count, the batch size and the export.

A handful run in the default suite; the rest (the large backbones) are
``slow`` (``make test-all``). All are parsed in the default suite."""
import glob
import importlib
import json
import os
import re

from absl import flags
import pytest

from tnet_tf.cli import flags as experiment_flags
from tnet_tf.cli import runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
INCLUDES = {"common.flags", "baseline_common.flags"}
RECIPES = sorted(
    os.path.relpath(p, REPO)
    for p in glob.glob(os.path.join(REPO, "experiments", "*", "*.flags"))
    if os.path.basename(p) not in INCLUDES and "/birds/" not in p)
# one TNet recipe and an evaluation run in the default suite (≈ 30 s on 2
# cores); the EfficientNet recipes (fMoW ~35 s, birds ~50 s) run with the
# slow ones
FAST = {"experiments/imagenet/tnet.flags",
        "experiments/imagenet/tnet_eval.flags"}


def _parsed(recipe: str, workdir: str, data_dir: str, *extra: str,
            smoke: bool = True) -> flags.FlagValues:
  """The flags of ``recipe`` parsed as its entry point would (its
  defaults), inside ``workdir``, into fresh flag values; ``smoke`` adds the
  overrides of a 2-step run."""
  entry = importlib.import_module(
      f"tnet_tf.experiments.{recipe.split('/')[1]}")
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  for name, value in entry.DEFAULTS.items():
    fv.set_default(name, value)
  cwd = os.getcwd()
  os.chdir(workdir)
  try:
    overrides = ["--train_epochs=0", "--train_steps=2", "--batch_size=2",
                 "--eval_examples=2", "--backbone_weights=", "--noexport",
                 "--checkpoint_every=2", "--log_every=1"] if smoke else []
    fv(["recipe", f"--flagfile={recipe}", f"--data_dir={data_dir}",
        *overrides, *extra])
  finally:
    os.chdir(cwd)
  return fv


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


def _run(recipe: str, workdir) -> dict:
  """Runs ``recipe`` (after what it needs) and returns its summary."""
  before = _prerequisite(recipe)
  if before and not os.path.exists(os.path.join(
      workdir[0], _parsed(before, *workdir).run_dir, "summary.json")):
    _run(before, workdir)
  fv = _parsed(recipe, *workdir)
  cwd = os.getcwd()
  os.chdir(workdir[0])
  try:
    runner.main(["recipe"], fv)
  finally:
    os.chdir(cwd)
  name = ("summary.json" if fv.mode == "train" else
          f"eval_{fv.eval_split}.json")
  with open(os.path.join(workdir[0], fv.run_dir, name)) as fh:
    return json.load(fh)


def test_every_recipe_names_its_paper_result():
  assert len(RECIPES) >= 40
  for recipe in RECIPES:
    first = open(os.path.join(REPO, recipe)).readline()
    assert re.match(r"# (Table [12]|Fig\. 3|§5\.5)", first), recipe


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_parses_into_configs(recipe, workdir):
  fv = _parsed(recipe, *workdir)
  cwd = os.getcwd()
  os.chdir(workdir[0])
  try:
    experiment = experiment_flags.experiment_from_flags(fv)
  finally:
    os.chdir(cwd)
  assert experiment.train.train_steps == 2 and experiment.data.name in (
      "imagenet", "fmow", "fmow_crop", "cub", "nabirds")
  assert experiment.kind == ("baseline" if "/en_b" in recipe or
                             "bagnet77" in recipe else "tnet")


def _experiment(recipe, workdir, *extra, **kwargs):
  fv = _parsed(recipe, *workdir, *extra, **kwargs)
  cwd = os.getcwd()
  os.chdir(workdir[0])
  try:
    return experiment_flags.experiment_from_flags(fv)
  finally:
    os.chdir(cwd)


@pytest.mark.parametrize("recipe", [r for r in RECIPES
                                    if "/tnet" in r and "_eval" not in r])
def test_tnet_recipes_do_what_the_authors_code_did(recipe, workdir):
  """Selection, resampling, batch, the ×0.1 decay at 80% (ImageNet, fMoW)
  or 90% (birds) of the steps, NABirds' epochs and locations (the
  authors' */results_replication.txt and */train.py)."""
  exp = _experiment(recipe, workdir, smoke=False)
  model, train = exp.model, exp.train
  assert model.policy.selection == "greedy" and model.resampling == "authors"
  assert train.batch_size == 64 and train.lr_schedule == "step"
  # batch 1 on the small fake splits, for enough steps to see the fraction
  steps = _experiment(recipe, workdir, "--batch_size=1", smoke=False).train
  fraction = 0.9 if "/cub/" in recipe or "/nabirds/" in recipe else 0.8
  assert steps.train_steps >= 50
  assert steps.lr_decay_steps == (round(fraction * steps.train_steps),)
  birds = "/cub/" in recipe or "/nabirds/" in recipe
  if birds:
    assert exp.loss.l2 == 1e-4 and exp.loss.l2_rule == "authors"
    assert exp.loss.contrastive_diagonal
    assert exp.data.options["augmentation"] == "birds"
  else:
    assert exp.data.options["augmentation"] == "imagenet"
  if "/nabirds/" in recipe:
    variant = int(recipe[-7])
    assert model.locations == ((3,) if variant >= 3 else (5,))
    assert exp.loss.contrastive_weight == 50


def test_bagnet_baseline_decays_at_160_and_stops_at_175(workdir):
  exp = _experiment("experiments/imagenet/bagnet77.flags", workdir,
                    smoke=False)
  assert exp.kind == "baseline" and exp.train.batch_size == 64
  exp = _experiment("experiments/imagenet/bagnet77.flags", workdir,
                    "--batch_size=1", smoke=False)
  steps, (decay,) = exp.train.train_steps, exp.train.lr_decay_steps
  assert steps > 100 and decay / steps == pytest.approx(160 / 175)


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
