"""Nothing left behind by runs that are gone (the lock that makes that safe: root_lock.py).

TFX's LocalDagRunner marks an execution FAILED when its executor raises, but an error in a
driver (a bad CSV found while fingerprinting), a kill, or a failing ML Metadata commit leaves
the execution RUNNING and its output folder (``<root>/<component>/<output key>/<execution
id>``) on disk, unpublished. ``run_local`` cleans before each run (``clean_abandoned``: what
killed runs left) and when its run fails (``clean_after_failure``: its own), both only while it
holds the lock: then no other run of this root or store is alive, so every unfinished execution
and unpublished folder belongs to a run that is gone, or to this run after its own failure.
Without the lock, a second run's cleanup would fail a live run's executions and delete its
outputs (issue #29, defect 5).

Published artifacts are never touched: only folders named after an execution that ML Metadata
records as not finished (or does not know), and that no artifact in the store points at, are
removed.
"""
import contextlib
import os
import shutil
from typing import List, Tuple

from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline import mlmd
from pipeline.root_lock import hold  # noqa: F401 (re-export)
from pipeline.root_lock import Holder  # noqa: F401 (re-export)
from pipeline.root_lock import LOCK_FILE  # noqa: F401 (re-export)
from pipeline.root_lock import RootInUse  # noqa: F401 (re-export)
from pipeline.root_lock import RootLock

FAILURE_PROPERTY = 'cxr_failure'  # why cxr-tfx marked the execution FAILED
ABANDONED = 'abandoned: the run that started it ended without finishing it'
_State = metadata_store_pb2.Execution
_UNFINISHED = (_State.NEW, _State.RUNNING, _State.UNKNOWN)
_FINISHED_OK = (_State.COMPLETE, _State.CACHED)


def clean_abandoned(lock: RootLock, pipeline_name: str) -> Tuple[List[int], List[str]]:
  """Marks the pipeline's unfinished executions FAILED and removes unpublished outputs ->
  (execution ids, removed paths). Only with ``lock`` held (checked): then their runs are gone."""
  lock.check()
  reason = ABANDONED
  if lock.previous is not None:
    reason += (f'; the last run to hold the lock, {lock.previous.describe(holding=False)}, '
               'ended without releasing it (killed?)')
  failed = fail_unfinished(lock.metadata_path, pipeline_name, reason)
  return failed, remove_unpublished_outputs(lock.pipeline_root, lock.metadata_path)


def clean_after_failure(lock: RootLock, pipeline_name: str, error: BaseException) -> None:
  """Marks this run's unfinished executions FAILED and removes their outputs, with ``lock``
  held (checked); a failure here (e.g. the store's disk is full) must not hide the run's own
  error."""
  lock.check()
  try:
    fail_unfinished(lock.metadata_path, pipeline_name,
                    f'{type(error).__name__}: {error}'.strip())
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    remove_unpublished_outputs(lock.pipeline_root, lock.metadata_path)
  except Exception:  # pylint: disable=broad-except
    pass


def fail_unfinished(metadata_path: str, pipeline_name: str, reason: str) -> List[int]:
  """Marks the pipeline's NEW/RUNNING executions FAILED with ``reason`` -> their ids. Every
  one of them: call it only while holding the lock (``clean_abandoned``), or when no run of
  the store can be alive."""
  if not mlmd.exists(metadata_path):
    return []
  store = mlmd.open_store(metadata_path, read_only=False)
  pipeline = store.get_context_by_type_and_name(mlmd.PIPELINE_CONTEXT, pipeline_name)
  if pipeline is None:
    return []
  stale = [e for e in store.get_executions_by_context(pipeline.id)
           if e.last_known_state in _UNFINISHED]
  for e in stale:
    e.last_known_state = _State.FAILED
    e.custom_properties[FAILURE_PROPERTY].string_value = reason[:2000]
  if stale:
    with _absl_errors_only():  # a store that cannot be written is reported by the caller once
      store.put_executions(stale)
  return [e.id for e in stale]


@contextlib.contextmanager
def _absl_errors_only():
  """ML Metadata's client logs each failed write as an absl WARNING before raising."""
  from absl import logging
  before = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(before)


def remove_unpublished_outputs(pipeline_root: str, metadata_path: str) -> List[str]:
  """Removes ``<root>/<component>/<key>/<execution id>`` folders of executions that did not
  finish (or that the store does not know) and that no artifact points at -> removed paths.
  Call it only while holding the lock (``clean_abandoned``): a live run's output is unpublished
  until its execution finishes."""
  if '://' in pipeline_root or not os.path.isdir(pipeline_root):
    return []  # local roots only: object stores are cleaned by lifecycle rules
  store = mlmd.open_store(metadata_path) if mlmd.exists(metadata_path) else None
  published = {os.path.normpath(a.uri) for a in store.get_artifacts()} if store else set()
  removed = []
  for component in sorted(os.listdir(pipeline_root)):
    component_dir = os.path.join(pipeline_root, component)
    if (component.startswith('.') or component == configs.SERVING_MODEL_DIR
        or not os.path.isdir(component_dir)):
      continue  # the Pusher's <root>/serving_model/<version>/ are pushed models, not outputs
    for key in sorted(os.listdir(component_dir)):
      key_dir = os.path.join(component_dir, key)
      if key.startswith('.') or not os.path.isdir(key_dir):
        continue
      for name in sorted(os.listdir(key_dir)):
        path = os.path.normpath(os.path.join(key_dir, name))
        if not name.isdigit() or path in published or not os.path.isdir(path):
          continue
        found = store.get_executions_by_id([int(name)]) if store else []
        if found and found[0].last_known_state in _FINISHED_OK:
          continue
        # Not finished: FAILED, or left RUNNING by a run that ended (killed, or its store could
        # not record the end); no other run is alive while the lock is held (module docstring).
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
  return removed
