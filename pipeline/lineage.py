"""Lineage from ML Metadata: an artifact back to the ingestion inputs, and forward to consumers.

Walks events only (``get_events_by_artifact_ids`` / ``get_events_by_execution_ids``), which
MLMD 1.16 and 1.21 both have; ``get_lineage_subgraph`` and filter queries are not used.
A cached execution appears in ML Metadata as its own execution (state CACHED) whose outputs are
the reused artifacts. The chain shows each artifact's producer once, with the cached executions
that reused it folded into one ``reused by`` line, and consumers likewise (executions of one
component with the same outputs are one consumer): it does not grow with every cached rerun.
"""
import json
import os
from typing import Any, Dict, List, Optional, Set, Tuple

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.errors import CxrError
from pipeline.configs import LINEAGE_TYPES as LATEST_TYPES
from pipeline.configs import PIPELINE_NAME

# Execution properties worth showing: where the data came from and how it was cut.
INGESTION_PROPERTIES = ('input_base', 'input_config', 'input_fingerprint', 'class_mapping',
                        'seed', 'output_config', 'on_bad_record', 'group_column', 'duplicates')
# Artifact custom properties worth showing: a blessing's verdict, where a model was pushed.
PUSHED_DESTINATION = 'pushed_destination'  # TFX Pusher's (components/trainer/spec.py)
ARTIFACT_PROPERTIES = ('blessed', 'pushed', PUSHED_DESTINATION)
FORMAT_SERVING = 'Format-Serving'  # a Trainer Model artifact's SavedModel folder
_Event = metadata_store_pb2.Event
_STATE = metadata_store_pb2.Execution.State


class LineageError(CxrError, ValueError):
  pass


# --latest also takes the producing component's id: its output of that kind.
PRODUCERS = {component: key for component, key in LATEST_TYPES.values()}


def latest_choices() -> List[str]:
  """What --latest accepts: a kind (examples, ..., balance) or a producer's component id."""
  return sorted(LATEST_TYPES) + sorted(PRODUCERS)


def latest_target(latest: str) -> Tuple[str, str]:
  """--latest KIND or COMPONENT -> (producing component id, output key)."""
  if latest in LATEST_TYPES:
    return LATEST_TYPES[latest]
  if latest in PRODUCERS:
    return latest, PRODUCERS[latest]
  raise LineageError(f'--latest must be one of {latest_choices()}, got {latest!r}.')


def _value(v: metadata_store_pb2.Value) -> Any:
  kind = v.WhichOneof('value')
  return getattr(v, kind) if kind else None


