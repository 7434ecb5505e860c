"""ImageExampleGen's progress from its staging folder: ``StagingProgress``, a poll for the display
that counts the rows of chunks done against the rows planned, from the launcher's plan and the
workers' piece files, with ``/proc`` telling which pieces a process of the run still has open
(see ``components.image_example_gen.staging``). No TensorFlow or Beam.
"""
import glob
import json
import os
from typing import Dict, List, Optional, Sequence, Set

from components.image_example_gen import staging
from pipeline.progress_render import Progress

SPLIT_PREFIX = 'Split-'


def _descendants(pid: int) -> List[int]:
  """``pid`` and all its descendant processes (the SDK workers under multi_processing)."""
  out, todo = [], [pid]
  while todo:
    p = todo.pop()
    out.append(p)
    for children in glob.glob(f'/proc/{p}/task/*/children'):
      try:
        with open(children, encoding='ascii') as f:
          todo.extend(int(c) for c in f.read().split())
      except OSError:
        pass
  return out


def open_files_under(folder: str, pids: Sequence[int]) -> Set[str]:
  """Paths under ``folder`` that one of ``pids`` has open (Linux ``/proc/<pid>/fd``)."""
  prefix = os.path.realpath(folder) + os.sep
  found = set()
  for pid in pids:
    fd_dir = f'/proc/{pid}/fd'
    try:
      fds = os.listdir(fd_dir)
    except OSError:
      continue
    for fd in fds:
      try:
        target = os.readlink(f'{fd_dir}/{fd}')
      except OSError:
        continue
      if target.startswith(prefix):
        found.add(target)
  return found


class StagingProgress:
  """A Poll for ImageExampleGen: rows of chunks done / rows planned, from the staging folder of
  the execution started at or after ``since`` (epoch seconds) under ``examples_dir``
  (``<pipeline root>/ImageExampleGen/examples``).

  The check pass writes one records file per chunk (``records/``) and the write pass one piece
  per chunk (``pieces/``); each is created when its chunk starts and closed when it is
  complete, and counts as done once it exists and no process of this run (this one and its
  descendants) has it open -- exact, not a guess from sizes; its name says how many rows it
  holds (``staging.records_name``, ``staging.piece_name``). The bar shows the check pass (where
  the images are read, checked and serialized), or the write pass once that is further along.
  Without ``/proc`` (not Linux) a file counts when it appears (at most one chunk per worker
  early).
  """

  def __init__(self, examples_dir: str, since: float, pid: int = 0):
    self._examples_dir = examples_dir
    self._since = since
    self._pid = pid or os.getpid()
    self._staging: Optional[str] = None
    self._total: Optional[int] = None  # rows in the plan, once it is complete
    self._done: Dict[str, Dict[str, int]] = {}  # {folder: {file name: rows}}
    self._proc = os.path.isdir('/proc/self/fd')

  def _find_staging(self) -> Optional[str]:
    newest = None
    for plan in glob.glob(os.path.join(glob.escape(self._examples_dir), '*', staging.STAGING_DIR,
                                       staging.PLAN_FILE)):
      try:
        mtime = os.stat(plan).st_mtime
      except OSError:
        continue
      if mtime >= self._since - 1 and (newest is None or mtime > newest[0]):
        newest = (mtime, os.path.dirname(plan))
    return newest and newest[1]

  def _read_plan(self) -> None:
    total = 0
    with open(os.path.join(self._staging, staging.PLAN_FILE), encoding='utf-8') as f:
      for line in f:
        total += len(json.loads(line)[4])
    self._total = total

  def __call__(self) -> Optional[Progress]:
    if self._staging is None:
      self._staging = self._find_staging()
      if self._staging is None:
        return None
    if not os.path.isdir(self._staging):  # published (or failed): staging removed
      return self._result(final=True)
    folders = [os.path.join(self._staging, d) for d in (staging.RECORDS_DIR, staging.PIECES_DIR)]
    if self._total is None:
      # The plan is complete once the job writes files, or (earlier, while Beam starts) once
      # no process of the run has it open any more.
      plan = os.path.join(self._staging, staging.PLAN_FILE)
      if not any(os.path.isdir(d) for d in folders) and (
          not self._proc or os.path.realpath(plan) in open_files_under(
              self._staging, _descendants(self._pid))):
        return None
      self._read_plan()
    for folder in folders:
      self._count(folder)
    if glob.glob(os.path.join(glob.escape(self._staging), SPLIT_PREFIX + '*')):
      return self._result(final=True)  # shards assembled: every chunk was written
    return self._result(final=False)

  def _count(self, folder: str) -> None:
    try:
      names = os.listdir(folder)
    except OSError:
      return
    writing = set()
    if self._proc:
      writing = {os.path.basename(p) for p in open_files_under(folder, _descendants(self._pid))}
    done = self._done.setdefault(folder, {})
    for name in names:
      if name not in writing and name not in done:
        done[name] = staging.piece_rows(name)

  def _result(self, final: bool) -> Optional[Progress]:
    if self._total is None:
      return None
    rows = max((sum(d.values()) for d in self._done.values()), default=0)
    done = self._total if final else min(rows, self._total)
    return (done, self._total, 'rows')
