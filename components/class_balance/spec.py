"""ClassBalance's component spec: every input, output and exec-property key, in one place."""
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components import options
from components.class_balance.config import BalanceConfig

STATISTICS_KEY = standard_component_specs.STATISTICS_KEY  # ExampleStatistics (StatisticsGen)
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY  # Examples (ImageExampleGen)
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY  # Schema (CuratedSchemaGen)
# Optional Examples, zero or more: the newest artifact of every earlier span (span < this one)
# of the same ImageExampleGen. The largest span (then version, then artifact id) is the
# baseline of the drift checks; every one's group_splits.json is checked for leakage.
PREVIOUS_EXAMPLES_KEY = 'previous_examples'
ANOMALIES_KEY = standard_component_specs.ANOMALIES_KEY  # ExampleAnomalies (output)

# Exec properties: one per BalanceConfig option (the key is the field's name;
# components/options.py encodes them). The keys other modules read:
MAX_LINF_KEY = options.key(BalanceConfig, 'max_linf')
MAX_JS_KEY = options.key(BalanceConfig, 'max_js')
MIN_COUNT_PER_CLASS_KEY = options.key(BalanceConfig, 'min_count_per_class')
FAIL_ON_IMBALANCE_KEY = options.key(BalanceConfig, 'fail_on_imbalance')
MAX_CLASS_RATIO_KEY = options.key(BalanceConfig, 'max_class_ratio')
WARNINGS_AS_ERRORS_KEY = options.key(BalanceConfig, 'warnings_as_errors')
MAX_DRIFT_LINF_KEY = options.key(BalanceConfig, 'max_drift_linf')
MAX_DRIFT_JS_KEY = options.key(BalanceConfig, 'max_drift_js')
FAIL_ON_DRIFT_KEY = options.key(BalanceConfig, 'fail_on_drift')

# Custom properties set on the output ExampleAnomalies artifact.
# Per-class training weights, JSON {"<label>": weight}: inverse class frequency over the weights
# split ('train', else the first split), normalized so the weighted mean over its examples is 1;
# 0.0 for a class with no example there. A Trainer reads exactly this property.
CLASS_WEIGHTS_PROPERTY = 'class_weights'
VERDICT_PROPERTY = 'cxr_balance_verdict'  # one line: both verdicts and the other findings
STRATIFIED_PROPERTY = 'cxr_stratified'  # int 1/0: splits and shards match the whole
STRATIFICATION_VERDICT_PROPERTY = 'cxr_stratification_verdict'
CLASSES_BALANCED_PROPERTY = 'cxr_classes_balanced'  # int 1/0: ratio <= max_class_ratio
CLASS_BALANCE_VERDICT_PROPERTY = 'cxr_class_balance_verdict'
# Kept for readers of older runs: the same value as STRATIFIED_PROPERTY (it never meant "the
# classes are balanced").
BALANCED_PROPERTY = 'cxr_balanced'
FINDINGS_PROPERTY = 'cxr_findings'  # int: findings of every kind and severity
ERRORS_PROPERTY = 'cxr_errors'  # int: findings of severity error
WARNINGS_PROPERTY = 'cxr_warnings'  # int: findings of severity warning
IMBALANCE_RATIO_PROPERTY = 'cxr_imbalance_ratio'  # float: largest / smallest class
# Drift from the baseline span (the newest earlier one) and group leakage across spans.
DRIFT_BASELINE_SPAN_PROPERTY = 'cxr_drift_baseline_span'  # int: its span; -1 without one
DRIFT_LINF_PROPERTY = 'cxr_drift_linf'  # float: class mix L-infinity (0.0 without a baseline)
DRIFT_JS_PROPERTY = 'cxr_drift_js'  # float: class mix Jensen-Shannon divergence, bits
DRIFTED_PROPERTY = 'cxr_drifted'  # int 1/0: the class mix drifted beyond a threshold
SPAN_LEAKAGE_PROPERTY = 'cxr_span_leakage'  # int: train groups from an earlier non-train split
RESENT_IMAGES_PROPERTY = 'cxr_resent_images'  # int: images an earlier span had (same bytes)
HTML_REPORT_PROPERTY = 'cxr_html_report'
JSON_REPORT_PROPERTY = 'cxr_json_report'


class ClassBalanceSpec(ComponentSpec):
  """Statistics + examples + schema (+ earlier spans' examples) -> ExampleAnomalies with the
  balance reports beside it."""

  PARAMETERS = {
      # Optional: an execution recorded before an option existed reads as its default.
      key: ExecutionParameter(type=kind, optional=True)
      for key, kind in options.exec_types(BalanceConfig).items()
  }
  INPUTS = {
      STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
      PREVIOUS_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True,
                                              allow_empty=True),
  }
  OUTPUTS = {
      ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
  }
