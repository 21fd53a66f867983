"""A run directory without training: a record, one checkpoint of a freshly
built task, class names and its serving SavedModel."""
import os

import tensorflow as tf

from tnet_tf.inference import export
from tnet_tf.training import runs
from tnet_tf.training import tasks
from tnet_tf.config import DataConfig
from tnet_tf.config import Experiment
from tnet_tf.config import ModelConfig


def make_run(run_dir: str, names=("alpha", "beta", "gamma"), **model):
  """Writes the run; returns (task, saved_model path)."""
  base = dict(backbone="tiny_cnn", num_classes=len(names),
              base_resolution=32, grid_size=3, cell_fraction=0.5, levels=3,
              locations=(2, 1))
  base.update(model)
  experiment = Experiment(model=ModelConfig(**base),
                          data=DataConfig(name="toy"))
  tf.random.set_seed(3)
  task = tasks.create("tnet", experiment.model, experiment.loss)
  task(tf.zeros([1, 64, 64, 3], tf.uint8), training=False)
  runs.write_run(run_dir, experiment, task, names)
  saved = os.path.join(run_dir, "saved_model")
  export.export_saved_model(task, saved, list(names))
  return task, saved
