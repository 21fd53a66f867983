"""One training step of the authors' TNet and of tnet-tf, term by term.

What it measures: for each paper experiment (ImageNet, fMoW stages 1 and
2, CUB with EfficientNet-B0) the learning rule of the authors' own ``train.py``
(github.com/Tpap/TNet) is run on one small batch, and tnet-tf's training
step is run on the same batch with the same weights; every term of the
loss, the rewards, the baseline's new value, the log-probabilities of the
attended cells and the gradients of the total loss are written side by side.

How:
  * Same weights. As ``fidelity/authors_code.py`` does: their TNet (built by
    their trainer from their replication flags, see below) has its variables
    randomised (``authors_code.randomise``), is saved as their ``train.py``
    saves it and
    converted by ``tnet_tf.training.authors.convert`` into a run directory,
    which ``tnet_tf.training.runs.load`` opens. The run's experiment is our
    recipe (``experiments/<dataset>/*.flags`` parsed by
    ``tnet_tf.cli.flags``), so its ``LossConfig`` is the recipe's.
  * Nothing random. Dropout, spatial dropout and stochastic depth are off on
    both sides (their constructor gets keep_prob 1 / dropout 0 / block drop 0,
    our model config the same). Both sides select cells by top-k in training
    (theirs always does; our recipes set ``--selection=greedy``), so the same
    cells are attended: the log-probabilities of the attended cells are
    compared per image and level (sorted: their order is the cells' index
    order, ours the top-k order).
  * Their side is driven, not re-derived: their ``train.py`` is imported with
    their replication command (``*/results_replication.txt``) in
    ``sys.argv``, changed only where it must be: one replica holding the
    whole batch (``--num_gpus 1``: their loss is a per-replica mean scaled by
    1/num_gpus, so this is the same rule), dropout flags off, no checkpoint
    to restore, scratch directories. Their ``distributedTrainer.__init__``
    builds the model, optimisers and the variables each optimiser updates
    (their CUB split into two) with only their input function replaced by a
    batch of zeros (their TFRecords are not here) and ``tf.keras``'s Adam
    standing for the TF 2.3 ``OptimizerV2`` one their ``__init__`` expects.
    Their ``train_step`` (the ``tf.function`` training runs) gives the
    total loss (its ``train_loss`` metric), the gradients (returned under
    ``--keep_grads_summary``, which their command sets) and the new
    ``baseline_var``. Each term alone comes from their ``compute_total_loss``
    (and ``contrastive_loss``) on their model's training-mode outputs with
    the weight flags changed (perFReg_ce_weight=1, reinfornce_reg_w=0 leaves
    the final cross-entropy alone; the REINFORCE terms and the L2 are
    differences of two calls, so they carry the float32 rounding of the
    larger total), the baseline reset before every call; the rewards'
    means come from the baseline's move under perFReg_reinf_weight 1 and 0.
  * Our side is driven the same way: ``TNetClassifier.training_forward`` and
    ``objective`` under a tape (what ``train_step`` runs) for the terms and
    gradients, then ``train_step`` itself (Adam of learning rate 0) for the
    total the step reports and the baseline after it.
  * Labels are chosen so that every reward case occurs: image 0's label is
    the class its final prediction gives (R = 1), image 1's that of its first
    attended feature (a per-feature reward of 1), the others at random.
  * Gradients are matched variable by variable through
    ``authors.authors_names`` (each of our variables and the authors' names
    it is made of) and reported per group: location module, backbone,
    positional encoding, classifier, feature weighting.

  python fidelity/learning_rule.py --mirror=/work/.mirror/Tpap+TNet/repo \
      [--cases=imagenet,fmow_stage1,fmow_stage2,cub] [--batch=3] \
      [--num_samples=1] [--out=fidelity/learning_rule.json]

Each case runs in a process of its own (memory). ``--num_samples=M`` runs
both sides with M Monte-Carlo samples (the recipes use 1).

Nothing of the authors' enters the repository: their files are extracted to
a temporary folder and imported from there.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import authors_code  # noqa: E402  (fidelity/authors_code.py: ours)

from tnet_tf.cli import flags as tnet_flags  # noqa: E402
from tnet_tf.config import Experiment, preset  # noqa: E402
from tnet_tf.model.outputs import TNetOutput  # noqa: E402
from tnet_tf.training import authors, runs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Case:
  folder: str        # their experiment folder
  module: str        # their model module
  input_module: str  # their input module (imported by their train.py)
  save_tag: str      # which replication command of theirs
  recipe: str        # our recipe's flag file
  preset: str
  size: tuple        # image size
  off: tuple         # their flags that turn the stochastic parts off


CASES = {
    "imagenet": Case(
        "ImageNet", "models", "input_imagenet", "TNet_ImageNet",
        "experiments/imagenet/tnet.flags", "imagenet", (224, 224),
        ("--keep_prob", "1.0")),
    "fmow_stage1": Case(
        "fMoW", "models_fMoW", "input_fMoW", "TNet_fMoW_448",
        "experiments/fmow/tnet_stage1.flags", "fmow", (448, 448),
        ("--dropout_rate", "0.0", "--block_drop_rate", "0.0")),
    "fmow_stage2": Case(
        "fMoW", "models_fMoW", "input_fMoW", "TNet_fMoW",
        "experiments/fmow/tnet_stage2.flags", "fmow_stage2", (896, 896),
        ("--dropout_rate", "0.0", "--block_drop_rate", "0.0")),
    "cub": Case(
        "CUB", "models_cub", "input_cub", "TNet-B0_cub",
        "experiments/cub/tnet_b0.flags", "cub", (448, 448),
        ("--dropout_rate", "0.0", "--block_drop_rate", "0.0")),
}


# ------------------------------------------------------------------ theirs
def their_command(root: str, case: Case) -> list[str]:
  """The arguments of their replication command for ``case.save_tag``."""
  path = os.path.join(root, case.folder, "results_replication.txt")
  with open(path) as fh:
    for line in fh:
      if line.startswith("python train.py --to_train") and (
          f"'{case.save_tag}'" in line):
        return shlex.split(line)[2:]
  raise ValueError(f"no training command for {case.save_tag} in {path}")


def set_flag(argv: list[str], name: str, values: tuple) -> list[str]:
  """``argv`` with ``name`` given ``values`` (replacing its old values)."""
  out, skip = [], False
  for a in argv:
    if skip and not a.startswith("--"):
      continue
    skip = a == name
    if not skip:
      out.append(a)
  return out + [name, *values]


def import_theirs(root: str, case: Case, argv: list[str]):
  """Their train.py, imported with ``argv`` as its command line. The CUB
  input module imports tensorflow_addons for its augmentation, which no
  step here runs: an empty module stands in for it when it is absent."""
  path = os.path.join(root, case.folder)
  for name in ("train", case.module, case.input_module):
    sys.modules.pop(name, None)
  try:
    importlib.import_module("tensorflow_addons")
  except ImportError:
    sys.modules["tensorflow_addons"] = types.ModuleType("tensorflow_addons")
  saved = sys.argv
  sys.argv = ["train.py"] + argv
  sys.path.insert(0, path)
  try:
    return importlib.import_module("train")
  finally:
    sys.path.remove(path)
    sys.argv = saved


def their_trainer(train, batch: int, h: int, w: int):
  """Their ``distributedTrainer``, made by its own ``__init__`` (model,
  optimisers, the variables each updates, metrics) after their
  ``set_up_dirs``; only their input function is replaced, by one batch of
  zeros (their TFRecords are not here). Their ``tf.keras.optimizers.Adam``
  is, while it runs, the ``OptimizerV2`` Adam of the TF 2.3 they used
  (``tf.keras.optimizers.legacy.Adam`` now): their ``__init__`` reads
  ``optimizer.lr.boundaries``, which only that one has."""
  def input_fn(*args, **kwargs):
    del args, kwargs
    return tf.data.Dataset.from_tensors(
        (tf.zeros([batch, h, w, 3]), tf.zeros([batch, 1]))).repeat()
  train.tf_input.input_fn = input_fn
  optimizers = tf.keras.optimizers
  adam = optimizers.Adam
  optimizers.Adam = optimizers.legacy.Adam
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      train.set_up_dirs()
      return train.distributedTrainer()
  finally:
    optimizers.Adam = adam


def their_loss(train, trainer, out, labels, b0, **weights) -> tuple:
  """Their ``compute_total_loss`` on the outputs ``out`` with the flags
  ``weights`` changed (their L2 off unless ``l2_reg`` is given); returns
  (loss, baseline after) and restores both the flags and the baseline."""
  flags_ = train.FLAGS
  if hasattr(flags_, "l2_reg"):
    weights.setdefault("l2_reg", 0.0)
  old = {k: getattr(flags_, k) for k in weights}
  for k, v in weights.items():
    setattr(flags_, k, v)
  trainer.model.baseline_var.assign(b0)
  try:
    loss = trainer.compute_total_loss(out[0], labels, out[2], out[3], out[4])
    return float(loss), float(trainer.model.baseline_var.numpy())
  finally:
    for k, v in old.items():
      setattr(flags_, k, v)
    trainer.model.baseline_var.assign(b0)


# -------------------------------------------------------------------- ours
def our_experiment(case: Case) -> Experiment:
  """Our recipe, with the preset's classes and the stochastic parts off."""
  fv = absl_flags.FlagValues()
  tnet_flags.define_flags(fv)
  cwd = os.getcwd()
  os.chdir(REPO)  # flag files name each other from the repository's root
  try:
    # the dataset only sizes the schedule here; a recipe naming a prepared
    # one (CUB) would need its files
    fv(["learning_rule", f"--flagfile={case.recipe}", "--dataset=toy"])
    experiment = tnet_flags.experiment_from_flags(fv)
  finally:
    os.chdir(cwd)
  model = experiment.model
  kwargs = dict(model.backbone_kwargs)
  if "dropout_keep" in kwargs:
    kwargs["dropout_keep"] = 1.0
  if "block_drop_rate" in kwargs:
    kwargs["block_drop_rate"] = 0.0
  base = preset(case.preset)
  model = model.replace(num_classes=base.num_classes, dropout=0.0,
                        backbone_kwargs=kwargs)
  return dataclasses.replace(experiment, model=model)


