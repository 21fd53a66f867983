"""The command line made from the configuration: one flag per field, its
help and default the field's, every field reachable by its flag."""

from absl import flags
import pytest

from tnet_tf.cli import flags as experiment_flags
from tnet_tf.config import DataConfig, Experiment, preset

# a value for every field's flag, and where it must land: three sets, each
# a valid experiment (adaptive thresholds need a two-level TNet without
# feature weighting; a baseline has one level)
FIRST = {
    "backbone": ("tiny_cnn", "tiny_cnn"),
    "backbone_kwargs": ('{"widths": [8, 16]}', {"widths": (8, 16),
                                                "norm": "renorm"}),
    "num_classes": ("3", 3),
    "base_resolution": ("16", 16),
    "grid_size": ("4", 4),
    "cell_fraction": ("0.3", 0.3),
    "levels": ("3", 3),
    "locations": ("3,1", (3, 1)),
    "location_variant": ("conv", "conv"),
    "location_hidden_dim": ("8", 8),
    "positional_variant": ("sine", "sine"),
    "initializers": ("efficientnet", "efficientnet"),
    "feature_weighting": ("true", True),
    "dropout": ("0.2", 0.2),
    "resampling": ("antialias", "antialias"),
    "input_size": ("96,128", (96, 128)),
    "allow_upsampling": ("true", True),
    "check_numerics": ("true", True),
    "selection": ("sampling", "sampling"),
    "location_scale": ("learned", "learned"),
    "location_gradient": ("pathwise", "pathwise"),
    "overlap_suppression": ("true", True),
    "dataset": ("megapixel_digits", "megapixel_digits"),
    "data_dir": ("/data", "/data"),
    "image_size": ("48", (48, 48)),
    "num_examples": ("7", 7),
    "train_split": ("a", "a"),
    "eval_split": ("b", "b"),
    "shuffle_buffer": ("5", 5),
    "data_seed": ("9", 9),
    "resize_to": ("32,24", (32, 24)),
    "data_options": ('{"digit_size": 8}', {"digit_size": 8}),
    "batch_size": ("3", 3),
    "train_steps": ("50", 50),
    "eval_every": ("5", 5),
    "monitor_examples": ("2", 2),
    "monitor_every": ("4", 4),
    "eval_locations": ("0;2;2,0;3,1", ((), (2,), (2,), (3, 1))),
    "optimizer": ("adamw", "adamw"),
    "learning_rate": ("0.01", 0.01),
    "backbone_learning_rate": ("0.001", 0.001),
    "weight_decay": ("0.1", 0.1),
    "lr_schedule": ("step", "step"),
    "lr_decay_steps": ("30,40", (30, 40)),
    "lr_decay_factor": ("0.5", 0.5),
    "warmup_steps": ("2", 2),
    "seed": ("4", 4),
    "init_checkpoint": ("/ckpt", "/ckpt"),
    "lambda_c": ("0.5", 0.5),
    "lambda_r": ("0.4", 0.4),
    "lambda_f": ("0.2", 0.2),
    "perfreg_cap": ("1", 1),
    "num_samples": ("2", 2),
    "baseline_decay": ("0.8", 0.8),
    "contrastive_weight": ("1", 1.0),
    "contrastive_margin": ("0.3", 0.3),
    "contrastive_diagonal": ("false", False),
    "l2": ("0.01", 0.01),
    "l2_rule": ("kernels", "kernels"),
    "reward": ("probability", "probability"),
    "location_baseline": ("image", "image"),
    "location_target": ("0.5", 0.5),
    "location_target_temperature": ("0.5", 0.5),
    "random_steps": ("1", 1),
    "anneal_steps": ("2", 2),
    "scan_steps": ("3", 3),
    "strategy": ("mirrored", "mirrored"),
    "tpu": ("grpc://t", "grpc://t"),
    "mixed_precision": ("true", True),
    "jit_compile": ("true", True),
    "deterministic": ("true", True),
    "checkpoint_every": ("6", 6),
    "keep_checkpoints": ("1", 1),
    "log_every": ("2", 2),
    "summaries": ("gradients", ("gradients",)),
    "mode": ("eval", "eval"),
    "eval_examples": ("3", 3),
    "export": ("false", False),
}
SECOND = {"eval_thresholds": ("0.5,0.9", (0.5, 0.9))}
THIRD = {"model": ("baseline", "baseline")}


