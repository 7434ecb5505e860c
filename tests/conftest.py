"""Session fixtures shared by the suite, and the `slow` marker. Heavy imports stay inside
fixtures."""
import glob
import os
import re

import pytest

# The fast tier (`make test-fast`: pytest -m 'not slow') is the pure modules and the executors on
# tiny files. Every other test is marked `slow` here, by rules a new test falls under by itself:
#  - it lives under an end-to-end path (whole pipeline runs, subprocess runs, the KFP harness),
#    unless its module is listed in FAST_MODULES;
#  - it uses, directly or through other fixtures, one in SLOW_FIXTURES;
#  - it is listed in SLOW_TESTS (a single expensive test in an otherwise fast module).
# A listed module, fixture or test that no longer exists is an error, so the lists cannot rot.
_HERE = os.path.dirname(os.path.abspath(__file__))
SLOW_PATHS = ('pipeline/', 'faults/', 'test_portable_beam.py')
FAST_MODULES = frozenset({
    'pipeline/test_demo_data.py',  # the demo data generator: numpy and Pillow only
    'pipeline/test_metadata_store.py',  # parsing --metadata addresses: pure
    'components/image_example_gen/test_perceptual.py',  # fingerprints: NumPy
    'components/image_example_gen/test_near_duplicates.py',  # Beam DirectRunner, no TensorFlow
    'components/image_example_gen/test_quality.py',  # NumPy
    'components/image_example_gen/test_shortcut.py',  # NumPy, scikit-learn
})
SLOW_FIXTURES = frozenset({
    'balanced_run',  # the whole pipeline (LocalDagRunner)
    'mariadb',  # a MariaDB server in another process
    'portable_beam_args',  # a Beam job service and worker pool in other processes
    'real_output',  # tests/schemas: Beam ingestion and TFDV statistics of the demo data
    'spans',  # test_drift_executor: TFDV statistics of three spans
})
SLOW_TESTS = frozenset({
    # two DirectRunner worker processes, each loading TensorFlow and Beam
    'components/image_example_gen/test_ingest.py::'
    'test_multi_processing_workers_write_the_same_bytes_and_the_launcher_opens_no_image',
    'components/image_example_gen/test_folders.py::test_listing_21k_files_is_launcher_cheap',
})


def _check_slow_lists(items):
  missing = [m for m in FAST_MODULES if not os.path.isfile(os.path.join(_HERE, m))]
  sources = ''.join(open(f).read() for f in glob.glob(os.path.join(_HERE, '**', '*.py'),
                                                      recursive=True))
  missing += [f for f in SLOW_FIXTURES if not re.search(rf'^def {f}\(', sources, re.M)]
  collected = {item.nodeid.split('[')[0] for item in items}
  files = {n.split('::')[0] for n in collected}
  for test in SLOW_TESTS:
    path = test.split('::')[0]
    if not os.path.isfile(os.path.join(_HERE, path)) or (path in files and test not in collected):
      missing.append(test)
  if missing:
    raise pytest.UsageError('tests/conftest.py lists what does not exist (renamed? update the '
                            f'slow-marker lists): {", ".join(sorted(missing))}')


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  _check_slow_lists(items)
  for item in items:
    path = os.path.relpath(str(item.path), _HERE).replace(os.sep, '/')
    if ((path.startswith(SLOW_PATHS) and path not in FAST_MODULES)
        or SLOW_FIXTURES.intersection(item.fixturenames)
        or f'{path}::{item.name.split("[")[0]}' in SLOW_TESTS):
      item.add_marker(pytest.mark.slow)


@pytest.fixture(scope='session')
def demo_dataset(tmp_path_factory):
  """A small demo dataset in the Kaggle layout: 64 rows (Viral Pneumonia: 4), ~20% without masks."""
  from pipeline import demo_data
  return demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.003,
                            missing_masks=0.2, seed=7)


@pytest.fixture(scope='session')
def balanced_run(demo_dataset, tmp_path_factory):
  """The whole pipeline (LocalDagRunner, SQLite MLMD) on the demo dataset with splits
  train=3,test=1: every class fits every shard, so the data is balanced."""
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  from tests.support.testutil import load_mapping
  return run_local(PipelineOptions(str(tmp_path_factory.mktemp('balanced'))),
                   DataSource(csv_path=demo_dataset.csv_path),
                   IngestConfig(load_mapping(demo_dataset.class_mapping_path),
                                splits=(('train', 3), ('test', 1))))


@pytest.fixture(scope='session')
def portable_beam_args(tmp_path_factory):
  """Beam pipeline args (List[str]) for a local job service + external worker pool, started
  once per session on first use and stopped at its end (see tests/support/portable_beam.py);
  also has .job_endpoint, .worker_pool_endpoint, .pids, .log_paths and .log_tail()."""
  from tests.support.portable_beam import portable_services
  with portable_services(str(tmp_path_factory.mktemp('portable_beam'))) as args:
    yield args


@pytest.fixture(scope='session')
def mariadb(tmp_path_factory):
  """A private MariaDB server (tests/support/mariadb.py) for the shared-store tests; they skip
  where Debian's mariadb-server is not installed (.ci/run installs it)."""
  from tests.support import mariadb as mariadb_lib
  server = mariadb_lib.start(str(tmp_path_factory.mktemp('mariadb')))
  if server is None:
    pytest.skip('mariadb-server is not installed (apt-get install mariadb-server)')
  yield server
  server.stop()