# -------------------------------------------------------------- comparison
def group_of(name: str) -> str:
  if name.startswith("location_prediction"):
    return "location_module"
  if name.startswith("feature_extraction/logits_layer"):
    return "classifier"
  if name.startswith("feature_posBurn"):
    return "positional"
  if name.startswith("feat_weighting"):
    return "feature_weighting"
  if name.startswith("feature_extraction"):
    return "backbone"
  return "other"


def compare_gradients(task, backbone, their_grads: dict, our_grads: dict):
  groups: dict = {}
  places = authors.authors_names(task, backbone)
  named = {n for place in places for n in place.names}
  unmatched = sorted(set(their_grads) - named)
  if unmatched:
    groups["their_gradients_with_no_variable_of_ours"] = unmatched
  for place in places:
    if not place.variable.trainable:
      continue
    arrays = [their_grads.get(n) for n in place.names]
    if any(a is None for a in arrays):
      continue
    theirs = np.asarray(place.combine(arrays), np.float64)
    ours = our_grads.get(id(place.variable))
    ours = (np.zeros_like(theirs) if ours is None
            else np.asarray(ours, np.float64))
    g = groups.setdefault(group_of(place.names[0]), {
        "variables": 0, "max_abs_diff": 0.0, "max_abs_theirs": 0.0,
        "sq_diff": 0.0, "sq_theirs": 0.0, "sq_ours": 0.0, "dot": 0.0})
    d = theirs - ours
    g["variables"] += 1
    g["max_abs_diff"] = max(g["max_abs_diff"], float(np.abs(d).max()))
    g["max_abs_theirs"] = max(g["max_abs_theirs"],
                              float(np.abs(theirs).max()))
    g["sq_diff"] += float((d ** 2).sum())
    g["sq_theirs"] += float((theirs ** 2).sum())
    g["sq_ours"] += float((ours ** 2).sum())
    g["dot"] += float((theirs * ours).sum())
  out = {}
  for name, g in groups.items():
    if isinstance(g, list):
      out[name] = g
      continue
    nt, no = g["sq_theirs"] ** 0.5, g["sq_ours"] ** 0.5
    out[name] = {
        "variables": g["variables"],
        "max_abs_diff": g["max_abs_diff"],
        "max_abs_theirs": g["max_abs_theirs"],
        "max_relative": g["max_abs_diff"] / max(g["max_abs_theirs"], 1e-30),
        "norm_theirs": nt, "norm_ours": no,
        "norm_relative_diff": g["sq_diff"] ** 0.5 / max(nt, 1e-30),
        "cosine": g["dot"] / max(nt * no, 1e-30)}
  return out


