"""The split membership published by earlier runs of a pipeline's ImageExampleGen, found
through ML Metadata (the node's context, its executions' OUTPUT events, the Examples they
published) -- never "the newest artifact of a type".

Every Examples artifact ImageExampleGen publishes carries the URI of its ``split_manifest.json``
and the number of images it names (the manifest is cumulative: a run's manifest holds its
prior's entries and its own). The driver records on the artifact, too, what decided the run:
a digest of its resolved exec properties (inputs' fingerprint included), the prior manifest it
was given and whether it started over.

``previous_manifest`` picks the prior of a new run:

* Since the newest run that started over (``fresh_splits``), inclusive: older manifests were
  discarded by it.
* An earlier run with the same digest (same inputs, same options) had a prior: the same prior
  is given again, so TFX's cache key is the same and an unchanged rerun is a cache hit. Its
  outputs agree with every later manifest, because membership only grows (nothing published
  ever changes split, except by starting over, which ends the search).
* Otherwise the manifest naming the most images (the newest on a tie): with cumulative
  manifests that is the newest complete run's.
"""
import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT_TYPE = 'node'  # TFX's context type of a pipeline node (all its executions)
EXAMPLES_KEY = 'examples'
# Custom properties the driver sets on the output Examples (the executor adds the manifest's).
EXEC_DIGEST_PROPERTY = 'cxr_exec_digest'
PRIOR_MANIFEST_PROPERTY = 'cxr_prior_split_manifest'
FRESH_SPLITS_PROPERTY = 'cxr_fresh_splits'
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def exec_digest(exec_properties: Dict[str, Any], leave_out: str) -> str:
  """sha256 of the resolved exec properties (all but ``leave_out``) as text."""
  canonical = {k: str(v) for k, v in exec_properties.items() if k != leave_out and v is not None}
  return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode('utf-8')).hexdigest()


def _string(artifact: metadata_store_pb2.Artifact, name: str) -> str:
  value = artifact.custom_properties.get(name)
  return value.string_value if value is not None else ''


def _int(artifact: metadata_store_pb2.Artifact, name: str) -> int:
  value = artifact.custom_properties.get(name)
  if value is None:
    return 0
  return value.int_value or int(value.double_value)


def published_examples(store, pipeline_name: str, node_id: str
                       ) -> List[metadata_store_pb2.Artifact]:
  """The LIVE Examples the node published in any run of the pipeline, oldest first."""
  context = store.get_context_by_type_and_name(NODE_CONTEXT_TYPE, f'{pipeline_name}.{node_id}')
  if context is None:
    return []
  executions = [e.id for e in store.get_executions_by_context(context.id)
                if e.last_known_state in _DONE]
  if not executions:
    return []
  ids = sorted({e.artifact_id for e in store.get_events_by_execution_ids(executions)
                if e.type in _OUTPUT_EVENTS and e.path.steps
                and e.path.steps[0].key == EXAMPLES_KEY})
  return sorted((a for a in store.get_artifacts_by_id(ids)
                 if a.state == metadata_store_pb2.Artifact.LIVE), key=lambda a: a.id)


def previous_manifest(artifacts: List[metadata_store_pb2.Artifact], digest: str,
                      manifest_property: str, images_property: str) -> Optional[str]:
  """The prior for a run whose exec digest is ``digest``, given the node's published Examples
  (oldest first): see the module doc. '' when nothing was published since the last start-over
  (or ever)."""
  since = _since_fresh(artifacts)
  for a in reversed(since):
    if _string(a, EXEC_DIGEST_PROPERTY) == digest:
      return _string(a, PRIOR_MANIFEST_PROPERTY)
  return latest_manifest(since, manifest_property, images_property)[0]


def _since_fresh(artifacts: List[metadata_store_pb2.Artifact]
                 ) -> List[metadata_store_pb2.Artifact]:
  fresh = [i for i, a in enumerate(artifacts) if _int(a, FRESH_SPLITS_PROPERTY)]
  return artifacts[fresh[-1]:] if fresh else artifacts


def latest_manifest(artifacts: List[metadata_store_pb2.Artifact], manifest_property: str,
                    images_property: str) -> Tuple[str, int]:
  """(the URI, the image count) of the manifest naming the most images (the newest on a tie)
  since the newest start-over; ('', 0) when there is none."""
  with_manifest = [a for a in _since_fresh(artifacts) if _string(a, manifest_property)]
  if not with_manifest:
    return '', 0
  best = max(with_manifest, key=lambda a: (_int(a, images_property), a.id))
  return _string(best, manifest_property), _int(best, images_property)
