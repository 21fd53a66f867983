"""The faces-in-clutter folder (tnet_tf.data.faces): what it writes, and that
the validation canvases share no photograph with the training ones."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tnet_tf.data import faces

SMALL = faces.FacesConfig(canvas_size=128, object_side=16, clutter_patches=2,
                          num_lines=4, train_examples=12,
                          validation_examples=6)


def test_write_folder_writes_class_folders_and_each_object_box(tmp_path):
  record = faces.write_folder(str(tmp_path), SMALL)
  files = sorted(record["boxes"])
  assert len(files) == 18
  on_disk = sorted(os.path.relpath(os.path.join(d, f), tmp_path)
                   for d, _, fs in os.walk(tmp_path) for f in fs
                   if f.endswith(".png"))
  assert on_disk == files
  assert {f.split(os.sep)[0] for f in files} == {"train", "val"}
  pools = faces._pools(SMALL)
  for rel in files:
    split, name, stem = rel.split(os.sep)
    image = np.asarray(Image.open(tmp_path / rel))
    assert image.shape == (128, 128) and image.dtype == np.uint8
    expected, label, box = faces.draw(SMALL, pools, split, int(stem[:5]))
    # the file is the canvas drawn, in the folder of its class, and the
    # box frames the object
    np.testing.assert_array_equal(image, expected)
    assert faces.CLASSES[label] == name
    y0, x0, y1, x1 = (int(v) for v in record["boxes"][rel])
    assert (y1 - y0, x1 - x0) == (16, 16)
    np.testing.assert_array_equal(box, [y0, x0, y1, x1])
  with open(tmp_path / "boxes.json") as fh:
    assert json.load(fh)["config"]["canvas_size"] == 128
  # written once: a second call keeps the folder; another config refuses
  assert faces.write_folder(str(tmp_path), SMALL) == record
  with pytest.raises(ValueError, match="another configuration"):
    faces.write_folder(str(tmp_path), faces.FacesConfig(
        canvas_size=128, object_side=16, train_examples=3,
        validation_examples=3))


def test_validation_photographs_are_held_out_from_training():
  pools = faces._pools(faces.FacesConfig())
  for name in faces.CLASSES:
    train = pools["train"][name].reshape(len(pools["train"][name]), -1)
    val = pools["val"][name].reshape(len(pools["val"][name]), -1)
    assert (len(train), len(val)) == (80, 20)
    # no validation photograph equals any training one
    distance = np.abs(val[:, None, :] - train[None, :, :]).max(-1)
    assert distance.min() > 0


def test_object_side_is_checked():
  with pytest.raises(ValueError, match="object_side"):
    faces.FacesConfig(canvas_size=64, object_side=40)
