"""NABirds (paper Fig. 3): TNet-B0…B4 with feature weighting on
ImageNet-pre-trained EfficientNets, and the EN-B0…B4 baselines at 448².
Recipes: experiments/nabirds/*.flags.

  python -m tnet_tf.experiments.nabirds \
      --flagfile=experiments/nabirds/tnet_b0.flags --data_dir=TFDS_DIR
"""
from tnet_tf.cli import runner

DEFAULTS = {"dataset": "nabirds", "preset": "nabirds", "eval_split": "test"}

if __name__ == "__main__":
  runner.run(DEFAULTS)
