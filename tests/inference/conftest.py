"""What the prediction tests share: a run directory without training and a
folder of good and damaged files (made once per session)."""
import pytest

from fakes import runs as fake_runs
from tnet_tf.tools import damage


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory):
  """(run directory, its SavedModel) of a 3-level tiny TNet."""
  run_dir = str(tmp_path_factory.mktemp("run"))
  _, saved = fake_runs.make_run(run_dir)
  return run_dir, saved


@pytest.fixture(scope="session")
def damaged(tmp_path_factory):
  """``damage.mixed_collection``: [(path, "good" or what was done)]."""
  return damage.mixed_collection(str(tmp_path_factory.mktemp("damaged")))
