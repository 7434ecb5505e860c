"""Nothing left behind: unfinished executions are marked FAILED, unpublished outputs removed.

TFX's LocalDagRunner marks an execution FAILED when its executor raises, but an error in a
driver (a bad CSV found while fingerprinting), a kill, or a failing ML Metadata commit leaves
the execution RUNNING and its output folder (``<root>/<component>/<output key>/<execution
id>``) on disk, unpublished. ``run_local`` calls these before each run (for what killed runs
left) and when a run fails (for its own), in the one process that owns the store: like
LocalDagRunner, it assumes one run at a time per metadata store.

Published artifacts are never touched: only folders named after an execution that ML Metadata
records as not finished (or does not know), and that no artifact in the store points at, are
removed.
"""
import contextlib
import os
import shutil
from typing import List

from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from pipeline import mlmd

FAILURE_PROPERTY = 'cxr_failure'  # why cxr-tfx marked the execution FAILED
_State = metadata_store_pb2.Execution
_UNFINISHED = (_State.NEW, _State.RUNNING, _State.UNKNOWN)
_FINISHED_OK = (_State.COMPLETE, _State.CACHED)


def fail_unfinished(metadata_path: str, pipeline_name: str, reason: str) -> List[int]:
  """Marks the pipeline's NEW/RUNNING executions FAILED with ``reason`` -> their ids."""
  if not os.path.exists(metadata_path):
    return []
  store = mlmd.sqlite_store(metadata_path, read_only=False)
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
  finish (or that the store does not know) and that no artifact points at -> removed paths."""
  if '://' in pipeline_root or not os.path.isdir(pipeline_root):
    return []  # local roots only: object stores are cleaned by lifecycle rules
  store = mlmd.sqlite_store(metadata_path) if os.path.exists(metadata_path) else None
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
        # not record the end); runs of one store do not overlap (module docstring).
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
  return removed
