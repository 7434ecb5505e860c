"""TFX resolver strategies over ImageExampleGen's spans, anchored on this run's span.

Each takes one channel, ``examples``: this run's Examples (ImageExampleGen's output channel,
which the run's pipeline-run context scopes to the one artifact this run produced or reused from
the cache). From that artifact it walks ML Metadata as TFX's resolvers do: its OUTPUT event ->
the producing execution -> that execution's node context (the pipeline's ImageExampleGen) ->
every complete or cached execution of the node -> their OUTPUT artifacts under the same key that
are still LIVE. It then picks by the ``span`` and ``version`` properties TFX's driver records,
relative to the current span, and returns the pick under ``examples``:

* ``PreviousSpansStrategy``: every earlier span (span < current), its newest artifact each,
  oldest first. The last is ClassBalance's drift baseline; all are checked for patients changing
  split.
* ``SpanWindowStrategy(num_spans=N)``: the newest artifact of each of the N-1 largest earlier
  spans, then the current artifact: the training window.

Why not TFX's ``SpanRangeStrategy`` with a ``RollingRange`` over a producer channel: it anchors
on the newest span in the store, not on this run's (rerunning span 2 after span 3 would read
span 3), and it returns every artifact in the range, so a span ingested twice (another seed, a
fixed CSV) would be read twice. (A second input channel on the same producer and key is no way
out: TFX 1.16's compiler gives both the same implicit key.) These depend only on the current
span and what was published before, so an unchanged rerun resolves the same inputs and stays a
cache hit.
"""
from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils

EXAMPLES_KEY = 'examples'  # the strategies' one input and output key
SPAN_PROPERTY = example_gen_utils.SPAN_PROPERTY_NAME  # TFX's ExampleGen driver sets both as
VERSION_PROPERTY = example_gen_utils.VERSION_PROPERTY_NAME  # custom properties
NODE_CONTEXT_TYPE = 'node'  # TFX's context type of a pipeline node (all its executions)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def _int_property(artifact: types.Artifact, name: str, default: int) -> int:
  """The custom property TFX's driver sets, else the declared property (Examples declares
  span and version), else ``default``."""
  if artifact.has_custom_property(name):
    return artifact.get_int_custom_property(name)
  if name in artifact.PROPERTIES and artifact.has_property(name):
    return int(getattr(artifact, name) or 0)
  return default


def span_of(artifact: types.Artifact) -> int:
  return _int_property(artifact, SPAN_PROPERTY, 0)


def version_of(artifact: types.Artifact) -> int:
  """-1 without a version (a pattern without {VERSION}): older than any version."""
  return _int_property(artifact, VERSION_PROPERTY, -1)


def newest_per_span(artifacts: List[types.Artifact]) -> Dict[int, types.Artifact]:
  """{span: its newest artifact}: highest version, then the latest published (largest id)."""
  out: Dict[int, types.Artifact] = {}
  for a in artifacts:
    span = span_of(a)
    key = (version_of(a), a.id)
    if span not in out or key > (version_of(out[span]), out[span].id):
      out[span] = a
  return out


def published_alongside(store: mlmd.MetadataStore, current: types.Artifact) -> List[types.Artifact]:
  """Every LIVE artifact the node that produced ``current`` published under the same output key,
  in any run of the pipeline (``current`` included), found through events and the node context.
  """
  events = [e for e in store.get_events_by_artifact_ids([current.id]) if e.type in _OUTPUT_EVENTS]
  if not events:
    return [current]
  key = events[0].path.steps[0].key if events[0].path.steps else ''
  node_contexts = [c for c in store.get_contexts_by_execution(events[0].execution_id)
                   if c.type == NODE_CONTEXT_TYPE]
  if not node_contexts:
    return [current]
  executions = [e.id for e in store.get_executions_by_context(node_contexts[0].id)
                if e.last_known_state in _DONE]
  ids = sorted({e.artifact_id for e in store.get_events_by_execution_ids(executions)
                if e.type in _OUTPUT_EVENTS and e.path.steps and e.path.steps[0].key == key})
  found = [a for a in store.get_artifacts_by_id(ids)
           if a.state == metadata_store_pb2.Artifact.LIVE]
  types_by_id = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in found}))}
  return [artifact_utils.deserialize_artifact(types_by_id[a.type_id], a) for a in found]


def previous_spans(current: types.Artifact, history: List[types.Artifact]) -> List[types.Artifact]:
  """The newest artifact of every span below ``current``'s, oldest span first."""
  span = span_of(current)
  earlier = newest_per_span([a for a in history if span_of(a) < span])
  return [earlier[s] for s in sorted(earlier)]


def span_window(current: types.Artifact, history: List[types.Artifact],
                num_spans: int) -> List[types.Artifact]:
  """The newest artifacts of the ``num_spans - 1`` largest spans below ``current``'s, then
  ``current``."""
  earlier = previous_spans(current, history)
  return earlier[max(0, len(earlier) - (num_spans - 1)):] + [current]


class _SpanStrategy(resolver.ResolverStrategy):
  """Resolves ``examples`` (this run's one artifact) to ``_pick(current, every artifact its
  node published)``; nothing when there is no (or no single) current artifact."""

  def _pick(self, current: types.Artifact, history: List[types.Artifact]
            ) -> List[types.Artifact]:
    raise NotImplementedError

  def resolve_artifacts(self, store: mlmd.MetadataStore,
                        input_dict: Dict[str, List[types.Artifact]]
                        ) -> Optional[Dict[str, List[types.Artifact]]]:
    current = input_dict.get(EXAMPLES_KEY) or []
    if len(current) != 1:
      return None
    return {EXAMPLES_KEY: self._pick(current[0], published_alongside(store, current[0]))}


class PreviousSpansStrategy(_SpanStrategy):
  """``examples`` -> the newest artifact of every earlier span (empty for the first span)."""

  def _pick(self, current, history):
    return previous_spans(current, history)


class SpanWindowStrategy(_SpanStrategy):
  """``examples`` -> the current artifact and the newest artifact of each of the
  ``num_spans - 1`` largest earlier spans, oldest first."""

  def __init__(self, num_spans: int):
    if isinstance(num_spans, bool) or not isinstance(num_spans, int) or num_spans < 1:
      raise ValueError(f'num_spans must be an int >= 1, got {num_spans!r} (option '
                       '--train-spans).')
    self._num_spans = num_spans

  def _pick(self, current, history):
    return span_window(current, history, self._num_spans)
