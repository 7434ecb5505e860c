"""Reading the ML Metadata store (SQLite by default) with APIs present in MLMD 1.16 and 1.21.

Artifacts are resolved through the run that made them, never as "the newest artifact of a
type": TFX records every execution in a ``pipeline`` context (the pipeline's name), a
``pipeline_run`` context (one per run, a child of the pipeline's) and a ``node`` context
(``<pipeline>.<component id>``). An artifact is found as the output (by output key) of the
component's execution in that run, so two pipelines, or two runs of one pipeline, sharing a
store each read their own; a cached execution is recorded in the run that reused it, with
output events to the reused artifacts, so a cached run resolves too.
"""
import os
import time
from typing import Dict, List, Optional, Tuple

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.errors import CxrError
from pipeline import metadata_store as store_lib

PIPELINE_CONTEXT = 'pipeline'
RUN_CONTEXT = 'pipeline_run'
NODE_CONTEXT = 'node'
_Event = metadata_store_pb2.Event
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


class NotInStore(CxrError, LookupError):
  """What was asked for is not in the metadata store; the message says what and where."""


def open_store(location: str, read_only: bool = True) -> metadata_store.MetadataStore:
  """The store at ``location``: a SQLite file or a mysql:// server (pipeline/metadata_store.py);
  a server that cannot be used is a CxrError naming it and --metadata. Two clients creating an
  empty database's tables at once fail with a retry request or a deadlock: retried."""
  if not store_lib.is_server(location):
    return sqlite_store(location, read_only)
  config = store_lib.connection_config(location)
  error: Exception = RuntimeError('no attempt')
  for attempt in range(_CONNECT_ATTEMPTS):
    try:
      return metadata_store.MetadataStore(config)
    except Exception as e:  # pylint: disable=broad-except  (MLMD's own status errors)
      error = e
      if not any(word in str(e).lower() for word in _TRANSIENT):
        break
      time.sleep(0.5 * (attempt + 1))
  first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
  raise CxrError(f'cannot use the ML Metadata store {store_lib.describe(location)}: '
                 f'{first_line} (option --metadata; the password comes from '
                 f'{store_lib.PASSWORD_ENV} or the file named by {store_lib.PASSWORD_FILE_ENV}).'
                 ) from error


_CONNECT_ATTEMPTS = 8  # about 14 s of retries while another client creates the tables
# What MySQL/MariaDB and MLMD say when two clients create an empty database's tables at once:
# MLMD's "Please retry the connection", the server's deadlock "try restarting transaction".
_TRANSIENT = ('retry', 'restarting transaction', 'deadlock')


def exists(location: str) -> bool:
  """Whether there may be a store to read: a SQLite file that exists, or any server."""
  return store_lib.is_server(location) or os.path.exists(location)


def sqlite_store(path: str, read_only: bool = True) -> metadata_store.MetadataStore:
  return metadata_store.MetadataStore(store_lib.connection_config(path, read_only))


def runs(store: metadata_store.MetadataStore,
         pipeline_name: str) -> List[metadata_store_pb2.Context]:
  """The pipeline's runs (``pipeline_run`` contexts), oldest first."""
  pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
  if pipeline is None:
    return []
  return sorted((c for c in store.get_children_contexts_by_context(pipeline.id)
                 if c.type == RUN_CONTEXT or _type_name(store, c) == RUN_CONTEXT),
                key=lambda c: (c.create_time_since_epoch, c.id))


def _type_name(store: metadata_store.MetadataStore, context: metadata_store_pb2.Context) -> str:
  return store.get_context_types_by_id([context.type_id])[0].name


def latest_run(store: metadata_store.MetadataStore,
               pipeline_name: str) -> metadata_store_pb2.Context:
  """The pipeline's newest run, by creation time: for commands that ask for "the newest run"
  (report, lineage --latest). A run reads back its own results by its id (``run_by_name``),
  never by time: another run's context may be newer."""
  found = runs(store, pipeline_name)
  if not found:
    raise NotInStore(f'no run of pipeline {pipeline_name!r} in the metadata store'
                     ' (option --pipeline-name names the pipeline).')
  return found[-1]


