"""Beam through the portability path (job service + external worker pool,
tests/support/portable_beam.py)."""
import os

import pytest

pytestmark = pytest.mark.portable

N = 100


def _processes_in(directory: str):
  """Pids of live processes whose working directory is under `directory` (the services and
  their SDK workers run there)."""
  found = []
  for pid in os.listdir('/proc'):
    if not pid.isdigit():
      continue
    try:
      cwd = os.readlink('/proc/%s/cwd' % pid)
    except OSError:
      continue
    if cwd == directory or cwd.startswith(directory + os.sep):
      found.append(int(pid))
  return found


@pytest.mark.timeout(180)
def test_pipeline_runs_in_external_worker_pool(portable_beam_args, tmp_path):
  import apache_beam as beam
  from apache_beam.metrics.metric import MetricsFilter
  from apache_beam.options.pipeline_options import PipelineOptions
  from apache_beam.runners.runner import PipelineState

  from tests.support.portable_beam import RecordDoFn

  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  pipeline = beam.Pipeline(
      options=PipelineOptions(list(portable_beam_args) + ['--job_name=portable-beam-test']))
  _ = (pipeline
       | 'Ints' >> beam.Create(list(range(N)))
       | 'Record' >> beam.ParDo(RecordDoFn(str(out_dir))))
  try:
    result = pipeline.run()
    state = result.wait_until_finish()
  except Exception as e:  # pylint: disable=broad-except
    pytest.fail('pipeline failed: %s\n%s' % (e, portable_beam_args.log_tail()))
  assert state == PipelineState.DONE, portable_beam_args.log_tail()

  # Every element's file, each written by an SDK worker that the worker pool spawned.
  assert sorted(os.listdir(out_dir)) == sorted('%d.txt' % i for i in range(N))
  rows = [(out_dir / ('%d.txt' % i)).read_text().split() for i in range(N)]
  assert [int(r[0]) for r in rows] == list(range(N))
  pids = {int(r[1]) for r in rows}
  ppids = {int(r[2]) for r in rows}
  assert os.getpid() not in pids
  assert not pids & set(portable_beam_args.pids.values())
  assert ppids == {portable_beam_args.pids['worker_pool']}

  # The counter comes back over the Job API: committed is set, attempted may be None.
  counters = result.metrics().query(
      MetricsFilter().with_namespace('portable_beam').with_name('elements'))['counters']
  assert counters, result.metrics().query()
  assert sum(c.committed for c in counters) == N
  assert all(c.attempted is None or c.attempted == c.committed for c in counters), counters


def test_startup_timeout_reports_log_and_stops_services(tmp_path):
  from tests.support.portable_beam import portable_services
  from tests.support.portable_beam import PortableServicesError

  with pytest.raises(PortableServicesError, match='did not listen') as raised:
    with portable_services(str(tmp_path), timeout_s=0.5):
      pytest.fail('the services cannot be up within 0.5 s')
  assert 'last 40 lines' in str(raised.value) and 'worker_pool_main' in str(raised.value)
  assert not _processes_in(str(tmp_path))
