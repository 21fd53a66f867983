"""ImageNet-2012 (paper Table 1): TNet on BagNet-77, and the BagNet-77
baseline. Recipes: experiments/imagenet/*.flags.

  python -m tnet_tf.experiments.imagenet \
      --flagfile=experiments/imagenet/tnet.flags --data_dir=TFDS_DIR
"""
from tnet_tf.cli import runner

DEFAULTS = {"dataset": "imagenet", "preset": "imagenet",
            "eval_split": "validation"}

if __name__ == "__main__":
  runner.run(DEFAULTS)
