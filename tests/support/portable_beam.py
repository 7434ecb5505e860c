"""Run Beam pipelines locally through the portability path (job service + external worker pool).

Flink, Spark and Dataflow Runner v2 all run Python through the same path: the pipeline is
submitted over gRPC to a *job service*, which hands bundles over the Fn API to SDK workers that
an *environment* provides.  This module starts that setup on this machine, so that tests can
catch what only breaks there (pickling, imports in a fresh process, metrics over the Job API)
without a cluster.

Recipe (what `portable_services` does; by hand it is the same with two shells)::

  # 1. The job service: Beam's Python job server; it runs the job with the FnApiRunner and
  #    serves the Job API and the artifact staging API on localhost:P.
  python -m apache_beam.runners.portability.local_job_service_main \
      --port 0 --port_file DIR/job.port --staging_dir DIR/staging
  # 2. The external worker pool: on each StartWorker request it spawns an SDK worker,
  #    `python -c 'SdkHarness(...).run()'` (a *bare* `python`, looked up on PATH).
  PATH=VENV/bin:$PATH PYTHONPATH=REPO \
      python -m apache_beam.runners.worker.worker_pool_main --service_port Q
  # 3. The pipeline options:
  --runner=PortableRunner --job_endpoint=localhost:P
  --environment_type=EXTERNAL --environment_config=localhost:Q

Gotchas (measured with Beam 2.59):
* The pool starts workers with a bare `python`, so the venv's bin directory must lead PATH in
  the pool's environment, and PYTHONPATH must hold the repository root so that project (and
  `tests.*`) modules import in the workers.
* The worker is a bare SdkHarness: it does not run the container boot sequence, so staged
  artifacts (`--save_main_session`'s pickled session, `--requirements_file`, `--setup_file`)
  are never loaded there.  A DoFn or function defined in `__main__` is pickled by value, but
  the module globals it uses (imports, constants) are not: it fails in the worker with a
  NameError, with or without `--save_main_session` (checked).  Keep DoFns and functions in
  importable modules (like `RecordDoFn` below; `tests.*` and project modules import there).
* Each job gets a fresh SDK worker (a new process importing Beam: ~5 s CPU here), which exits
  when the job ends but is never reaped by the pool (a zombie per job until the pool stops).
* The pool hands each worker `stdout=PIPE` and never reads it: a worker that prints more than a
  pipe buffer (64 KiB) to stdout blocks.  Log (stderr, in the pool's log file) instead.
* Metrics come back over the Job API: `committed` is set, `attempted` may be None.
* `--sdk_worker_parallelism` and `--environment_cache_millis` are read by the Flink/Spark job
  servers, not by this Python job service (which runs one worker, like the FnApiRunner), so
  they are not passed.  `--staging_dir` (the job service's artifact directory; without it, it
  uses and removes a fresh temp dir) is put under `tmp_dir` so that nothing outlives the test.
* Ports: the job service binds `localhost:0` and reports its port in `--port_file` (no race).
  The pool needs a fixed `--service_port`: a free loopback port is picked and held (bound with
  SO_REUSEPORT, not listening) until the pool listens on it, which gRPC's own SO_REUSEPORT allows
  while anything else is kept off it; if the pool still exits during start-up it is retried on
  another port.  The pool and the job service's Fn API servers bind `[::]` (Beam's choice, not
  configurable from the command line); every connection made here goes to `localhost`.
* Both services start in their own process group (`start_new_session`) and the group is killed
  on exit: the pool's SDK worker processes are in that group, and the External worker handler
  never asks the pool to stop them.  In case the test process dies without cleaning up (SIGKILL,
  OOM), each service is started through a tiny launcher that sets PR_SET_PDEATHSIG (SIGTERM when
  the thread that started it ends; start them from a long-lived thread, as pytest does) and then
  runs the module exactly as `python -m` would.
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Optional

import apache_beam as beam

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB_SERVICE_MODULE = 'apache_beam.runners.portability.local_job_service_main'
WORKER_POOL_MODULE = 'apache_beam.runners.worker.worker_pool_main'
STARTUP_TIMEOUT_S = 60.0
# `python -c _LAUNCHER PARENT_PID MODULE ARGS...` == `python -m MODULE ARGS...`, except that the
# process gets SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG = 1).
_LAUNCHER = '; '.join([
    'import ctypes, os, runpy, signal, sys',
    'ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)',
    'os.getppid() == int(sys.argv[1]) or sys.exit("parent already gone")',
    'sys.argv = sys.argv[2:]',
    'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)',
])


class PortableServicesError(RuntimeError):
  """A service did not come up (the message holds the tail of its log)."""


class PortableArgs(list):
  """The Beam pipeline args (a plain `List[str]`), plus what is useful to debug a run.

  Attributes:
    job_endpoint: 'localhost:P' of the job service.
    worker_pool_endpoint: 'localhost:Q' of the external worker pool.
    pids: {'job_service': pid, 'worker_pool': pid}.
    log_paths: {'job_service': path, 'worker_pool': path} (stdout and stderr of each service;
      the SDK workers' stderr lands in the worker pool's log).
  """
  job_endpoint: str
  worker_pool_endpoint: str
  pids: Dict[str, int]
  log_paths: Dict[str, str]

  def log_tail(self, lines: int = 40) -> str:
    """The last `lines` lines of both services' logs, for failure messages."""
    return '\n'.join(_tail(name, path, lines) for name, path in self.log_paths.items())


