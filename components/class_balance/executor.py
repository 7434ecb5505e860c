"""ClassBalance's executor: validates exec properties, scans the shards, evaluates, writes."""
import os
from typing import Any, Dict, List, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
import tensorflow_data_validation as tfdv

from components.class_balance import config as config_lib
from components.class_balance import report
from components.class_balance import scan
from components.class_balance import spec


def config_from_exec_properties(exec_properties: Dict[str, Any]) -> config_lib.BalanceConfig:
  """-> a validated BalanceConfig (ConfigError names the bad option)."""
  return config_lib.BalanceConfig(
      max_linf=float(exec_properties[spec.MAX_LINF_KEY]),
      max_js=float(exec_properties[spec.MAX_JS_KEY]),
      min_count_per_class=int(exec_properties[spec.MIN_COUNT_PER_CLASS_KEY]),
      fail_on_imbalance=bool(int(exec_properties[spec.FAIL_ON_IMBALANCE_KEY])),
      near_full_mask=float(exec_properties[spec.NEAR_FULL_MASK_KEY]))


STATS_FILE = 'FeatureStats.pb'  # StatisticsGen's binary DatasetFeatureStatisticsList per split


def load_inputs(stats_uri: str, split_names: Sequence[str], schema_uri: str):
  """-> ({split: DatasetFeatureStatisticsList}, schema)."""
  stats = {split: tfdv.load_stats_binary(os.path.join(stats_uri, f'Split-{split}', STATS_FILE))
           for split in split_names}
  schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
  return stats, schema


def run(stats_uri: str, split_names: Sequence[str], examples_uri: str, schema_uri: str,
        output_uri: str, config: config_lib.BalanceConfig, make_pipeline):
  """Scan + evaluate + write: the executor's work, also used by ``cxr-tfx report``."""
  stats, schema = load_inputs(stats_uri, split_names, schema_uri)
  scans = scan.run_scan(examples_uri, list(stats), os.path.join(output_uri, scan.SCAN_DIR),
                        config.near_full_mask, make_pipeline)
  result = report.evaluate(stats, scans, schema, config)
  paths = report.write(result, output_uri, stats)
  return result, paths


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
                        artifact_utils.decode_split_names(stats_artifact.split_names), examples.uri, schema_uri, anomalies.uri, config,
                        self._make_beam_pipeline)
    anomalies.split_names = stats_artifact.split_names
    anomalies.span = stats_artifact.span
    anomalies.set_string_custom_property(spec.VERDICT_PROPERTY, result.verdict)
    anomalies.set_int_custom_property(spec.BALANCED_PROPERTY, int(not result.balance_findings))
    anomalies.set_int_custom_property(spec.FINDINGS_PROPERTY, len(result.findings))
    anomalies.set_float_custom_property(spec.IMBALANCE_RATIO_PROPERTY,
                                        min(result.imbalance_ratio, 1e9))
    anomalies.set_string_custom_property(spec.HTML_REPORT_PROPERTY, paths['html'])
    anomalies.set_string_custom_property(spec.JSON_REPORT_PROPERTY, paths['json'])
    report.raise_if_imbalanced(result, paths['html'])
