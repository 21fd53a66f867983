import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from fakes import runs as fake_runs  # noqa: E402
from tnet_tf.config import ModelConfig  # noqa: E402
from tnet_tf.model.tnet import TNet  # noqa: E402
from tnet_tf.tools import damage  # noqa: E402


def tiny_config(**overrides) -> ModelConfig:
  """A 3-level TNet on the tiny CNN: r=32, 3×3 grid, c=0.5, 128² inputs.

  Plain batch norm (not the tiny CNN's default, batch renormalisation,
  whose training-mode output moves with its statistics at every call): the
  tests of TNet's machinery compare training-mode passes with each other.
  """
  base = dict(backbone="tiny_cnn", num_classes=5, base_resolution=32,
              grid_size=3, cell_fraction=0.5, levels=3, locations=(2, 1),
              backbone_kwargs={"norm": "batch"})
  base.update(overrides)
  return ModelConfig(**base)


@pytest.fixture(scope="session")
def tiny_tnet() -> TNet:
  tf.random.set_seed(0)
  return TNet(tiny_config())


@pytest.fixture
def rng() -> np.random.Generator:
  return np.random.default_rng(0)


@pytest.fixture(scope="session")
def paper_datasets(tmp_path_factory) -> dict:
  """Every paper dataset, faked in its raw layout and prepared via TFDS."""
  import fakes  # tests/ is on sys.path (pytest.ini)
  return fakes.prepare_all(str(tmp_path_factory.mktemp("paper_datasets")))


# ------------------------------------------------ prediction (tests/inference)
@pytest.fixture(scope="session")
def fake_run(tmp_path_factory):
  """(run directory, its SavedModel) of a 3-level tiny TNet."""
  run_dir = str(tmp_path_factory.mktemp("run"))
  _, saved = fake_runs.make_run(run_dir)
  return run_dir, saved


@pytest.fixture(scope="session")
def damaged(tmp_path_factory):
  """``damage.mixed_collection``: [(path, "good" or what was done)]."""
  return damage.mixed_collection(str(tmp_path_factory.mktemp("damaged")),
                                 slide_px=1024)