class RecordDoFn(beam.DoFn):
  """Counts each element (`portable_beam/elements`) and writes `<out_dir>/<element>.txt` holding
  'element pid ppid' of the process that ran it; yields the element."""

  def __init__(self, out_dir: str):
    super().__init__()
    self._out_dir = out_dir
    self._elements = beam.metrics.Metrics.counter('portable_beam', 'elements')

  def process(self, element):
    self._elements.inc()
    path = os.path.join(self._out_dir, '%s.txt' % element)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      f.write('%s %d %d\n' % (element, os.getpid(), os.getppid()))
    os.replace(path + '.tmp', path)
    yield element


def _tail(name: str, path: str, lines: int) -> str:
  try:
    with open(path, 'rb') as f:
      f.seek(0, os.SEEK_END)
      f.seek(max(0, f.tell() - 64 * 1024))
      text = f.read().decode('utf-8', 'replace')
  except OSError as e:
    text = '<no log: %s>' % e
  return '----- %s (%s), last %d lines -----\n%s' % (
      name, path, lines, '\n'.join(text.splitlines()[-lines:]))


def _reserve_port() -> socket.socket:
  """A bound (not listening) loopback socket on a free port, with SO_REUSEPORT: gRPC servers
  (which set SO_REUSEPORT) can still bind the port, other binders cannot until it is closed."""
  s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
  s.bind(('127.0.0.1', 0))
  return s


def _listening(port: int) -> bool:
  try:
    with socket.create_connection(('localhost', port), timeout=1.0):
      return True
  except OSError:
    return False


def _service_env() -> Dict[str, str]:
  env = dict(os.environ)
  venv_bin = os.path.dirname(sys.executable)
  env['PATH'] = os.pathsep.join([venv_bin] + [p for p in env.get('PATH', '').split(os.pathsep)
                                              if p and p != venv_bin])
  env['PYTHONPATH'] = os.pathsep.join(
      [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p and p != REPO])
  env['PYTHONUNBUFFERED'] = '1'
  # As tests/pytest.ini: google-api-core's FutureWarnings about Python 3.10 (4 per process,
  # SDK workers included) would fill the log tails.
  env['PYTHONWARNINGS'] = ','.join(
      filter(None, [env.get('PYTHONWARNINGS'), 'ignore::FutureWarning',
                    'ignore::DeprecationWarning']))
  env.pop('PYTHONSTARTUP', None)
  return env


def _start(module: str, args: List[str], log_path: str, cwd: str) -> subprocess.Popen:
  """Starts `python -m module args` (via _LAUNCHER) in a new session, output to `log_path`."""
  cmd = [sys.executable, '-c', _LAUNCHER, str(os.getpid()), module] + args
  with open(log_path, 'ab') as log:
    log.write(('$ python -m %s %s\n' % (module, ' '.join(args))).encode())
    log.flush()
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            cwd=cwd, env=_service_env(), start_new_session=True)


