"""Helpers and checks shared by the CUB and NABirds builder tests
(tests/data_pipelines/test_cub.py, test_nabirds.py): both builders follow
one interface over the same file family."""
import io
import logging
import os
import re
import shutil
from typing import Callable, Optional

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import fakes


def fresh_tree(fake, tmp_path, **kwargs) -> tuple[dict, str]:
  """A fresh tree of `fake` (fakes.cub or fakes.nabirds) under
  tmp_path/manual and the folder holding its metadata files."""
  tree = fake.make_tree(str(tmp_path / "manual"), **kwargs)
  return tree, os.path.join(tree["manual_dir"], fake.FOLDER)


def prepare_fails(name: str, tree: dict, tmp_path, match: Optional[str],
                  error: type[Exception] = ValueError) -> Exception:
  """Preparing TFDS dataset `name` from the tree raises `error` (matching
  `match` unless None); returns the error."""
  with pytest.raises(error, match=match) as info:
    fakes.prepare(name, tree["manual_dir"], str(tmp_path / "data"))
  return info.value


def edit_lines(path: str, edit: Callable[[list[str]], list[str]]) -> None:
  """Rewrites a metadata file with `edit(lines) -> lines`."""
  with open(path) as f:
    lines = f.read().splitlines()
  with open(path, "w") as f:
    f.writelines(line + "\n" for line in edit(lines))


def check_examples(tree: dict, builder: tfds.core.DatasetBuilder) -> None:
  """The records hold exactly the tree's examples: split sizes, labels, class
  names, boxes (to 1e-6), file names and the original bytes."""
  assert set(builder.info.splits) == set(tree["splits"])
  int2str = builder.info.features["label"].int2str
  for split, expected in tree["splits"].items():
    assert builder.info.splits[split].num_examples == len(expected)
    stored = fakes.records(builder, split)
    assert set(stored) == set(expected)
    for file_name, example in stored.items():
      want = expected[file_name]
      assert example["label"] == want["label"], file_name
      assert int2str(example["label"]) == want["class_name"], file_name
      np.testing.assert_allclose(example["bbox"], want["bbox"], atol=1e-6)
      assert example["image"] == tree["file_bytes"][file_name], file_name


def check_corrupt_file(tree: dict, builder: tfds.core.DatasetBuilder) -> None:
  """The corrupt train file is stored as is: its header reads, its body does
  not decode."""
  corrupt = tree["corrupt_file"]
  stored = fakes.records(builder, "train")[corrupt]["image"]
  assert stored == tree["file_bytes"][corrupt]
  size = tree["splits"]["train"][corrupt]["size"]
  assert Image.open(io.BytesIO(stored)).size == size
  with pytest.raises(tf.errors.InvalidArgumentError):
    tf.io.decode_jpeg(stored)


def check_skips_unreadable_header(name: str, tree: dict, tmp_path,
                                  caplog) -> None:
  """Overwrites the first train file with junk: it is skipped, named in a
  warning and counted in one line per split."""
  broken = sorted(tree["splits"]["train"])[0]
  with open(os.path.join(tree["manual_dir"], broken), "wb") as f:
    f.write(b"\xff\xd8 not really a jpeg")
  with caplog.at_level(logging.INFO):
    builder = fakes.prepare(name, tree["manual_dir"], str(tmp_path / "data"))
  assert set(fakes.records(builder, "train")) == (
      set(tree["splits"]["train"]) - {broken})
  messages = [record.getMessage() for record in caplog.records]
  assert any(broken in m and "header" in m for m in messages)
  assert "skipped 1 unreadable images in train" in messages
  assert "skipped 0 unreadable images in test" in messages


def check_missing(name: str, tree: dict, path: str, tmp_path,
                  instructions: str) -> None:
  """Removing `path` (a file or folder) fails with a FileNotFoundError that
  names it and says what to place in the manual dir."""
  if os.path.isdir(path):
    shutil.rmtree(path)
  else:
    os.remove(path)
  error = prepare_fails(name, tree, tmp_path, None, FileNotFoundError)
  assert f"{path} does not exist" in str(error)
  assert instructions in str(error)


def check_empty_manual_dir(name: str, tmp_path, instructions: str) -> None:
  (tmp_path / "empty").mkdir()
  prepare_fails(name, {"manual_dir": str(tmp_path / "empty")}, tmp_path,
                re.escape(instructions), FileNotFoundError)
