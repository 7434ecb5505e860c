"""I/O failures end with exit 2 and one line naming the path (no traceback), and leave nothing
behind: a pipeline root whose disk fills, a read-only pipeline root, a read-only ML Metadata
store, and a store whose disk fills while ImageExampleGen runs, so that the commit of its
finished output fails. Real tmpfs mounts; skipped where mounting is not permitted."""
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(os.path.dirname(sys.executable), 'cxr-tfx')


@pytest.fixture
def tmpfs(tmp_path):
  """mount(name, size, read_only=False) -> a fresh tmpfs folder under tmp_path."""
  mounted = []

  def mount(name, size, read_only=False):
    path = tmp_path / name
    path.mkdir()
    options = f'size={size}' + (',ro' if read_only else '')
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(path)],
                          capture_output=True, text=True)
    if done.returncode:
      pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
    mounted.append(path)
    return path

  yield mount
  for path in reversed(mounted):
    subprocess.run(['umount', '-l', str(path)], capture_output=True)


def _run_args(demo_dataset, root, *extra):
  return [CLI, 'run', '--csv', demo_dataset.csv_path, '--class-mapping',
          demo_dataset.class_mapping_path, '--pipeline-root', str(root), '--no-cache', *extra]


def _assert_clear_error(done, *needles):
  assert done.returncode == 2, done.stderr[-3000:]
  assert 'Traceback' not in done.stderr and 'absl' not in done.stderr, done.stderr[-3000:]
  error = [l for l in done.stderr.splitlines() if l.startswith('cxr-tfx run: error:')]
  assert len(error) == 1, done.stderr[-3000:]
  for needle in needles:
    assert needle in error[0], error[0]
  return error[0]


def _unfinished_and_orphans(metadata, root):
  from pipeline import mlmd
  store = mlmd.sqlite_store(str(metadata))
  running = [e.id for e in store.get_executions()
             if e.last_known_state in (e.NEW, e.RUNNING, e.UNKNOWN)]
  outputs = root / 'ImageExampleGen' / 'examples'
  return running, sorted(os.listdir(outputs)) if outputs.exists() else []


def test_full_disk_under_the_pipeline_root(demo_dataset, tmpfs, tmp_path):
  disk = tmpfs('full', '600k')  # the CSV's ~64 images need more: the workers' writes fail
  metadata = tmp_path / 'metadata.sqlite'
  done = subprocess.run(_run_args(demo_dataset, disk / 'root', '--metadata', str(metadata)),
                        capture_output=True, text=True, cwd=REPO, timeout=600)
  _assert_clear_error(done, 'No space left on device', str(disk / 'root'))
  assert _unfinished_and_orphans(metadata, disk / 'root') == ([], [])
  assert not list((disk / 'root' / 'ImageExampleGen').rglob('*.gz'))  # staging removed too


def test_read_only_pipeline_root_and_store(demo_dataset, tmpfs, tmp_path):
  read_only = tmpfs('ro', '1m', read_only=True)
  done = subprocess.run(_run_args(demo_dataset, read_only / 'root'), capture_output=True,
                        text=True, cwd=REPO, timeout=600)
  _assert_clear_error(done, 'Read-only file system', str(read_only / 'root'))

  store_disk = tmpfs('store', '8m')
  metadata = store_disk / 'metadata.sqlite'
  from ml_metadata import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(metadata)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  metadata_store.MetadataStore(config)  # an existing store, then made read-only
  subprocess.run(['mount', '-o', 'remount,ro', str(store_disk)], check=True)
  done = subprocess.run(_run_args(demo_dataset, tmp_path / 'root', '--metadata', str(metadata)),
                        capture_output=True, text=True, cwd=REPO, timeout=600)
  _assert_clear_error(done, str(metadata), 'readonly database')


def test_store_disk_fills_while_image_example_gen_runs(demo_dataset, tmpfs, tmp_path):
  """The executor finishes, then ML Metadata cannot record it: its complete output is removed,
  and the next run's first step marks the execution FAILED."""
  store_disk = tmpfs('store', '4m')
  metadata, root = store_disk / 'metadata.sqlite', tmp_path / 'root'
  proc = subprocess.Popen(_run_args(demo_dataset, root, '--metadata', str(metadata)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
  outputs = root / 'ImageExampleGen' / 'examples'
  deadline = time.time() + 300
  while proc.poll() is None and time.time() < deadline:  # wait for the Beam job's plan file
    if outputs.exists() and any(os.path.exists(outputs / d / '.staging' / 'plan.jsonl')
                                for d in os.listdir(outputs)):
      break
    time.sleep(0.01)
  assert proc.poll() is None, 'the run ended before ImageExampleGen wrote its plan'
  with open(store_disk / 'filler', 'wb') as f:  # the store's disk is now full
    free = os.statvfs(store_disk).f_bavail * os.statvfs(store_disk).f_frsize
    try:
      os.posix_fallocate(f.fileno(), 0, free)
    except OSError:
      pass
  stdout, stderr = proc.communicate(timeout=600)
  done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
  _assert_clear_error(done, str(metadata), 'disk is full')
  assert not outputs.exists() or os.listdir(outputs) == []  # the unpublished output is gone

  os.remove(store_disk / 'filler')  # space again: what the next run does first
  from pipeline import cleanup
  from pipeline import configs
  cleanup.fail_unfinished(str(metadata), configs.PIPELINE_NAME, 'abandoned')
  assert _unfinished_and_orphans(metadata, root) == ([], [])
