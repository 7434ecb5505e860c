"""Runs on one pipeline root cannot break each other (issue #29, defect 5): a run holds the root's
lock (pipeline/cleanup.py), a second run refuses at once or waits (--wait), cleanup touches only
what runs that are gone left, and each run reads back its own pipeline_run context, by its id.

Real LocalDagRunner runs, real SQLite ML Metadata, real processes, threads and signals."""
import fcntl
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from tests.support.testutil import CLI
from tests.support.testutil import load_mapping
from tests.support.testutil import refused_without_tensorflow
from tests.support.testutil import REPO

LOCK_FILE = '.cxr-tfx.lock'  # pipeline.cleanup.LOCK_FILE (checked below)
PIPELINE = 'cxr-tfx'


def _lock_held(folder) -> bool:
  """Whether some process holds the folder's lock: the flock itself, tried from here."""
  fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)  # also drops this probe's own flock
  return False


def _lock_file(folder):
  """What the folder's lock file says about its holder (JSON), or None (no file, or empty)."""
  try:
    with open(os.path.join(folder, LOCK_FILE), encoding='utf-8') as f:
      return json.loads(f.read() or 'null')
  except FileNotFoundError:
    return None


def _wait_for(found, what, alive, timeout=300):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if found():
      return
    assert alive(), f'ended before {what}'
    time.sleep(0.01)
  raise AssertionError(f'no {what} after {timeout} s')


def _example_gen_outputs(root):
  """{execution id: folder} of ImageExampleGen's output folders (TFX creates one per execution
  before its executor runs)."""
  return {os.path.basename(p): p
          for p in glob.glob(os.path.join(root, 'ImageExampleGen', 'examples', '*'))}


def _executions(store, run_id):
  from pipeline import mlmd
  return store.get_executions_by_context(mlmd.run_by_name(store, run_id).id)


