"""``cxr-tfx report``: rebuilds ClassBalance's reports from ML Metadata.

Finds ClassBalance's execution in the pipeline's newest run (contexts and events only: works on
MLMD 1.16 and 1.21), that execution's statistics/examples/schema inputs and thresholds, and
runs the same scan and evaluation again into a folder of the user's choice.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional, Tuple

import apache_beam as beam
from ml_metadata.proto import metadata_store_pb2

from components.class_balance import config as config_lib
from components.class_balance import executor
from components.class_balance import spec
from components.errors import CxrError
from components.image_example_gen import span_resolvers
from pipeline import configs
from pipeline import mlmd

_Event = metadata_store_pb2.Event


class ReportError(CxrError, ValueError):
  pass


@dataclasses.dataclass
class ReportInputs:
  statistics_uri: str
  split_names: Tuple[str, ...]
  examples_uri: str
  schema_uri: str
  config: config_lib.BalanceConfig
  # spans: the earlier spans' Examples the execution compared with, and its own span
  previous_examples: Tuple[Any, ...] = ()
  current_span: int = 0


def _value(v: metadata_store_pb2.Value):
  kind = v.WhichOneof('value')
  return getattr(v, kind) if kind else None


def latest_inputs(metadata_path: str,
                  pipeline_name: str = configs.PIPELINE_NAME) -> ReportInputs:
  """The inputs and thresholds of ClassBalance's execution in the pipeline's newest run."""
  store = mlmd.open_store(metadata_path)
  try:
    run = mlmd.latest_run(store, pipeline_name)
    execution = mlmd.run_execution(store, run, pipeline_name, configs.CLASS_BALANCE)
  except mlmd.NotInStore as e:
    raise ReportError(f'{metadata_path}: {e} Run the pipeline first (cxr-tfx run).') from e
  if execution is None:
    raise ReportError(f'{metadata_path}: run {run.name!r} of {pipeline_name!r} has no finished '
                      'ClassBalance execution; run the pipeline first (cxr-tfx run).')
  inputs: Dict[str, metadata_store_pb2.Artifact] = {}
  previous = []  # (uri, span, version, artifact id) of every previous_examples input
  for event in store.get_events_by_execution_ids([execution.id]):
    if event.type in (_Event.INPUT, _Event.DECLARED_INPUT) and event.path.steps:
      artifact = store.get_artifacts_by_id([event.artifact_id])[0]
      inputs[event.path.steps[0].key] = artifact
      if event.path.steps[0].key == spec.PREVIOUS_EXAMPLES_KEY:
        previous.append((artifact.uri,
                         mlmd.int_property(artifact, span_resolvers.SPAN_PROPERTY) or 0,
                         mlmd.int_property(artifact, span_resolvers.VERSION_PROPERTY) or 0,
                         artifact.id))
  missing = {spec.STATISTICS_KEY, spec.EXAMPLES_KEY, spec.SCHEMA_KEY} - set(inputs)
  if missing:
    raise ReportError(f'execution {execution.id} has no recorded input(s) {sorted(missing)}.')
  props = {k: _value(v) for k, v in execution.custom_properties.items()}
  props.update({k: _value(v) for k, v in execution.properties.items()})
  props.pop(spec.FAIL_ON_IMBALANCE_KEY, None)  # a rebuild reports; it never stops the run
  props.pop(spec.FAIL_ON_DRIFT_KEY, None)
  config = executor.config_from_exec_properties(props)  # older executions: defaults
  stats = inputs[spec.STATISTICS_KEY]
  return ReportInputs(
      statistics_uri=stats.uri,
      split_names=tuple(json.loads(stats.properties['split_names'].string_value)),
      examples_uri=inputs[spec.EXAMPLES_KEY].uri, schema_uri=inputs[spec.SCHEMA_KEY].uri,
      config=config, previous_examples=tuple(previous),
      current_span=mlmd.int_property(inputs[spec.EXAMPLES_KEY],
                                     span_resolvers.SPAN_PROPERTY) or 0)


def rebuild(metadata_path: str, out_dir: str,
            config: Optional[config_lib.BalanceConfig] = None,
            pipeline_name: str = configs.PIPELINE_NAME):
  """-> (BalanceResult, {'json': path, 'html': path}) written under ``out_dir``."""
  found = latest_inputs(metadata_path, pipeline_name)
  return executor.run(found.statistics_uri, found.split_names, found.examples_uri,
                      found.schema_uri, out_dir, config or found.config, beam.Pipeline,
                      previous_examples=found.previous_examples,
                      current_span=found.current_span)


SCHEMA_DIFF_FILE = 'SchemaDiff.pb'  # ExampleValidator's per-split Anomalies (TFX 1.16 executor)


def validator_result(metadata_path: str, run_id: str,
                     pipeline_name: str = configs.PIPELINE_NAME) -> Dict[str, List[str]]:
  """ExampleValidator's verdict in a run: {split: ['<feature>: <description>', ...]}, an empty
  list for a split without anomalies. Read from the run's anomalies artifact (ML Metadata) and
  its Split-<name>/SchemaDiff.pb files."""
  import tensorflow as tf  # loaded by the run already
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  from tfx.types import standard_component_specs
  store = mlmd.open_store(metadata_path)
  artifact = mlmd.run_output(store, mlmd.run_by_name(store, run_id), pipeline_name,
                             configs.EXAMPLE_VALIDATOR, standard_component_specs.ANOMALIES_KEY)
  out = {}
  for split in json.loads(artifact.properties['split_names'].string_value):
    path = '/'.join([artifact.uri.rstrip('/'), f'Split-{split}', SCHEMA_DIFF_FILE])
    with tf.io.gfile.GFile(path, 'rb') as f:
      anomalies = anomalies_pb2.Anomalies.FromString(f.read())
    found = [f'{name}: {info.short_description or info.description}'
             for name, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      found.append(f'(dataset): {info.short_description or info.description}')
    out[split] = found
  return out
