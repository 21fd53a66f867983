"""MirroredStrategy over 2 logical CPUs computes what one device computes."""
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_keras as keras
    from tnet_tf.training import losses
    from tnet_tf.training import tasks
    from tnet_tf.config import ModelConfig

    cfg = ModelConfig(backbone="tiny_cnn", backbone_kwargs={"batch_norm": False},
                      num_classes=4, base_resolution=32, grid_size=3,
                      cell_fraction=0.5, levels=3, locations=(2, 1),
                      policy={"selection": "greedy"})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 64, 64, 3)).astype(np.uint8)
    labels = rng.integers(0, 4, 8).astype(np.int32)
    keras.utils.set_random_seed(0)
    weights = tasks.create("tnet", cfg).get_weights()

    def one_step(strategy):
        with strategy.scope():
            model = tasks.create("tnet", cfg, losses.LossConfig(lambda_f=1.0))
            model.set_weights(weights)
            model.compile(keras.optimizers.SGD(0.5))
        ds = tf.data.Dataset.from_tensors((images, labels))
        logs = model.make_train_function()(
            iter(strategy.experimental_distribute_dataset(ds)))
        baseline = tf.convert_to_tensor(model.reward_baseline)
        return {"loss": float(logs["loss"]), "baseline": float(baseline),
                "replicas": strategy.num_replicas_in_sync,
                "weights": [w.tolist() for w in model.get_weights()[:4]]}

    out = {"default": one_step(tf.distribute.get_strategy()),
           "mirrored": one_step(tf.distribute.MirroredStrategy(
               ["/cpu:0", "/cpu:1"]))}
    print("RESULT" + json.dumps(out))
''')


def test_mirrored_loss_equals_default():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                        text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  default, mirrored = out["default"], out["mirrored"]
  assert mirrored["replicas"] == 2 and default["replicas"] == 1
  assert abs(default["loss"] - mirrored["loss"]) < 1e-5
  assert abs(default["baseline"] - mirrored["baseline"]) < 1e-6
  for a, b in zip(default["weights"], mirrored["weights"]):
    assert max(abs(x - y) for x, y in zip(_flat(a), _flat(b))) < 1e-5


def _flat(x):
  if isinstance(x, list):
    return [v for item in x for v in _flat(item)]
  return [x]
