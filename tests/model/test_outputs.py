"""The typed view of TNet's record names every key TNet and the baseline
task write, and only those."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tnet_tf.model.adaptive import call_adaptive
from tnet_tf.model.outputs import TNetOutput
from tnet_tf.model.tnet import TNet
from tnet_tf.training import tasks


def test_the_view_round_trips_every_record(rng):
  tf.random.set_seed(0)
  images = rng.integers(0, 256, [2, 64, 64, 3], np.uint8)
  two_levels = TNet(tiny_config(levels=2, locations=(2,)))
  baseline = tasks.ImageClassifier(tiny_config(levels=1, locations=()))
  for record in (TNet(tiny_config())(images, training=False),
                 call_adaptive(two_levels, images, 0.5),
                 baseline(images, training=False)):
    out = TNetOutput.of(record)
    assert out.as_dict().keys() == record.keys()
    assert all(out.as_dict()[k] is record[k] for k in record)
    assert out.boxes is record["boxes"]
  adaptive = TNetOutput.of(call_adaptive(two_levels, images, 0.5))
  assert adaptive.embedding is None and adaptive.num_locations is not None


def test_a_key_that_is_no_field_is_an_error():
  with pytest.raises(TypeError, match="box"):
    TNetOutput.of({"logits": 0, "box": 1})