class Lineage:
  """Reads lineage around one artifact from a metadata store."""

  def __init__(self, store: metadata_store.MetadataStore):
    self._store = store
    self._artifact_types: Dict[int, str] = {}
    self._execution_types: Dict[int, str] = {}

  def resolve(self, artifact_uri: str = '', latest: str = '',
              pipeline_name: str = PIPELINE_NAME) -> metadata_store_pb2.Artifact:
    """The artifact with that URI (a relative local path is taken from the current folder), or
    what the --latest kind's producing component output in the pipeline's newest run.

    A served model's folder works too: a pushed ``<serving dir>/<version>`` is the PushedModel
    whose ``pushed_destination`` it is, a ``<model>/Format-Serving`` the Trainer's Model."""
    if artifact_uri:
      if '://' not in artifact_uri:
        artifact_uri = os.path.abspath(artifact_uri)
      return self._by_location(artifact_uri.rstrip('/'))
    component_id, output_key = latest_target(latest)
    from pipeline import mlmd
    try:
      run = mlmd.latest_run(self._store, pipeline_name)
      return mlmd.run_output(self._store, run, pipeline_name, component_id, output_key)
    except mlmd.NotInStore as e:
      raise LineageError(str(e)) from e

  def _by_location(self, location: str) -> metadata_store_pb2.Artifact:
    artifacts = self._store.get_artifacts()
    matches = [a for a in artifacts if a.uri.rstrip('/') == location]
    if not matches and os.path.basename(location) == FORMAT_SERVING:
      parent = os.path.dirname(location)
      matches = [a for a in artifacts if a.uri.rstrip('/') == parent]
    if not matches:
      matches = [a for a in artifacts if PUSHED_DESTINATION in a.custom_properties
                 and str(_value(a.custom_properties[PUSHED_DESTINATION])).rstrip('/') == location]
    if matches:
      return matches[-1]
    pushed = sorted(str(_value(a.custom_properties[PUSHED_DESTINATION])) for a in artifacts
                    if PUSHED_DESTINATION in a.custom_properties
                    and str(_value(a.custom_properties[PUSHED_DESTINATION])).startswith(
                        location + '/'))
    if pushed:
      raise LineageError(f'{location!r} is a serving folder; give one of its pushed models: '
                         f'{", ".join(pushed[-5:])}.')
    raise LineageError(f'no artifact with URI {location!r} in the metadata store (nor a model '
                       'pushed there).')

  def _artifact_type(self, a: metadata_store_pb2.Artifact) -> str:
    if a.type_id not in self._artifact_types:
      self._artifact_types[a.type_id] = self._store.get_artifact_types_by_id([a.type_id])[0].name
    return self._artifact_types[a.type_id]

  def _execution_type(self, e: metadata_store_pb2.Execution) -> str:
    if e.type_id not in self._execution_types:
      self._execution_types[e.type_id] = self._store.get_execution_types_by_id(
          [e.type_id])[0].name
    return self._execution_types[e.type_id]

  def _artifact_node(self, a: metadata_store_pb2.Artifact) -> Dict[str, Any]:
    node = dict(id=a.id, type=self._artifact_type(a), uri=a.uri,
                state=metadata_store_pb2.Artifact.State.Name(a.state))
    shown = {k: _value(a.custom_properties[k]) for k in ARTIFACT_PROPERTIES
             if k in a.custom_properties}
    if shown:
      node['properties'] = shown
    return node

  def _execution_node(self, e: metadata_store_pb2.Execution) -> Dict[str, Any]:
    props = {k: _value(e.custom_properties[k]) for k in INGESTION_PROPERTIES
             if k in e.custom_properties}
    return dict(id=e.id, component=self._execution_type(e).rsplit('.', 1)[-1],
                state=_STATE.Name(e.last_known_state), properties=props)

  def upstream(self, artifact: metadata_store_pb2.Artifact,
               seen: Optional[Set[int]] = None) -> Dict[str, Any]:
    """{artifact, produced_by: [{execution, inputs: [upstream(...)]}]}, back to the sources."""
    seen = set() if seen is None else seen
    node = self._artifact_node(artifact)
    node['produced_by'] = []
    if artifact.id in seen:
      return node
    seen.add(artifact.id)
    producers = sorted({e.execution_id for e in self._store.get_events_by_artifact_ids(
        [artifact.id]) if e.type in (_Event.OUTPUT, _Event.DECLARED_OUTPUT)})
    executions = self._store.get_executions_by_id(producers)
    made = [e for e in executions if e.last_known_state != _STATE.CACHED] or executions[:1]
    node['reused_by'] = [e.id for e in executions if e.id not in {m.id for m in made}]
    for execution in made:
      inputs = sorted({e.artifact_id for e in self._store.get_events_by_execution_ids(
          [execution.id]) if e.type in (_Event.INPUT, _Event.DECLARED_INPUT)})
      exe = self._execution_node(execution)
      exe['inputs'] = [self.upstream(a, seen) for a in self._store.get_artifacts_by_id(inputs)]
      node['produced_by'].append(exe)
    return node

  def downstream(self, artifact: metadata_store_pb2.Artifact,
                 seen: Optional[Set[int]] = None) -> List[Dict[str, Any]]:
    """[{execution, outputs: [{artifact, consumed_by: [...]}]}] for every consumer."""
    seen = set() if seen is None else seen
    if artifact.id in seen:
      return []
    seen.add(artifact.id)
    consumers = sorted({e.execution_id for e in self._store.get_events_by_artifact_ids(
        [artifact.id]) if e.type in (_Event.INPUT, _Event.DECLARED_INPUT)})
    out = []
    shown: Dict[Tuple[str, Tuple[int, ...]], Dict[str, Any]] = {}  # (component, outputs) -> node
    for execution in sorted(self._store.get_executions_by_id(consumers),
                            key=lambda e: (e.last_known_state == _STATE.CACHED, e.id)):
      outputs = tuple(sorted({e.artifact_id for e in self._store.get_events_by_execution_ids(
          [execution.id]) if e.type in (_Event.OUTPUT, _Event.DECLARED_OUTPUT)}))
      key = (self._execution_type(execution), outputs)
      if key in shown:  # the same component making the same outputs: a cached rerun
        shown[key]['reused_by'].append(execution.id)
        continue
      exe = self._execution_node(execution)
      exe['reused_by'] = []
      exe['outputs'] = []
      for a in self._store.get_artifacts_by_id(list(outputs)):
        child = self._artifact_node(a)
        child['consumed_by'] = self.downstream(a, seen)
        exe['outputs'].append(child)
      shown[key] = exe
      out.append(exe)
    return sorted(out, key=lambda e: e['id'])

  def chain(self, artifact: metadata_store_pb2.Artifact) -> Dict[str, Any]:
    return dict(artifact=self._artifact_node(artifact), upstream=self.upstream(artifact),
                downstream=self.downstream(artifact))


def format_chain(chain: Dict[str, Any]) -> str:
  """Indented text: the upstream tree (with ingestion inputs), then consumers."""
  lines = []

  def artifact_line(a, depth, arrow):
    lines.append(f'{"  " * depth}{arrow} {a["type"]} #{a["id"]} {a["uri"]}')
    for k, v in a.get('properties', {}).items():
      lines.append(f'{"  " * (depth + 1)}{k}: {v}')

  def execution_lines(e, depth, verb):
    lines.append(f'{"  " * depth}{verb} {e["component"]} (execution #{e["id"]}, {e["state"]})')
    for k, v in e['properties'].items():
      text = v if not isinstance(v, str) else ' '.join(v.split())
      lines.append(f'{"  " * (depth + 1)}{k}: {text}')

  def reused(ids, depth):
    if ids:
      listed = ', '.join(f'#{i}' for i in ids)
      lines.append(f'{"  " * depth}reused by {len(ids)} cached execution(s): {listed}')

  def up(node, depth):
    artifact_line(node, depth, '●' if depth == 0 else '↑')
    for i, e in enumerate(node['produced_by']):
      execution_lines(e, depth + 1, 'produced by')
      if not i:
        reused(node.get('reused_by', []), depth + 2)
      for child in e['inputs']:
        up(child, depth + 2)

  def down(executions, depth):
    for e in executions:
      execution_lines(e, depth, 'consumed by')
      reused(e.get('reused_by', []), depth + 1)
      for a in e['outputs']:
        artifact_line(a, depth + 1, '↓')
        down(a['consumed_by'], depth + 2)

  up(chain['upstream'], 0)
  if chain['downstream']:
    lines.append('downstream:')
    down(chain['downstream'], 1)
  return '\n'.join(lines)


def to_json(chain: Dict[str, Any]) -> str:
  return json.dumps(chain, indent=1, sort_keys=True, default=str)
