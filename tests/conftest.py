"""Session fixtures shared by the suite. Heavy imports stay inside fixtures."""
import pytest


@pytest.fixture(scope='session')
def demo_dataset(tmp_path_factory):
  """A small demo dataset in the Kaggle layout: 64 rows (Viral Pneumonia: 4), ~20% without masks."""
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  return demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.003,
                            missing_masks=0.2, seed=7)


@pytest.fixture(scope='session')
def balanced_run(demo_dataset, tmp_path_factory):
  """The whole pipeline (LocalDagRunner, SQLite MLMD) on the demo dataset with splits
  train=3,test=1: every class fits every shard, so the data is balanced."""
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  from pipeline.local_runner import run_local  # pylint: disable=g-import-not-at-top
  from tests.testutil import load_mapping  # pylint: disable=g-import-not-at-top
  return run_local(str(tmp_path_factory.mktemp('balanced')), demo_dataset.csv_path,
                   IngestConfig(load_mapping(demo_dataset.class_mapping_path),
                                splits=(('train', 3), ('test', 1))))


@pytest.fixture(scope='session')
def portable_beam_args(tmp_path_factory):
  """Beam pipeline args (List[str]) for a local job service + external worker pool, started
  once per session on first use and stopped at its end (see tests/portable_beam.py); also has
  .job_endpoint, .worker_pool_endpoint, .pids, .log_paths and .log_tail()."""
  from tests.portable_beam import portable_services  # pylint: disable=g-import-not-at-top
  with portable_services(str(tmp_path_factory.mktemp('portable_beam'))) as args:
    yield args
