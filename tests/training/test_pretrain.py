"""Pre-training the backbone on labelled crops (tnet_tf.training.pretrain)."""
import numpy as np
import pytest

from tnet_tf.training import pretrain
from tnet_tf.training import tasks
from tnet_tf.config import preset


def _crops(count, rng):
  """Two classes a small CNN tells apart at once: a bright bar across a
  48 px crop, horizontal or vertical, anywhere."""
  labels = rng.integers(0, 2, count)
  images = rng.integers(0, 40, [count, 48, 48, 1]).astype(np.uint8)
  for image, label in zip(images, labels):
    at = rng.integers(4, 40)
    if label:
      image[:, at:at + 4] = 255
    else:
      image[at:at + 4, :] = 255
  return images, labels


def test_pretrained_weights_read_the_crops_and_load_into_tnet(tmp_path):
  config = preset("toy", num_classes=2).replace(backbone_kwargs={
      "widths": (8, 16), "norm": "frozen_batch"})
  path = str(tmp_path / "reader" / "weights.h5")
  record = pretrain.pretrain_backbone(
      config, _crops, 300, path, _crops(200, np.random.default_rng(9)),
      batch_size=16, learning_rate=5e-3)
  assert record["steps"] == 300 and record["accuracy"] > 0.9
  loaded = tasks.create("tnet", config.replace(backbone_kwargs={
      **config.backbone_kwargs, "weights": path}))
  fresh = tasks.create("tnet", config)
  model = loaded.network.feature_extraction.model
  bn = model.get_layer("bn1").get_weights()
  # the statistics TNet keeps were learnt (not the initial 0 / 1)
  assert np.abs(bn[2]).max() > 1e-3 and not np.allclose(bn[3], 1.0)
  ref = fresh.network.feature_extraction.model.get_layer("conv1")
  assert not np.allclose(model.get_layer("conv1").get_weights()[0],
                         ref.get_weights()[0])
  with pytest.raises(ValueError, match="steps"):
    pretrain.pretrain_backbone(config, _crops, 0, path, _crops(
        4, np.random.default_rng(0)))