def _parse(*args: str, defaults: dict = None) -> Experiment:
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  for name, value in (defaults or {}).items():
    fv.set_default(name, value)
  fv(["test", *args])
  return experiment_flags.experiment_from_flags(fv)


def _at(experiment: Experiment, path: tuple):
  value = experiment
  for name in path:
    value = getattr(value, name)
  return value


def test_one_flag_per_field_with_the_fields_help():
  leaves = experiment_flags.leaves()
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  names = [leaf.flag for leaf in leaves]
  assert len(names) == len(set(names)) == len({**FIRST, **SECOND, **THIRD})
  assert set(names) == set(FIRST) | set(SECOND) | set(THIRD)
  for leaf in leaves:
    assert leaf.field.metadata["help"], leaf.path
    assert leaf.field.metadata["help"] in fv[leaf.flag].help
  assert ("model", "policy", "selection") in [l.path for l in leaves]
  assert ("exploration", "scan_steps") in [l.path for l in leaves]
  assert ("runtime", "strategy") in [l.path for l in leaves]


@pytest.mark.parametrize("values", [FIRST, SECOND, THIRD])
def test_every_field_is_reached_by_its_flag(values):
  exp = _parse(*(f"--{name}={text}" for name, (text, _) in values.items()))
  paths = {leaf.flag: leaf.path for leaf in experiment_flags.leaves()}
  for name, (_, expected) in values.items():
    assert _at(exp, paths[name]) == expected, name
  if values is THIRD:  # a baseline: one level, nothing to attend
    assert exp.model.levels == 1 and exp.model.locations == ()


def test_unset_flags_are_the_dataclasses_defaults():
  """Defaults are written once, in the dataclasses: the command line
  without flags is the toy preset (its dataset's 4 classes) and every
  other group at its defaults."""
  exp = _parse()
  assert exp == Experiment(model=preset("toy", num_classes=4),
                           data=DataConfig(image_size=(64, 64)))
  fv = flags.FlagValues()
  experiment_flags.define_flags(fv)
  assert fv["lambda_f"].default == 0.1 and fv["lambda_f"].value == 0.1
  assert fv["selection"].default is None  # the preset's


def test_the_command_line_derives_three_fields():
  exp = _parse("--seed=5", "--input_size=96")
  assert exp.data.seed == 5 and exp.train.seed == 5
  assert exp.model.input_size == (96, 96) and exp.data.image_size == (96, 96)
  assert _parse("--seed=5", "--data_seed=2").data.seed == 2
  # the entry points' defaults count as set
  exp = _parse(defaults={"selection": "sampling", "lambda_f": 0.5,
                         "eval_locations": "0;1"})
  assert exp.model.policy.selection == "sampling"
  assert exp.loss.lambda_f == 0.5
  assert exp.train.eval_locations == ((), (1,))


def test_backbone_options_by_name_and_by_json():
  exp = _parse("--preset=fmow", "--block_drop_rate=0.1",
               "--backbone_weights=imagenet", "--num_classes=3")
  assert exp.model.backbone_kwargs == {"block_drop_rate": 0.1,
                                       "weights": "imagenet"}
  exp = _parse("--backbone_kwargs={\"depth\": 2}", "--backbone_norm=batch")
  assert exp.model.backbone_kwargs == {"depth": 2, "norm": "batch"}


@pytest.mark.parametrize("args,message", [
    (["--eval_locations=1;x"], "--eval_locations: 'x' is not a comma list"),
    (["--eval_thresholds=0.9,high"], "--eval_thresholds: 'high' is not a "
                                     "number"),
    (["--eval_thresholds=-1"], "eval_thresholds must be >= 0"),
    (["--lr_decay_steps=a"], "--lr_decay_steps: 'a' is not an integer"),
    (["--backbone_kwargs=[1]"], "--backbone_kwargs: '[1]' is not a JSON "
                                "object"),
    (["--dataset=imagenet22k"], "--dataset='imagenet22k' is unknown"),
    (["--val_fraction=0.2"], "--val_fraction applies to --dataset=folder"),
    (["--lr_decay_steps=5", "--lr_decay_fractions=0.5"], "give one of"),
])
def test_bad_values_name_the_flag(args, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[")
                     .replace("(", r"\(")):
    _parse(*args)