@pytest.fixture(scope='module')
def one_root(demo_dataset, tmp_path_factory):
  """One pipeline root, in this order: K, `cxr-tfx run` killed (SIGKILL) while its
  ImageExampleGen runs; A, run_local in a thread; while A runs: B, run_local in this thread
  (no wait), C, run_local(wait=True) in a thread, and W, `cxr-tfx run --wait`."""
  from components.image_example_gen.config import IngestConfig
  from pipeline import mlmd
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  root = str(tmp_path_factory.mktemp('one-root'))
  logs = tmp_path_factory.mktemp('logs')
  out = types.SimpleNamespace(root=root, results={}, seconds={})
  csv_path = demo_dataset.csv_path

  killed = subprocess.Popen([CLI, 'run', '--csv', csv_path, '--pipeline-root', root],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
  _wait_for(lambda: _example_gen_outputs(root), "the killed run's ImageExampleGen",
            lambda: killed.poll() is None)
  out.killed_pid = killed.pid
  out.held_while_running = _lock_held(root)
  out.holder_while_running = _lock_file(root)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  out.held_after_kill = _lock_held(root)
  out.lock_file_after_kill = _lock_file(root)
  store = mlmd.sqlite_store(os.path.join(root, 'metadata.sqlite'))
  out.left_running = [e.id for e in store.get_executions() if e.last_known_state == e.RUNNING]
  out.left_outputs = _example_gen_outputs(root)

  def run(name, **kwargs):
    started = time.monotonic()
    try:
      out.results[name] = run_local(PipelineOptions(root), DataSource(csv_path=csv_path),
                                    IngestConfig(load_mapping(demo_dataset.class_mapping_path)),
                                    **kwargs)
    except BaseException as e:  # pylint: disable=broad-except  # the tests look at it
      out.results[name] = e
    out.seconds[name] = time.monotonic() - started

  first = threading.Thread(target=run, args=('a',))
  first.start()
  _wait_for(lambda: set(_example_gen_outputs(root)) - set(out.left_outputs),
            "run A's ImageExampleGen", first.is_alive)
  run('b')  # here, while A runs
  out.a_running_after_b = first.is_alive()
  waiting = threading.Thread(target=run, args=('c',), kwargs={'wait': True})
  waiting.start()
  with open(logs / 'w.out', 'w') as stdout, open(logs / 'w.err', 'w') as stderr:
    cli = subprocess.Popen([CLI, 'run', '--wait', '--csv', csv_path, '--pipeline-root', root],
                           stdout=stdout, stderr=stderr, cwd=REPO)
    first.join(900)
    waiting.join(900)
    cli.wait(900)
  out.cli = subprocess.CompletedProcess(cli.args, cli.returncode, (logs / 'w.out').read_text(),
                                        (logs / 'w.err').read_text())
  return out


def test_a_second_run_refuses_at_once_naming_the_first_and_wait(one_root):
  from components.errors import CxrError
  a, b = one_root.results['a'], one_root.results['b']
  assert isinstance(b, CxrError), b
  assert one_root.a_running_after_b and one_root.seconds['b'] < 15
  message = str(b)
  assert (f'{os.path.realpath(one_root.root)} is in use by run pid {os.getpid()} on host '
          f'{socket.gethostname()} (started ') in message
  assert f'run {a.run_id})' in message  # A noted its run id in the lock file
  assert 'Pass --wait to wait for that run to finish' in message


def test_the_first_run_completes_untouched_and_reads_its_own_run(one_root):
  from components.image_example_gen import spec
  from pipeline import mlmd
  from pipeline.local_runner import RunResult
  a = one_root.results['a']
  assert isinstance(a, RunResult), a
  store = mlmd.sqlite_store(a.metadata_path)
  states = {e.id: e.last_known_state for e in _executions(store, a.run_id)}
  assert len(states) == 6 and set(states.values()) <= {3, 5}, states  # COMPLETE / CACHED
  # nothing but the killed run's executions ever failed: B's start-up cleanup did not run
  failed = sorted(e.id for e in store.get_executions() if e.last_known_state == e.FAILED)
  assert failed == sorted(one_root.left_running)
  # its outputs are intact, and its result is what its own run context records
  assert len(glob.glob(os.path.join(a.examples_uri, 'Split-*', '*.gz'))) == 10
  assert a.examples_uri == mlmd.run_output(store, mlmd.run_by_name(store, a.run_id), PIPELINE,
                                           'ImageExampleGen', spec.EXAMPLES_KEY).uri
  assert os.path.isdir(a.transform_graph_uri) and os.path.isfile(a.balance_report)


def test_waiting_runs_run_after_the_first_and_each_reads_its_own_run(one_root):
  from pipeline import mlmd
  from pipeline.local_runner import RunResult
  a, c, cli = one_root.results['a'], one_root.results['c'], one_root.cli
  assert isinstance(c, RunResult), c
  assert cli.returncode == 0, cli.stderr[-3000:]
  # W said whom it waited for: A (this process), by its run id
  assert (f'waiting for run pid {os.getpid()} on host {socket.gethostname()} (started '
          in cli.stderr), cli.stderr[:3000]
  assert f'run {a.run_id}) to finish: it holds the pipeline root {one_root.root}' in cli.stderr
  assert re.search(r'waited [\d.]+ (s|min) for run pid \d+; this run holds', cli.stderr)
  cli_run_id = re.search(r'^ML Metadata: .* \(run (.+)\)$', cli.stdout, re.M).group(1)
  run_ids = [a.run_id, c.run_id, cli_run_id]
  assert len(set(run_ids)) == 3, run_ids
  store = mlmd.sqlite_store(a.metadata_path)
  # one run after the other: each run's executions lie in a time window of their own, A's first
  windows = sorted((min(e.create_time_since_epoch for e in executions),
                    max(e.last_update_time_since_epoch for e in executions), run_id)
                   for run_id in run_ids for executions in [_executions(store, run_id)])
  assert windows[0][2] == a.run_id
  for earlier, later in zip(windows, windows[1:]):
    assert earlier[1] <= later[0], windows
  for run_id in run_ids:
    assert len(_executions(store, run_id)) == 6, run_id
  assert mlmd.latest_run(store, PIPELINE).name == windows[-1][2]


def test_a_killed_run_releases_the_lock_and_the_next_run_fails_what_it_left(one_root):
  """The rerun after a kill, the way a CLI user meets it: tests/pipeline/test_lineage_and_cache.py
  (the unpublished output removed, the rerun complete and then cached)."""
  from pipeline import cleanup
  from pipeline import mlmd
  pid = one_root.killed_pid
  assert one_root.held_while_running and one_root.holder_while_running['pid'] == pid
  assert not one_root.held_after_kill  # SIGKILL: the kernel dropped the flock at once
  assert one_root.lock_file_after_kill['pid'] == pid  # the file still names the dead run
  assert one_root.left_running, 'the kill left nothing RUNNING'
  # A was not refused; its start-up cleanup failed what the dead run left, naming it
  store = mlmd.sqlite_store(os.path.join(one_root.root, 'metadata.sqlite'))
  for execution in store.get_executions_by_id(one_root.left_running):
    assert execution.last_known_state == execution.FAILED
    reason = execution.custom_properties['cxr_failure'].string_value
    assert reason.startswith('abandoned: the run that started it ended without finishing it; '
                             'the last run to hold the lock, '), reason
    assert (f'lock, run pid {pid} on host {socket.gethostname()} '
            '(started ') in reason and 'ended without releasing it (killed?)' in reason
  left = [f for i, f in one_root.left_outputs.items() if int(i) in one_root.left_running]
  assert left and not any(os.path.exists(f) for f in left)  # its unpublished output is gone
  assert LOCK_FILE == cleanup.LOCK_FILE


@pytest.mark.parametrize('shared', ['root', 'store'])
def test_the_cli_refuses_at_once_without_tensorflow(shared, demo_dataset, tmp_path):
  """`cxr-tfx run` on a root (or, with --metadata, a store) another run holds: exit 2 before
  TensorFlow loads, naming the holder and --wait; nothing written."""
  from pipeline import cleanup
  root, store_dir = tmp_path / 'root', tmp_path / 'store'
  store_dir.mkdir()
  args = ['run', '--csv', demo_dataset.csv_path, '--pipeline-root', str(root)]
  if shared == 'root':
    holder_args, busy = (str(root), str(root / 'metadata.sqlite')), root
  else:  # another root, the same store
    holder_args, busy = (str(tmp_path / 'other-root'), str(store_dir / 'm.sqlite')), store_dir
    args += ['--metadata', str(store_dir / 'm.sqlite')]
  with cleanup.hold(*holder_args) as lock:
    lock.note_run('the-first-run')
    stderr = refused_without_tensorflow(args)
  assert (f'cxr-tfx run: error: {os.path.realpath(busy)} is in use by run pid {os.getpid()} '
          f'on host {socket.gethostname()} (started ') in stderr
  assert 'run the-first-run): it holds ' in stderr and 'Pass --wait' in stderr
  assert not glob.glob(str(tmp_path / '**' / '*.sqlite'), recursive=True)


def test_a_child_that_outlives_a_killed_run_does_not_keep_the_lock(tmp_path):
  """A kill -9 releases the lock even when the run had forked (a multiprocessing pool, as
  demo data uses): the children close their copies of the lock's descriptor."""
  code = ('import multiprocessing, sys, time\n'
          'from pipeline import cleanup\n'
          f'with cleanup.hold({str(tmp_path)!r}, ""):\n'
          '  child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))\n'
          '  child.start()\n'
          '  print(child.pid, flush=True)\n'
          '  time.sleep(60)\n')
  proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True,
                          cwd=REPO)
  child = int(proc.stdout.readline())
  try:
    assert _lock_held(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.kill(child, 0)  # the child lives on...
    assert not _lock_held(tmp_path)  # ...without the lock
  finally:
    proc.kill()
    try:
      os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
      pass
