"""Who owns a pipeline root: the lock a run holds on it and on its ML Metadata store.

A run owns its pipeline root and its ML Metadata store while it holds their lock (``hold``): an
``fcntl.flock`` on ``<folder>/.cxr-tfx.lock`` in the root and in the store's folder (one lock
when the store is in the root, the default). The file names the holder -- pid, host, start time
and, once chosen, the run id -- as JSON, so that a second run can say whom it waits for; the
lock itself is the flock, not the file: the kernel drops it when the holder's last descriptor
of it closes, so a run killed with SIGKILL releases it too, and the JSON it leaves names the run
that died (``RootLock.previous``). A run that ends normally empties the file. Cleanup
(cleanup.py) runs only while the lock is held.
"""
import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from components.errors import CxrError

LOCK_FILE = '.cxr-tfx.lock'  # in the pipeline root, and in the store's folder if elsewhere
WAIT_POLL_SECONDS = 0.2  # how often a waiting run tries the lock again


class RootInUse(CxrError):
  """Another run holds the pipeline root's (or the store's) lock: the message names that run
  and the option --wait."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """The run a lock file names: the one holding the lock, or after a kill the one that did."""
  pid: int = 0
  host: str = ''
  started: str = ''  # local time, ISO 8601 with its UTC offset
  run_id: str = ''  # the pipeline_run context's name, once the run has chosen it

  @classmethod
  def parse(cls, data: bytes) -> Optional['Holder']:
    """The holder in a lock file's bytes; None when empty (released) or not JSON yet (being
    written this instant)."""
    try:
      found = json.loads(data.decode('utf-8') or 'null')
    except ValueError:
      return None
    if not isinstance(found, dict):
      return None
    return cls(**{f.name: found[f.name] for f in dataclasses.fields(cls) if f.name in found})

  @classmethod
  def read(cls, path: str) -> Optional['Holder']:
    try:
      with open(path, 'rb') as f:
        return cls.parse(f.read(65536))
    except OSError:
      return None

  def describe(self, holding: bool = True) -> str:
    """'run pid 4711 on host ws-3 (started 2025-05-01T09:30:12+02:00, run <id>)'; for a holder
    whose process is gone while the lock is still held (``holding``), says so."""
    if not self.pid:
      return 'another run (it has not written its pid into the lock file yet)'
    extra = f', run {self.run_id}' if self.run_id else ''
    if holding and self.host == socket.gethostname() and not _alive(self.pid):
      extra += '; that process is gone, but a process it started still holds the lock'
    return f'run pid {self.pid} on host {self.host} (started {self.started}{extra})'


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # e.g. another user's process: it exists
    return True
  return True


@dataclasses.dataclass
class _Entry:
  """One lock file this process holds."""
  path: str
  fd: int
  pid: int  # the process that took it (a forked child does not own it)
  thread: int  # the thread that took it: only that thread enters it again
  depth: int
  content: Dict[str, object]
  previous: Optional[Holder]  # what the file named when this run took the lock
  writable: bool  # False: another user's lock file, flock'ed through a read-only descriptor


_held: Dict[str, _Entry] = {}  # lock file path -> this process's hold of it
_held_guard = threading.Lock()


def _forget_in_child() -> None:
  """A forked child (a multiprocessing worker, the display process) closes its copies of the
  lock files' descriptors: a flock lasts while any descriptor of it is open, so a child that
  outlived a killed parent would keep the root locked. Closing a copy leaves the parent's lock
  held (a flock belongs to the open file, which the parent still has open)."""
  global _held_guard  # pylint: disable=global-statement
  for entry in _held.values():
    try:
      os.close(entry.fd)
    except OSError:
      pass
  _held.clear()
  _held_guard = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_in_child)


class RootLock:
  """What ``hold`` holds: the root's and the store's lock files, for one run."""

  def __init__(self, pipeline_root: str, metadata_path: str, entries: List[_Entry],
               waited_seconds: float):
    self.pipeline_root = pipeline_root
    self.metadata_path = metadata_path
    self.paths = [e.path for e in entries]  # the lock files, in the order taken
    self.waited_seconds = waited_seconds  # 0.0 when they were free
    self._entries = entries
    # the run that held a lock last and ended without releasing it normally (killed), if any
    self.previous = next((e.previous for e in entries if e.previous), None)

  @property
  def held(self) -> bool:
    """This process and thread still hold every lock file."""
    return all(_held.get(e.path) is e and e.pid == os.getpid()
               and e.thread == threading.get_ident() for e in self._entries)

  def check(self) -> None:
    """Raises unless the lock is held: cleanup without it could fail a live run's executions."""
    if not self.held:
      raise RuntimeError(f'cxr-tfx bug: cleanup without holding {", ".join(self.paths)}')

  def note_run(self, run_id: str) -> None:
    """Adds the run id to the lock files (a second run's message names it)."""
    for entry in self._entries:
      entry.content['run_id'] = run_id
      _write(entry)


def lock_folders(pipeline_root: str, metadata_path: str) -> List[str]:
  """The folders whose lock a run of ``pipeline_root`` with the SQLite store ``metadata_path``
  takes: the root (a local one) and the store's folder (if it exists; else the store cannot be
  created either), each once, sorted: every run takes them in this order, so two waiting runs
  cannot deadlock."""
  folders = set()
  if pipeline_root and '://' not in pipeline_root:
    folders.add(os.path.realpath(pipeline_root))
  if metadata_path and '://' not in metadata_path:
    store_dir = os.path.dirname(os.path.abspath(metadata_path))
    if os.path.isdir(store_dir):
      folders.add(os.path.realpath(store_dir))
  return sorted(folders)