def _stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
  """SIGTERM the process group, SIGKILL it after `grace_s` (and whatever of it is left)."""
  try:
    os.killpg(proc.pid, signal.SIGTERM)
  except ProcessLookupError:
    pass
  try:
    proc.wait(timeout=grace_s)
  except subprocess.TimeoutExpired:
    pass
  try:  # The leader may be gone while group members (SDK workers) remain.
    os.killpg(proc.pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
  proc.wait()


def _wait_ready(name: str, proc: subprocess.Popen, log_path: str, deadline: float,
                port_file: Optional[str] = None, port: Optional[int] = None) -> Optional[int]:
  """Waits until `proc` listens; returns the port, or None if the process exited early."""
  while True:
    if proc.poll() is not None:
      return None
    if port is None and port_file and os.path.exists(port_file):
      with open(port_file, encoding='utf-8') as f:
        port = int(f.read().strip())
    if port is not None and _listening(port):
      return port
    if time.monotonic() > deadline:
      raise PortableServicesError(
          '%s did not listen within the start-up timeout (pid %d).\n%s'
          % (name, proc.pid, _tail(name, log_path, 40)))
    time.sleep(0.1)


@contextlib.contextmanager
def portable_services(tmp_dir: str, timeout_s: float = STARTUP_TIMEOUT_S,
                      pool_attempts: int = 3) -> Iterator[List[str]]:
  """Starts a Beam job service and an external worker pool; yields the pipeline args.

  Both listen on loopback ports picked free; logs go to `tmp_dir/{job_service,worker_pool}.log`
  and the job service's artifact staging to `tmp_dir/staging`.  Waits (at most `timeout_s` for
  both together) until both accept connections, else raises PortableServicesError with the tail
  of the log.  On exit (also on an exception) both process groups, SDK workers included, are
  stopped; if the body raised, the logs' tails are printed to stderr.

  Yields a `PortableArgs` (a `List[str]`), e.g.
    ['--runner=PortableRunner', '--job_endpoint=localhost:P',
     '--environment_type=EXTERNAL', '--environment_config=localhost:Q']
  to pass to `PipelineOptions(...)` (add e.g. '--job_name=...' as needed).
  """
  tmp_dir = os.path.abspath(tmp_dir)
  staging_dir = os.path.join(tmp_dir, 'staging')
  os.makedirs(staging_dir, exist_ok=True)
  port_file = os.path.join(tmp_dir, 'job_service.port')
  logs = {'job_service': os.path.join(tmp_dir, 'job_service.log'),
          'worker_pool': os.path.join(tmp_dir, 'worker_pool.log')}
  procs: Dict[str, subprocess.Popen] = {}
  deadline = time.monotonic() + timeout_s
  try:
    if os.path.exists(port_file):
      os.unlink(port_file)
    procs['job_service'] = _start(
        JOB_SERVICE_MODULE, ['--port', '0', '--port_file', port_file, '--staging_dir', staging_dir],
        logs['job_service'], tmp_dir)
    # Start the pool meanwhile (each takes a few seconds importing Beam on 2 cores).
    pool_port = None
    for attempt in range(pool_attempts):
      with _reserve_port() as reservation:
        candidate = reservation.getsockname()[1]
        procs['worker_pool'] = _start(WORKER_POOL_MODULE, ['--service_port', str(candidate)],
                                      logs['worker_pool'], tmp_dir)
        pool_port = _wait_ready('worker_pool', procs['worker_pool'], logs['worker_pool'],
                                deadline, port=candidate)
      if pool_port is not None:
        break
      _stop(procs.pop('worker_pool'))
      if attempt == pool_attempts - 1:
        raise PortableServicesError(
            'worker_pool exited during start-up (%d attempts).\n%s'
            % (pool_attempts, _tail('worker_pool', logs['worker_pool'], 40)))
    job_port = _wait_ready('job_service', procs['job_service'], logs['job_service'], deadline,
                           port_file=port_file)
    if job_port is None:
      raise PortableServicesError('job_service exited during start-up (code %s).\n%s' % (
          procs['job_service'].returncode, _tail('job_service', logs['job_service'], 40)))

    args = PortableArgs([
        '--runner=PortableRunner',
        '--job_endpoint=localhost:%d' % job_port,
        '--environment_type=EXTERNAL',
        '--environment_config=localhost:%d' % pool_port,
    ])
    args.job_endpoint = 'localhost:%d' % job_port
    args.worker_pool_endpoint = 'localhost:%d' % pool_port
    args.pids = {name: p.pid for name, p in procs.items()}
    args.log_paths = dict(logs)
    try:
      yield args
    except BaseException:
      sys.stderr.write(args.log_tail() + '\n')
      raise
  finally:
    for proc in procs.values():
      _stop(proc)
