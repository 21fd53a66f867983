"""fMoW-rgb (paper Table 2): TNet on EfficientNet-B0 in two stages (448²,
then 896²), and the EN-B0 baselines (224², 448², 896², box crops). Recipes:
experiments/fmow/*.flags.

  python -m tnet_tf.experiments.fmow \
      --flagfile=experiments/fmow/tnet_stage1.flags --data_dir=TFDS_DIR
"""
from tnet_tf.cli import runner

DEFAULTS = {"dataset": "fmow", "preset": "fmow", "eval_split": "test"}

if __name__ == "__main__":
  runner.run(DEFAULTS)