@contextlib.contextmanager
def hold(pipeline_root: str, metadata_path: str, wait: bool = False,
         on_wait: Optional[Callable[[Holder], None]] = None) -> Iterator[RootLock]:
  """Holds the lock of a pipeline root and of its ML Metadata store's folder (module docstring)
  while the block runs: released when it ends, by an exception too, and by the kernel when the
  process dies. A missing local root is created.

  Held by another run: raises ``RootInUse`` naming it (pid, host, start) and --wait; with
  ``wait``, calls ``on_wait(holder)`` (again whenever the holder changes) and tries every
  ``WAIT_POLL_SECONDS`` until the lock is free. The thread that holds it may enter again (the
  CLI holds it from before its demo data to the summary, ``run_local`` enters it inside);
  another thread of this process waits or is refused like another process.

  Why the store's folder too: two runs with different roots but one store would otherwise fail
  each other's executions (``fail_unfinished`` reads the store), and a root shared by runs with
  different stores would lose outputs its own store does not know (``remove_unpublished_
  outputs``); locking both covers either sharing. Locking the folder rather than the SQLite
  file keeps one lock file, in the root, in the default layout.

  Not covered: a URI root (gs://...) cannot be flock'ed, so nothing locks it; the store's
  folder (SQLite is local) still is, so runs sharing a store exclude each other, but two runs
  with one gs:// root and different stores do not (nothing cleans a URI root:
  ``remove_unpublished_outputs`` skips it). On a network file system the lock is as good as its
  flock (NFS: through lockd). A folder where no lock file can be created (read-only for this
  user) is not locked: nothing can be written there either, so the run fails at its first
  write with the error that names the folder or store; an existing lock file that is
  read-only for this user (another user's) is flock'ed all the same. Programs that do not take
  the lock (LocalDagRunner called directly, an older cxr-tfx) are not excluded.
  """
  if pipeline_root and '://' not in pipeline_root:
    os.makedirs(pipeline_root, exist_ok=True)
  entries: List[_Entry] = []
  waited = 0.0
  try:
    for folder in lock_folders(pipeline_root, metadata_path):
      path = os.path.join(folder, LOCK_FILE)
      with _held_guard:
        entry = _held.get(path)
        if entry is not None and entry.thread == threading.get_ident():
          entry.depth += 1
          entries.append(entry)
          continue
      fd, writable = _open(path)
      if fd is None:
        continue  # a read-only folder (docstring)
      seconds = _acquire(fd, path, folder, wait, on_wait)
      waited += seconds
      content = {'pid': os.getpid(), 'host': socket.gethostname(),
                 'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                 'pipeline_root': pipeline_root, 'metadata': metadata_path}
      entry = _Entry(path, fd, os.getpid(), threading.get_ident(), 1, content, None, writable)
      with _held_guard:
        _held[path] = entry
      entries.append(entry)
      entry.previous = Holder.parse(os.pread(fd, 65536, 0))
      _write(entry)
  except BaseException:
    _release(entries)
    raise
  try:
    yield RootLock(pipeline_root, metadata_path, entries, waited)
  finally:
    _release(entries)


def _open(path: str) -> Tuple[Optional[int], bool]:
  """The lock file, created if missing -> (descriptor, writable); (None, False) when the
  folder cannot hold one (read-only for this user)."""
  try:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), True
  except OSError as e:
    if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
      raise
  try:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False  # flock needs no write access
  except OSError as e:
    if e.errno not in (errno.ENOENT, errno.EROFS, errno.EACCES, errno.EPERM):
      raise
  return None, False


def _acquire(fd: int, path: str, folder: str, wait: bool,
             on_wait: Optional[Callable[[Holder], None]]) -> float:
  """Flocks the open lock file ``path`` -> the seconds waited; closes it on failure."""
  started, shown = time.monotonic(), None
  try:
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return (time.monotonic() - started) if shown else 0.0
      except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          raise
      holder = Holder.read(path) or Holder()
      if not wait:
        raise RootInUse(
            f'{folder} is in use by {holder.describe()}: it holds {path}. Two runs on one '
            "pipeline root or ML Metadata store would fail each other's executions and delete "
            'their outputs. Pass --wait to wait for that run to finish (run_local(wait=True) '
            'in Python), or choose another --pipeline-root / --metadata.')
      if holder != shown:
        shown = holder
        if on_wait is not None:
          on_wait(holder)
      time.sleep(WAIT_POLL_SECONDS)
  except BaseException:
    os.close(fd)  # another descriptor of this process keeps its own flock (if it has one)
    raise


def _write(entry: _Entry) -> None:
  if entry.writable:
    os.ftruncate(entry.fd, 0)
    os.pwrite(entry.fd, json.dumps(entry.content).encode('utf-8'), 0)


def _release(entries: List[_Entry]) -> None:
  """Leaves each entry once; the last leave empties the file (a clean end) and unlocks."""
  for entry in reversed(entries):
    if entry.pid != os.getpid():
      continue  # a forked child: _forget_in_child closed its copy already
    with _held_guard:
      entry.depth -= 1
      if entry.depth > 0:
        continue
      _held.pop(entry.path, None)
    try:
      if entry.writable:
        os.ftruncate(entry.fd, 0)
    except OSError:
      pass  # the next run then reads this run as killed: only its cleanup reason says so
    finally:
      os.close(entry.fd)  # the last descriptor of the open file: the flock goes with it
