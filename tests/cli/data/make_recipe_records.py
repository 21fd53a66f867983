"""Writes ``recipe_records.json``: the Experiment record every recipe
(flag file) of experiments/ parses into, on the fake paper datasets of the
tests (their sizes decide the class counts and the epoch-counted steps).

  python tests/cli/data/make_recipe_records.py [OUT]

The stored file was written by the code of commit 5ddfa56, before the
configuration was grouped; ``tests/cli/test_recipe_records.py`` checks that
the recipes still mean the same, value by value at the values' new places.
The dataset directory (a temporary one) is written as ``<data_dir>``.
"""
import glob
import importlib
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from absl import flags  # noqa: E402

INCLUDES = {"common.flags", "baseline_common.flags"}
DATA_DIR = "<data_dir>"
# each recipe is also parsed with these extra flags (a key is the recipe and
# its extra flags, space-separated): batch 1 makes the epoch-counted steps
# and decay boundaries large enough to compare; the last list moves a field
# of every group away from its recipe value
EXTRA = {"*": [["--batch_size=1"]],
         "experiments/fmow/tnet_stage1.flags": [[
             "--seed=3", "--num_classes=7", "--input_size=480",
             "--selection=sampling", "--location_scale=learned",
             "--overlap_suppression", "--location_gradient=pathwise",
             "--resampling=antialias", "--random_steps=5",
             "--anneal_steps=6", "--scan_steps=2", "--reward=probability",
             "--location_baseline=image", "--location_target=0.5",
             "--strategy=mirrored", "--mixed_precision", "--jit_compile",
             "--deterministic", "--summaries=weights", "--keep_checkpoints=2",
             "--eval_every=7", "--monitor_examples=4", "--monitor_every=3",
             "--eval_thresholds=0.5,0.9", "--backbone_weights=imagenet",
             "--block_drop_rate=0.1", "--val_fraction=0.2",
             "--dataset=folder", "--train_epochs=0", "--train_steps=40",
             "--lr_decay_steps=30", "--lr_decay_fractions=",
             "--shuffle_buffer=9", "--num_examples=5", "--export=false",
             "--mode=eval", "--eval_examples=3"]]}


def recipes() -> list[str]:
  """The runnable flag files (the shared ones are read through them)."""
  return sorted(
      os.path.relpath(p, REPO)
      for p in glob.glob(os.path.join(REPO, "experiments", "*", "*.flags"))
      if os.path.basename(p) not in INCLUDES and "/birds/" not in p)


def record(recipe: str, data_dir: str, *extra: str) -> dict:
  """The record of ``recipe`` as its entry point parses it (its module's
  defaults), with the dataset directory ``data_dir`` written as
  ``<data_dir>``."""
  from tnet_tf.cli import flags as experiment_flags
  entry = importlib.import_module(
      f"tnet_tf.experiments.{recipe.split('/')[1]}")
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  for name, value in entry.DEFAULTS.items():
    fv.set_default(name, value)
  cwd = os.getcwd()
  os.chdir(REPO)
  try:
    fv(["recipe", f"--flagfile={recipe}", f"--data_dir={data_dir}", *extra])
    out = experiment_flags.experiment_from_flags(fv).to_record()
  finally:
    os.chdir(cwd)
  text = json.dumps(out).replace(json.dumps(data_dir), json.dumps(DATA_DIR))
  return json.loads(text)


def cases() -> dict[str, tuple[str, ...]]:
  """{key: (recipe, *extra flags)} of every record."""
  out = {}
  for recipe in recipes():
    out[recipe] = (recipe,)
    for extra in EXTRA["*"] + EXTRA.get(recipe, []):
      out[" ".join([recipe, *extra])] = (recipe, *extra)
  return out


def main(argv):
  out = argv[1] if len(argv) > 1 else os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "recipe_records.json")
  import fakes
  with tempfile.TemporaryDirectory() as root:
    data_dir = fakes.prepare_all(root)["imagenet"]["data_dir"]
    records = {key: record(case[0], data_dir, *case[1:])
               for key, case in cases().items()}
  with open(out, "w") as fh:  # one record per line: a diff names the recipe
    fh.write("{\n" + ",\n".join(
        f"{json.dumps(key)}: {json.dumps(records[key], sort_keys=True)}"
        for key in sorted(records)) + "\n}\n")
  print(f"{len(records)} records -> {out}")


if __name__ == "__main__":
  main(sys.argv)