def term(theirs: float, ours: float) -> dict:
  return {"theirs": theirs, "ours": ours, "abs_diff": abs(theirs - ours)}


def make_images(rng, batch: int, h: int, w: int) -> np.ndarray:
  """Smooth noise (neighbouring pixels related), as authors_code uses."""
  images = rng.integers(0, 256, [batch, h, w, 3]).astype(np.uint8)
  return tf.cast(tf.clip_by_value(tf.image.resize(
      tf.image.resize(tf.cast(images, tf.float32), [h // 8, w // 8]),
      [h, w]) * 1.6 - 76, 0, 255), tf.uint8).numpy()


def run_case(name: str, case: Case, root: str, work: str, batch: int,
             samples: int = 1) -> dict:
  started = time.time()
  rng = np.random.default_rng(0)
  tf.random.set_seed(0)
  h, w = case.size
  argv = their_command(root, case)
  argv = [a for a in argv if a != "--keep_activations_summary"]
  for flag, value in (("--batch_size", str(batch)), ("--num_gpus", "1"),
                      ("--num_samples", str(samples)),
                      ("--restore_dir", "No_ckpt"),
                      ("--data_dir", os.path.join(work, name, "data")),
                      ("--ckpt_dir", os.path.join(work, name, "their_run")),
                      ("--summaries_dir", os.path.join(work, name, "summ")),
                      *zip(case.off[::2], case.off[1::2])):
    argv = set_flag(argv, flag, (value,))
  train = import_theirs(root, case, argv)
  F = train.FLAGS
  module = train.tf_models

  # their trainer and TNet, the TNet randomised and saved as theirs saves
  trainer = their_trainer(train, batch, h, w)
  net = trainer.model
  authors_code.randomise(net, rng)
  optimizer = tf.keras.optimizers.Adam(1e-4)
  optimizer.apply_gradients(zip([tf.zeros_like(v) for v in
                                 net.trainable_variables],
                                net.trainable_variables))
  saved = net.variables + [optimizer.iterations]
  checkpoint = tf.train.Checkpoint(optimizer=optimizer, **{
      module.adjust_var_name(v.name, net.name): v for v in saved})
  prefix = checkpoint.save(os.path.join(work, name, "theirs", "ckpt"))

  # ours: the recipe's experiment holding the same weights
  experiment = our_experiment(case)
  experiment = dataclasses.replace(experiment, loss=dataclasses.replace(
      experiment.loss, num_samples=samples))
  run_dir = os.path.join(work, name, "ours")
  authors.convert(experiment, prefix, run_dir)
  task = runs.load(run_dir).task
  cfg = task.loss_config
  two = experiment.train.backbone_learning_rate is not None
  task.compile(optimizer=keras.optimizers.Adam(0.0),
               backbone_optimizer=keras.optimizers.Adam(0.0) if two else None)
  b0 = float(net.baseline_var.numpy())
  assert abs(float(task.reward_baseline.numpy()) - b0) < 1e-7

  # the batch: labels chosen so that every reward case occurs
  images = make_images(rng, batch, h, w)
  x = (tf.image.convert_image_dtype(tf.constant(images), tf.float32) - 0.5) * 2
  probe = net(x, is_training=True, adv_eval_data=False, step=None,
              keep_step_summary=False)
  labels = rng.integers(0, experiment.model.num_classes, batch)
  labels[0] = int(np.argmax(probe[0][0]))
  if batch > 1:
    # their level-2 feature vectors are image-major: image 1's first is
    # row loc_per_grid[0]
    k1 = int(round(F.loc_per_grid[0]))
    labels[1] = int(np.argmax(probe[3][1][k1]))
  labels = labels.astype(np.int64)
  their_labels = tf.constant(labels[:, None], tf.float32)

  # ---- theirs: the terms, from compute_total_loss with weights changed
  # (M Monte-Carlo samples: the batch tiled M times, as their train_step
  # and ours do before the forward pass)
  out = net(tf.tile(x, [samples, 1, 1, 1]), is_training=True,
            adv_eval_data=False, step=None, keep_step_summary=False)
  lab = tf.tile(tf.squeeze(their_labels, 1), [samples])
  lc, lr, lf = F.perFReg_ce_weight, F.perFReg_reinf_weight, F.reinfornce_reg_w
  l2 = getattr(F, "l2_reg", 0.0)
  total_t, b1_t = their_loss(train, trainer, out, lab, b0, **(
      {"l2_reg": l2} if l2 else {}))
  no_l2, _ = their_loss(train, trainer, out, lab, b0)
  ce_only, _ = their_loss(train, trainer, out, lab, b0, perFReg_ce_weight=1.0,
                          reinfornce_reg_w=0.0)
  pfce_only, _ = their_loss(train, trainer, out, lab, b0,
                            perFReg_ce_weight=0.0, reinfornce_reg_w=0.0)
  seq_plus, b_r1 = their_loss(train, trainer, out, lab, b0,
                              perFReg_ce_weight=1.0, reinfornce_reg_w=1.0,
                              perFReg_reinf_weight=1.0)
  pfrl_plus, b_r0 = their_loss(train, trainer, out, lab, b0,
                               perFReg_ce_weight=1.0, reinfornce_reg_w=1.0,
                               perFReg_reinf_weight=0.0)
  contrastive = (float(trainer.contrastive_loss(out[5], lab))
                 if getattr(F, "contrastive_loss", False) else 0.0)
  decay = train.BL_DECAY
  theirs = {
      "total": total_t + contrastive,
      "ce": lc * ce_only,
      "perfeature_ce": (1 - lc) * pfce_only,
      "seq_reinforce": lf * lr * (seq_plus - ce_only),
      "perfeature_reinforce": lf * (1 - lr) * (pfrl_plus - ce_only),
      "l2": total_t - no_l2,
      "contrastive": contrastive,
      "mean_reward": (b_r1 - decay * b0) / (1 - decay),
      "mean_feature_reward": (b_r0 - decay * b0) / (1 - decay),
      "baseline_after": b1_t}
  their_logp = out[2].numpy()[:, 0]
  their_feature_logp = [p.numpy()[:, 0] for p in out[4]]

  # ---- ours: the step's pieces under a tape (what train_step runs)
  variables = [v for _, group in task.optimizer_groups() for v in group]
  with tf.GradientTape() as tape:
    record = task.training_forward(tf.constant(
        np.concatenate([images] * samples)))
    total_o, terms = task.objective(record, tf.constant(
        np.concatenate([labels] * samples)), training=True)
  our_g = tape.gradient(total_o, variables)
  our_grads = {id(v): (None if g is None else g.numpy())
               for v, g in zip(variables, our_g)}
  mean = lambda t: float(tf.reduce_mean(t))
  mask = terms["attended_mask"].numpy()
  fr = terms["feature_reward"].numpy()
  ours = {
      "total": float(total_o),
      "ce": cfg.lambda_c * mean(terms["ce"]),
      "perfeature_ce": (1 - cfg.lambda_c) * mean(terms["perfeature_ce"]),
      "seq_reinforce": cfg.lambda_f * cfg.lambda_r * mean(
          terms["seq_reinforce"]),
      "perfeature_reinforce": cfg.lambda_f * (1 - cfg.lambda_r) * mean(
          terms["perfeature_reinforce"]),
      "l2": cfg.l2 * float(terms["l2"]),
      "contrastive": cfg.contrastive_weight * float(terms["contrastive"]),
      "mean_reward": mean(terms["reward"]),
      "mean_feature_reward": float((fr * mask).sum() / max(
          mask.sum() * fr.shape[0], 1))}

  # ---- both: the training step itself (theirs moves its weights: last)
  net.baseline_var.assign(b0)
  grads = trainer.train_step((x, their_labels), trainer.global_step, True)
  theirs["total_reported_by_train_step"] = float(trainer.train_loss.result())
  theirs["baseline_after_train_step"] = float(net.baseline_var.numpy())
  updated = list(trainer.trainable_variables) + list(
      getattr(trainer, "trainable_variables2", []) if getattr(
          F, "two_oprimizers", False) else [])
  their_grads, none_theirs = {}, []
  for v, g in zip(updated, grads):
    key = module.adjust_var_name(v.name, net.name)
    if g is None:
      none_theirs.append(key)
    else:
      their_grads[key] = g.numpy()
  metrics = task.train_step((tf.constant(images), tf.constant(labels)))
  ours["total_reported_by_train_step"] = float(metrics["loss"])
  ours["baseline_after"] = float(task.reward_baseline.numpy())
  ours["baseline_after_train_step"] = ours["baseline_after"]

  # log-probabilities of the attended cells

  rec = TNetOutput.of(record)
  our_logp = rec.location_log_probs.numpy()  # [B, N-1], level order
  levels = rec.levels.numpy()[1:]
  if samples > 1:  # the first sample's
    their_logp = their_logp[:batch]
    their_feature_logp = [p.reshape(samples, -1)[0] for p in
                          their_feature_logp]
    our_logp = our_logp[:batch]
  logp_rows = {"sum_per_image": {
      "theirs": their_logp.tolist(), "ours": our_logp.sum(1).tolist(),
      "max_abs_diff": float(np.abs(their_logp - our_logp.sum(1)).max())}}
  for i, lvl in enumerate(sorted(set(levels.tolist()))):
    t = np.sort(their_feature_logp[i].reshape(batch, -1), axis=1)
    o = np.sort(our_logp[:, levels == lvl], axis=1)
    logp_rows[f"level_{lvl}_sorted"] = {
        "theirs": t.tolist(), "ours": o.tolist(),
        "max_abs_diff": float(np.abs(t - o).max())}

  # the same predictions?
  out_logits = out[0].numpy()
  rows = {k: term(theirs[k], ours[k]) for k in (
      "total", "ce", "perfeature_ce", "seq_reinforce", "perfeature_reinforce",
      "l2", "contrastive", "mean_reward", "mean_feature_reward",
      "baseline_after", "total_reported_by_train_step",
      "baseline_after_train_step")}
  return {
      "case": name, "their_files": [f"{case.folder}/train.py",
                                    f"{case.folder}/{case.module}.py"],
      "their_flags": argv, "our_recipe": case.recipe,
      "our_loss_config": dataclasses.asdict(cfg),
      "our_exploration": dataclasses.asdict(experiment.exploration),
      "image": list(case.size), "batch": batch, "num_samples": samples,
      "labels": labels.tolist(),
      "baseline_before": b0,
      "their_weights": {"lambda_c": lc, "lambda_r": lr, "lambda_f": lf,
                        "perFReg_cap": getattr(F, "perFReg_cap", None),
                        "l2_reg": l2, "bl_decay": decay},
      "terms": rows,
      "final_logits_max_abs_diff": float(np.abs(
          out_logits - rec.logits.numpy()).max()),
      "final_logits_scale": float(np.abs(out_logits).max()),
      "location_log_probs": logp_rows,
      "gradients": compare_gradients(task, experiment.model.backbone,
                                     their_grads, our_grads),
      "their_variables_updated": len(updated),
      "our_variables_updated": len(variables),
      "their_variables_without_gradient": none_theirs,
      "our_variables_without_gradient": [
          v.name for v, g in zip(variables, our_g) if g is None],
      "seconds": round(time.time() - started, 1)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mirror", required=True)
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--batch", type=int, default=3)
  parser.add_argument("--num_samples", type=int, default=1,
                      help="Monte-Carlo samples M on both sides (the "
                      "recipes: 1)")
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  names = args.cases.split(",")
  rows = []
  with tempfile.TemporaryDirectory() as root, \
      tempfile.TemporaryDirectory() as work:
    commit = authors_code.extract(args.mirror, root)
    if len(names) > 1:
      # one process a case: two TNets of 896² images and their gradients
      # are what the machine's memory holds at once
      for name in names:
        out = os.path.join(work, f"{name}.json")
        subprocess.run([sys.executable, os.path.abspath(__file__),
                        f"--mirror={args.mirror}", f"--cases={name}",
                        f"--batch={args.batch}",
                        f"--num_samples={args.num_samples}", f"--out={out}"],
                       check=True)
        with open(out) as fh:
          rows += json.load(fh)["rows"]
    else:
      row = run_case(names[0], CASES[names[0]], root, work, args.batch,
                     args.num_samples)
      print(json.dumps({k: row[k] for k in ("case", "terms", "gradients")},
                       indent=1), flush=True)
      rows.append(row)
  record = {"command": "python fidelity/learning_rule.py --mirror=MIRROR "
                       f"--cases={args.cases} --batch={args.batch} "
                       f"--num_samples={args.num_samples}",
            "authors_commit": commit, "tensorflow": tf.__version__,
            "rows": rows}
  if args.out:
    with open(args.out, "w") as fh:
      json.dump(record, fh, indent=1)


if __name__ == "__main__":
  main()
