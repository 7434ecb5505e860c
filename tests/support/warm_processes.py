"""Processes that start with TensorFlow, Beam and TFX already imported (saving the 15-40 s a
fresh interpreter spends importing them): forks of one server process that imported them once
(multiprocessing's forkserver, started on first use and kept until the session ends).

Each is still a process of its own: its own cwd, environment, stdout and stderr (a log file)
and exit code; it imports the project's modules itself, so it runs the code as it is on disk.
``CXR_WARM_PROCESSES=0`` makes ``kfp_harness`` start a fresh interpreter per task instead.
"""
import os
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What the server imports once: the third-party libraries of TFX's entrypoints and the
# project's executors (not the project's modules), then this module (the forks' wrapper).
PRELOAD = ('numpy', 'tensorflow', 'apache_beam', 'keras', 'tensorflow_data_validation',
           'tensorflow_transform', 'tensorflow_transform.beam', 'tensorflow_model_analysis',
           'tfx.components', 'tfx.dsl.components.base.base_beam_executor',
           'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_entrypoint_utils',
           'tfx.orchestration.portable.outputs_utils', 'absl.app', 'absl.flags.argparse_flags',
           __name__)
ENABLED = os.environ.get('CXR_WARM_PROCESSES', '1') != '0'
_LOCK = threading.Lock()
_CONTEXT: List[Any] = []  # the forkserver's multiprocessing context, once started
_INTERPRETER_PATH = list(sys.path)  # as read in the server: a fresh interpreter's sys.path


def pythonpath() -> str:
  """PYTHONPATH with the repository first (what a task's interpreter gets)."""
  return os.pathsep.join([REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH')
                                   else []))


def start():
  """Starts the server if it is not running -> its multiprocessing context. Its imports run in
  the background: a caller may start it early so that they overlap its own work."""
  with _LOCK:
    if not _CONTEXT:
      import multiprocessing
      from multiprocessing import forkserver
      context = multiprocessing.get_context('forkserver')
      context.set_forkserver_preload(list(PRELOAD))
      before = os.environ.get('PYTHONPATH')
      os.environ['PYTHONPATH'] = pythonpath()  # the server imports this module from REPO
      try:
        forkserver.ensure_running()
      finally:
        if before is None:
          del os.environ['PYTHONPATH']
        else:
          os.environ['PYTHONPATH'] = before
      _CONTEXT.append(context)
  return _CONTEXT[0]


def _in_fork(log_path: str, cwd: str, target: Callable[..., Any], args: Sequence[Any]) -> None:
  """In a fork of the server: stdout and stderr to ``log_path``, then ``target(*args)``; an
  uncaught exception's traceback goes to the log and the exit code is 1; atexit functions run,
  as at an interpreter's exit."""
  import atexit
  import traceback
  fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  os.dup2(fd, 1)
  os.dup2(fd, 2)
  os.close(fd)
  os.chdir(cwd)
  code = 0
  try:
    target(*args)
  except SystemExit as e:
    code = e.code
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    code = 1
  finally:
    atexit._run_exitfuncs()  # pylint: disable=protected-access
  sys.exit(code)


def spawn(target: Callable[..., Any], args: Sequence[Any], log_path: str, cwd: str = REPO):
  """Starts ``target(*args)`` (a module-level function: it is pickled by name) in a warm
  process, its output to ``log_path`` -> the started multiprocessing Process (``join``,
  ``exitcode``, ``kill``)."""
  process = start().Process(target=_in_fork, args=(log_path, cwd, target, tuple(args)))
  process.start()
  return process


def wait(process, timeout: float, what: Any) -> int:
  """Waits up to ``timeout`` seconds for ``process`` (killed then, raising
  subprocess.TimeoutExpired naming ``what``) -> its exit code."""
  process.join(timeout)
  if process.exitcode is None:
    process.kill()
    process.join()
    raise subprocess.TimeoutExpired(what, timeout)
  return process.exitcode


def _python_m(argv: List[str], env: Dict[str, str]) -> None:
  """``python -m MODULE ARGS...`` (argv) as that interpreter runs it, in the current process."""
  import runpy
  os.environ.clear()
  os.environ.update(env)
  sys.path[:] = [os.getcwd()] + [p for p in _INTERPRETER_PATH if p]  # python -m: cwd first
  sys.argv = [argv[0]] + list(argv[3:])  # run_module sets argv[0] to the module's file
  runpy.run_module(argv[2], run_name='__main__', alter_sys=True)


def run_python_m(argv: List[str], env: Dict[str, str], log_path: str, timeout: float,
                 cwd: str = REPO) -> int:
  """Runs ``python -m MODULE ARGS...`` (argv, its interpreter this one) in a warm process with
  ``env`` in ``cwd``, stdout and stderr to ``log_path`` -> its exit code."""
  assert argv[1:2] == ['-m'], argv
  return wait(spawn(_python_m, (list(argv), dict(env)), log_path, cwd), timeout, argv)
