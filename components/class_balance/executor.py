"""ClassBalance's executor: validates exec properties, runs the scan, evaluates, writes."""
import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from absl import logging
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import options
from components.class_balance import config as config_lib
from components.class_balance import drift as drift_lib
from components.class_balance import image_findings
from components.class_balance import measure
from components.class_balance import report
from components.class_balance import scan
from components.class_balance import spec
from components.image_example_gen import span_resolvers
from components.image_example_gen.summary import GROUP_SPLITS_FILE
from components.image_example_gen.summary import IngestSummary
from components.image_example_gen.summary import SUMMARY_FILE

STATS_FILE = 'FeatureStats.pb'  # StatisticsGen's binary DatasetFeatureStatisticsList per split
BASELINE_SCAN_DIR = '.baseline_scan'  # under the output artifact: the baseline's scan, removed

def config_from_exec_properties(exec_properties: Mapping[str, Any]) -> config_lib.BalanceConfig:
  """-> a validated BalanceConfig (ConfigError names the bad option); keys an older execution
  lacks (read back by `cxr-tfx report`) take the field's default."""
  return options.from_exec_properties(config_lib.BalanceConfig, exec_properties)


def exec_properties_from_config(config: config_lib.BalanceConfig) -> Dict[str, Any]:
  """The component's exec properties for ``config`` (ints for the flags)."""
  return options.to_exec_properties(config)


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


def load_group_splits(examples_uri: str) -> Optional[drift_lib.GroupSplits]:
  """ImageExampleGen's ``group_splits.json`` next to the shards, or None (no group column,
  or an ImageExampleGen from before spans)."""
  path = os.path.join(examples_uri, GROUP_SPLITS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return drift_lib.GroupSplits.from_json(f.read())


def example_split_names(examples_uri: str) -> List[str]:
  """The splits of an Examples folder, from its ``Split-<name>`` folders (sorted)."""
  return sorted(os.path.basename(p.rstrip('/'))[len('Split-'):]
                for p in tf.io.gfile.glob(os.path.join(examples_uri, 'Split-*'))
                if tf.io.gfile.isdir(p))


def load_drift_inputs(examples_uri: str, current_span: int,
                      previous: Sequence[drift_lib.SpanExamples], output_uri: str,
                      config: config_lib.BalanceConfig, make_pipeline) -> drift_lib.DriftInputs:
  """Reads what the comparison with earlier spans needs: every earlier span's
  group_splits.json and, for the baseline (the newest earlier span), its ingest summary and a
  scan of its shard files -- a second Beam job, the same ``scan.ScanShards`` without
  thumbnails or duplicate grouping, in a scratch folder under the output that is removed."""
  inputs = drift_lib.DriftInputs(current_span=current_span, previous=list(previous))
  earlier = drift_lib.earlier_spans(previous, current_span)
  if not earlier:
    return inputs
  inputs.current_groups = load_group_splits(examples_uri)
  inputs.earlier_groups = {p: load_group_splits(p.uri) for p in earlier}
  baseline = earlier[-1]
  inputs.baseline_summary = load_summary(baseline.uri)
  logging.info('ClassBalance: span %d vs the baseline span %d (version %d, %s)', current_span,
               baseline.span, baseline.version, baseline.uri)
  scratch = os.path.join(output_uri, BASELINE_SCAN_DIR)
  try:
    found = scan.run_scan(baseline.uri, example_split_names(baseline.uri), scratch,
                          config.coverage_sample, config.near_full_mask, make_pipeline,
                          emit_hashes=False, thumbnails=False)
  finally:
    if tf.io.gfile.exists(scratch):
      tf.io.gfile.rmtree(scratch)
  inputs.baseline_class_stats = found.class_stats
  inputs.baseline_errors = list(found.errors)
  return inputs


def run(stats_uri: str, split_names: Sequence[str], examples_uri: str, schema_uri: str,
        output_uri: str, config: config_lib.BalanceConfig, make_pipeline,
        previous_examples: Iterable[Any] = (), current_span: int = 0):
  """Scan + evaluate + write: the executor's work, also used by ``cxr-tfx report``.

  ``previous_examples``: the Examples of earlier spans, each a ``drift.SpanExamples`` or a
  tuple (uri, span[, version[, artifact id]]) (or a mapping with those keys); the largest span
  (then version, then id) before ``current_span`` is the drift baseline, and every one before
  it is checked for groups leaking into this span's train split. None: no drift findings.
  Returns (BalanceResult, {'json': path, 'html': path})."""
  stats, schema = load_inputs(stats_uri, split_names, schema_uri)
  summary = load_summary(examples_uri)
  previous = [drift_lib.SpanExamples.of(p) for p in previous_examples or ()]
  found = scan.run_scan(examples_uri, list(stats), output_uri, config.coverage_sample,
                        config.near_full_mask, make_pipeline, emit_hashes=summary is None,
                        listed_ids=image_findings.read(summary).thumbnail_ids())
  drift_inputs = load_drift_inputs(examples_uri, current_span, previous, output_uri, config,
                                   make_pipeline)
  result = measure.evaluate(stats, found, schema, config, summary, drift_inputs)
  return result, report.write(result, output_uri, schema)


def span_of(artifact: types.Artifact) -> drift_lib.SpanExamples:
  """An Examples artifact's uri, span, version (as ImageExampleGen's span resolvers read them;
  0 when absent) and id."""
  return drift_lib.SpanExamples(artifact.uri, span_resolvers.span_of(artifact),
                                max(span_resolvers.version_of(artifact), 0),
                                int(artifact.id or 0))


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
  drift = result.drift
  artifact.set_int_custom_property(spec.DRIFT_BASELINE_SPAN_PROPERTY,
                                   drift.baseline.span if drift.baseline else -1)
  artifact.set_float_custom_property(spec.DRIFT_LINF_PROPERTY,
                                     drift.class_mix.linf if drift.class_mix else 0.0)
  artifact.set_float_custom_property(spec.DRIFT_JS_PROPERTY,
                                     drift.class_mix.js if drift.class_mix else 0.0)
  artifact.set_int_custom_property(spec.DRIFTED_PROPERTY, int(drift.drifted))
  artifact.set_int_custom_property(spec.SPAN_LEAKAGE_PROPERTY, result.span_leakage)
  artifact.set_int_custom_property(spec.RESENT_IMAGES_PROPERTY, result.resent_images)
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
    previous = [span_of(a) for a in input_dict.get(spec.PREVIOUS_EXAMPLES_KEY) or []]

    result, paths = run(stats_artifact.uri,
                        artifact_utils.decode_split_names(stats_artifact.split_names),
                        examples.uri, schema_uri, anomalies.uri, config,
                        self._make_beam_pipeline, previous_examples=previous,
                        current_span=span_of(examples).span)
    anomalies.split_names = stats_artifact.split_names
    anomalies.span = stats_artifact.span
    set_properties(anomalies, result, paths)
    if report.stops_the_run(result):
      # A failed execution's output folder is removed (pipeline/cleanup.py: nothing unfinished
      # is left behind); the reports that explain the failure are kept beside it.
      paths = report.keep_reports(paths, report.failed_reports_dir(anomalies.uri))
    report.raise_if_imbalanced(result, paths['html'])
    report.raise_if_drifted(result, paths['html'])
