"""``cxr-tfx report``: rebuilds ClassBalance's reports from the latest artifacts in ML Metadata.

Finds the newest ClassBalance output, the execution that produced it (events only: works on
MLMD 1.16 and 1.21), that execution's statistics/examples/schema inputs and thresholds, and
runs the same scan and evaluation again into a folder of the user's choice.
"""
import dataclasses
import json
from typing import Dict, Optional, Tuple

import apache_beam as beam
from ml_metadata.proto import metadata_store_pb2

from components.class_balance import config as config_lib
from components.class_balance import executor
from components.class_balance import spec
from pipeline import mlmd

_Event = metadata_store_pb2.Event


class ReportError(ValueError):
  pass


@dataclasses.dataclass
class ReportInputs:
  statistics_uri: str
  split_names: Tuple[str, ...]
  examples_uri: str
  schema_uri: str
  config: config_lib.BalanceConfig


def _value(v: metadata_store_pb2.Value):
  kind = v.WhichOneof('value')
  return getattr(v, kind) if kind else None


def latest_inputs(metadata_path: str) -> ReportInputs:
  """The inputs and thresholds of the execution behind the newest ClassBalance output."""
  store = mlmd.sqlite_store(metadata_path)
  output = mlmd.latest_artifact(store, 'ExampleAnomalies', with_property=spec.VERDICT_PROPERTY)
  if output is None:
    raise ReportError(f'{metadata_path} holds no ClassBalance output; run the pipeline first '
                      '(cxr-tfx run).')
  producers = [e.execution_id for e in store.get_events_by_artifact_ids([output.id])
               if e.type in (_Event.OUTPUT, _Event.DECLARED_OUTPUT)]
  execution = store.get_executions_by_id(producers[:1])[0]
  inputs: Dict[str, metadata_store_pb2.Artifact] = {}
  for event in store.get_events_by_execution_ids([execution.id]):
    if event.type in (_Event.INPUT, _Event.DECLARED_INPUT) and event.path.steps:
      inputs[event.path.steps[0].key] = store.get_artifacts_by_id([event.artifact_id])[0]
  missing = {spec.STATISTICS_KEY, spec.EXAMPLES_KEY, spec.SCHEMA_KEY} - set(inputs)
  if missing:
    raise ReportError(f'execution {execution.id} has no recorded input(s) {sorted(missing)}.')
  props = {k: _value(v) for k, v in execution.custom_properties.items()}
  props.update({k: _value(v) for k, v in execution.properties.items()})
  config = config_lib.BalanceConfig(
      max_linf=float(props.get(spec.MAX_LINF_KEY, config_lib.DEFAULT_MAX_LINF)),
      max_js=float(props.get(spec.MAX_JS_KEY, config_lib.DEFAULT_MAX_JS)),
      min_count_per_class=int(props.get(spec.MIN_COUNT_PER_CLASS_KEY,
                                        config_lib.DEFAULT_MIN_COUNT_PER_CLASS)),
      near_full_mask=float(props.get(spec.NEAR_FULL_MASK_KEY, config_lib.DEFAULT_NEAR_FULL_MASK)))
  stats = inputs[spec.STATISTICS_KEY]
  return ReportInputs(
      statistics_uri=stats.uri,
      split_names=tuple(json.loads(stats.properties['split_names'].string_value)),
      examples_uri=inputs[spec.EXAMPLES_KEY].uri, schema_uri=inputs[spec.SCHEMA_KEY].uri,
      config=config)


def rebuild(metadata_path: str, out_dir: str,
            config: Optional[config_lib.BalanceConfig] = None):
  """-> (BalanceResult, {'json': path, 'html': path}) written under ``out_dir``."""
  found = latest_inputs(metadata_path)
  return executor.run(found.statistics_uri, found.split_names, found.examples_uri,
                      found.schema_uri, out_dir, config or found.config, beam.Pipeline)
