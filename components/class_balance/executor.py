"""ClassBalance's executor: validates exec properties, runs the scan, evaluates, writes."""
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components.class_balance import config as config_lib
from components.class_balance import measure
from components.class_balance import report
from components.class_balance import scan
from components.class_balance import spec
from components.image_example_gen.summary import SUMMARY_FILE, IngestSummary

STATS_FILE = 'FeatureStats.pb'  # StatisticsGen's binary DatasetFeatureStatisticsList per split

# exec-property key -> (BalanceConfig field, parse); missing keys (older executions, read back
# by `cxr-tfx report`) take the field's default.
_FIELDS = {
    spec.MAX_LINF_KEY: ('max_linf', float),
    spec.MAX_JS_KEY: ('max_js', float),
    spec.MIN_COUNT_PER_CLASS_KEY: ('min_count_per_class', int),
    spec.FAIL_ON_IMBALANCE_KEY: ('fail_on_imbalance', lambda v: bool(int(v))),
    spec.NEAR_FULL_MASK_KEY: ('near_full_mask', float),
    spec.MAX_CLASS_RATIO_KEY: ('max_class_ratio', float),
    spec.MAX_MASK_PRESENCE_GAP_KEY: ('max_mask_presence_gap', float),
    spec.COVERAGE_SAMPLE_KEY: ('coverage_sample', int),
    spec.WARNINGS_AS_ERRORS_KEY: ('warnings_as_errors', lambda v: bool(int(v))),
}


def config_from_exec_properties(exec_properties: Mapping[str, Any]) -> config_lib.BalanceConfig:
  """-> a validated BalanceConfig (ConfigError names the bad option)."""
  return config_lib.BalanceConfig(**{
      field: parse(exec_properties[key]) for key, (field, parse) in _FIELDS.items()
      if exec_properties.get(key) is not None})


def exec_properties_from_config(config: config_lib.BalanceConfig) -> Dict[str, Any]:
  """The component's exec properties for ``config`` (ints for the flags)."""
  return {key: (int(getattr(config, field)) if isinstance(getattr(config, field), bool)
                else getattr(config, field)) for key, (field, _) in _FIELDS.items()}


def load_inputs(stats_uri: str, split_names: Sequence[str], schema_uri: str):
  """-> ({split: DatasetFeatureStatisticsList}, schema)."""
  stats = {split: tfdv.load_stats_binary(os.path.join(stats_uri, f'Split-{split}', STATS_FILE))
           for split in split_names}
  schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
  return stats, schema


def load_summary(examples_uri: str) -> Optional[IngestSummary]:
  """ImageExampleGen's ingest summary next to the shards, or None (other example gens)."""
  path = os.path.join(examples_uri, SUMMARY_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return IngestSummary.from_json(f.read())


def run(stats_uri: str, split_names: Sequence[str], examples_uri: str, schema_uri: str,
        output_uri: str, config: config_lib.BalanceConfig, make_pipeline):
  """Scan + evaluate + write: the executor's work, also used by ``cxr-tfx report``.
  Returns (BalanceResult, {'json': path, 'html': path})."""
  stats, schema = load_inputs(stats_uri, split_names, schema_uri)
  summary = load_summary(examples_uri)
  found = scan.run_scan(examples_uri, list(stats), output_uri, config.coverage_sample,
                        config.near_full_mask, make_pipeline, emit_hashes=summary is None)
  result = measure.evaluate(stats, found, schema, config, summary)
  return result, report.write(result, output_uri, schema)


def set_properties(artifact: types.Artifact, result: measure.BalanceResult,
                   paths: Mapping[str, str]) -> None:
  artifact.set_string_custom_property(spec.CLASS_WEIGHTS_PROPERTY,
                                      json.dumps(result.class_weights_json(), sort_keys=True))
  artifact.set_string_custom_property(spec.VERDICT_PROPERTY, result.verdict)
  artifact.set_int_custom_property(spec.STRATIFIED_PROPERTY, int(result.stratified))
  artifact.set_int_custom_property(spec.BALANCED_PROPERTY, int(result.stratified))
  artifact.set_string_custom_property(spec.STRATIFICATION_VERDICT_PROPERTY,
                                      result.stratification_verdict)
  artifact.set_int_custom_property(spec.CLASSES_BALANCED_PROPERTY, int(result.imbalance.ok))
  artifact.set_string_custom_property(spec.CLASS_BALANCE_VERDICT_PROPERTY,
                                      result.class_balance_verdict)
  artifact.set_int_custom_property(spec.FINDINGS_PROPERTY, len(result.findings))
  artifact.set_int_custom_property(spec.ERRORS_PROPERTY, len(result.errors))
  artifact.set_int_custom_property(spec.WARNINGS_PROPERTY, len(result.warnings))
  ratio = result.imbalance_ratio
  artifact.set_float_custom_property(spec.IMBALANCE_RATIO_PROPERTY,
                                     min(ratio, 1e9) if math.isfinite(ratio) else 1e9)
  artifact.set_string_custom_property(spec.HTML_REPORT_PROPERTY, paths['html'])
  artifact.set_string_custom_property(spec.JSON_REPORT_PROPERTY, paths['json'])


class Executor(base_beam_executor.BaseBeamExecutor):
  """See ``components.class_balance.component.ClassBalance``."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_from_exec_properties(exec_properties)
    stats_artifact = artifact_utils.get_single_instance(input_dict[spec.STATISTICS_KEY])
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    schema_uri = artifact_utils.get_single_uri(input_dict[spec.SCHEMA_KEY])
    anomalies = artifact_utils.get_single_instance(output_dict[spec.ANOMALIES_KEY])

    result, paths = run(stats_artifact.uri,
                        artifact_utils.decode_split_names(stats_artifact.split_names),
                        examples.uri, schema_uri, anomalies.uri, config,
                        self._make_beam_pipeline)
    anomalies.split_names = stats_artifact.split_names
    anomalies.span = stats_artifact.span
    set_properties(anomalies, result, paths)
    report.raise_if_imbalanced(result, paths['html'])