def run_execution(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context,
                  pipeline_name: str, component_id: str
                  ) -> Optional[metadata_store_pb2.Execution]:
  """The component's finished (complete or cached) execution in this run, if any."""
  node = store.get_context_by_type_and_name(NODE_CONTEXT, f'{pipeline_name}.{component_id}')
  if node is None:
    return None
  in_node = {e.id for e in store.get_executions_by_context(node.id)}
  done = [e for e in store.get_executions_by_context(run.id)
          if e.id in in_node and e.last_known_state in _DONE]
  return max(done, key=lambda e: (e.create_time_since_epoch, e.id), default=None)


def run_output(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context,
               pipeline_name: str, component_id: str,
               output_key: str) -> metadata_store_pb2.Artifact:
  """The artifact a component produced (or reused, when cached) under ``output_key`` in a run."""
  execution = run_execution(store, run, pipeline_name, component_id)
  if execution is None:
    raise NotInStore(f'run {run.name!r} of pipeline {pipeline_name!r} has no finished '
                     f'{component_id} execution.')
  ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
         if e.type in (_Event.OUTPUT, _Event.DECLARED_OUTPUT) and e.path.steps
         and e.path.steps[0].key == output_key]
  if not ids:
    raise NotInStore(f'{component_id} (execution {execution.id}) in run {run.name!r} has no '
                     f'output {output_key!r}.')
  return store.get_artifacts_by_id(ids[:1])[0]


def int_property(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[int]:
  """An int custom property of an artifact (TFX's ExampleGen driver records span/version
  there), else the declared property of that name, else None."""
  for props in (artifact.custom_properties, artifact.properties):
    if name in props:
      return props[name].int_value
  return None


def run_by_name(store: metadata_store.MetadataStore,
                run_id: str) -> metadata_store_pb2.Context:
  """The ``pipeline_run`` context named ``run_id`` (RunResult.run_id): a run's identity."""
  run = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
  if run is None:
    raise NotInStore(f'no run {run_id!r} in the metadata store.')
  return run


def execution_seconds(execution: metadata_store_pb2.Execution) -> float:
  """From registration to the last update (publication, for a finished execution): the
  component's driver, executor and publisher, as ML Metadata's timestamps record them."""
  return max(0.0, (execution.last_update_time_since_epoch
                   - execution.create_time_since_epoch) / 1000)


def _node_of(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution,
             pipeline_name: str) -> str:
  """The component id of an execution, from its ``node`` context ``<pipeline>.<component>``."""
  prefix = f'{pipeline_name}.'
  for context in store.get_contexts_by_execution(execution.id):
    if context.name.startswith(prefix) and _type_name(store, context) == NODE_CONTEXT:
      return context.name[len(prefix):]
  return ''


def component_times(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context,
                    pipeline_name: str) -> List[Tuple[str, str, float]]:
  """[(component id, 'COMPLETE' | 'CACHED' | ..., seconds)] of every execution in the run, in
  the order they were registered."""
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: (e.create_time_since_epoch, e.id))
  return [(_node_of(store, e, pipeline_name),
           metadata_store_pb2.Execution.State.Name(e.last_known_state), execution_seconds(e))
          for e in executions]


def _rows_of(store: metadata_store.MetadataStore, execution_id: int,
             rows_property: str) -> Optional[int]:
  """The rows of the Examples an execution read or wrote (their ``rows_property``), if any."""
  ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id])]
  for artifact in store.get_artifacts_by_id(ids):
    if rows_property in artifact.custom_properties:
      return int(artifact.custom_properties[rows_property].int_value)
  return None


def expected_seconds(store: metadata_store.MetadataStore, pipeline_name: str,
                     rows: Optional[int] = None, rows_property: str = '',
                     max_runs: int = 20) -> Dict[str, float]:
  """{component id: seconds} of its newest COMPLETE (not cached) execution in the pipeline's
  last ``max_runs`` runs, scaled by ``rows`` / the rows of the Examples it read or wrote
  (``rows_property``) when both are known: a rough expectation for progress lines, not a
  measurement."""
  out = {}
  for run in reversed(runs(store, pipeline_name)[-max_runs:]):
    for e in sorted(store.get_executions_by_context(run.id),
                    key=lambda e: (e.create_time_since_epoch, e.id), reverse=True):
      if e.last_known_state != metadata_store_pb2.Execution.COMPLETE:
        continue
      component = _node_of(store, e, pipeline_name)
      if not component or component in out:
        continue
      seconds = execution_seconds(e)
      then = _rows_of(store, e.id, rows_property) if rows and rows_property else None
      out[component] = seconds * rows / then if then else seconds
  return out
