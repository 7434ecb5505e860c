"""A shared ML Metadata server (issue #29): two pipelines run at the same time from two pipeline
roots against one MariaDB store (a real server, tests/support/mariadb.py), each reading back
only its own results and lineage; the password comes from the environment, never the command
line; `mysql://...` is never taken for a SQLite path."""
import os
import subprocess
import sys

import pytest

from tests.support import mariadb as mariadb_lib
from tests.support.testutil import read_csv_rows
from tests.support.testutil import write_csv_rows

SITES = ('cxr-site-a', 'cxr-site-b')


def _env(password=mariadb_lib.PASSWORD):
  return {**os.environ, 'CXR_MLMD_PASSWORD': password}


def _cli(*argv, cwd, env=None, check=True):
  done = subprocess.run([sys.executable, '-m', 'pipeline.cli', *argv], capture_output=True,
                        text=True, cwd=cwd, env=env or _env(), timeout=900)
  if check:
    assert done.returncode == 0, done.stderr[-3000:]
  return done


@pytest.fixture(scope='module')
def two_sites(mariadb, demo_dataset, tmp_path_factory):
  """Both sites' `cxr-tfx run` started together (site B on the first 40 rows), one store."""
  store = mariadb.create_database('shared')
  work = tmp_path_factory.mktemp('sites')
  csv_b = write_csv_rows(os.path.join(os.path.dirname(demo_dataset.csv_path), 'site-b.csv'),
                         read_csv_rows(demo_dataset.csv_path)[:40])
  csvs = dict(zip(SITES, (demo_dataset.csv_path, csv_b)))
  procs = {site: subprocess.Popen(
      [sys.executable, '-m', 'pipeline.cli', 'run', '--csv', csvs[site], '--class-mapping',
       demo_dataset.class_mapping_path, '--pipeline-root', str(work / site), '--pipeline-name',
       site, '--metadata', store, '--splits', 'train=2,test=1', '--quiet'],
      cwd=str(work), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for site in SITES}
  outputs = {site: p.communicate(timeout=900) for site, p in procs.items()}
  for site, p in procs.items():
    assert p.returncode == 0, outputs[site][1][-3000:]
  return store, work, {site: len(read_csv_rows(csvs[site])) for site in SITES}, outputs


def test_two_roots_share_one_server_and_each_reads_back_its_own_run(two_sites):
  from pipeline import mlmd
  store_location, work, rows, outputs = two_sites
  os.environ.setdefault('CXR_MLMD_PASSWORD', mariadb_lib.PASSWORD)
  store = mlmd.open_store(store_location)
  for site in SITES:
    (run,) = mlmd.runs(store, site)
    examples = mlmd.run_output(store, run, site, 'ImageExampleGen', 'examples')
    assert examples.uri.startswith(str(work / site) + os.sep)
    assert examples.custom_properties['cxr_rows_in'].int_value == rows[site]
    assert run.name in outputs[site][0]  # the summary names the run it read back
  # The two runs overlapped in time: they really shared the server at once.
  windows = {}
  for site in SITES:
    (run,) = mlmd.runs(store, site)
    times = [(e.create_time_since_epoch, e.last_update_time_since_epoch)
             for e in store.get_executions_by_context(run.id)]
    windows[site] = (min(t[0] for t in times), max(t[1] for t in times))
  (a_start, a_end), (b_start, b_end) = windows.values()
  assert a_start < b_end and b_start < a_end, windows
  # Nothing was written as a SQLite file named after the address (the old behaviour).
  assert not any(name.startswith('mysql') for name in os.listdir(work))


def test_lineage_and_report_read_the_server(two_sites):
  store_location, work, _, _ = two_sites
  for site in SITES:
    done = _cli('lineage', '--metadata', store_location, '--latest', 'examples',
                '--pipeline-name', site, '--json', cwd=str(work))
    other = SITES[1 - SITES.index(site)]
    assert str(work / site) in done.stdout and str(work / other) not in done.stdout
  done = _cli('report', '--metadata', store_location, '--pipeline-root', str(work / SITES[0]),
              '--pipeline-name', SITES[0], '--quiet', cwd=str(work))
  assert os.path.isfile(work / SITES[0] / 'reports' / 'balance_report.html')


def test_a_wrong_password_or_a_password_in_the_address_is_one_clear_line(two_sites, tmp_path):
  store_location, _, _, _ = two_sites
  done = _cli('lineage', '--metadata', store_location, '--latest', 'examples', cwd=str(tmp_path),
              env=_env('wrong'), check=False)
  assert done.returncode == 2 and 'Traceback' not in done.stderr
  assert f'cannot use the ML Metadata store {store_location}' in done.stderr
  assert 'CXR_MLMD_PASSWORD' in done.stderr and 'wrong' not in done.stderr
  with_password = store_location.replace('://cxr@', f'://cxr:{mariadb_lib.PASSWORD}@')
  done = _cli('lineage', '--metadata', with_password, '--latest', 'examples',
              cwd=str(tmp_path), check=False)
  assert done.returncode == 2 and mariadb_lib.PASSWORD not in done.stderr
  assert 'a password in the address' in done.stderr
