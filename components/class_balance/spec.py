"""ClassBalance's component spec: every input, output and exec-property key, in one place."""
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

STATISTICS_KEY = standard_component_specs.STATISTICS_KEY  # ExampleStatistics (StatisticsGen)
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY  # Examples (ImageExampleGen)
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY  # Schema (ImportSchemaGen)
ANOMALIES_KEY = standard_component_specs.ANOMALIES_KEY  # ExampleAnomalies (output)

MAX_LINF_KEY = 'max_linf'
MAX_JS_KEY = 'max_js'
MIN_COUNT_PER_CLASS_KEY = 'min_count_per_class'
FAIL_ON_IMBALANCE_KEY = 'fail_on_imbalance'  # int 0/1
NEAR_FULL_MASK_KEY = 'near_full_mask'

# Custom properties set on the output ExampleAnomalies artifact.
VERDICT_PROPERTY = 'cxr_balance_verdict'
BALANCED_PROPERTY = 'cxr_balanced'  # int 1/0: no balance findings
FINDINGS_PROPERTY = 'cxr_findings'  # int: findings of every kind
IMBALANCE_RATIO_PROPERTY = 'cxr_imbalance_ratio'  # float: largest / smallest class
HTML_REPORT_PROPERTY = 'cxr_html_report'
JSON_REPORT_PROPERTY = 'cxr_json_report'


class ClassBalanceSpec(ComponentSpec):
  """Statistics + examples + schema -> ExampleAnomalies with the balance reports beside it."""

  PARAMETERS = {
      MAX_LINF_KEY: ExecutionParameter(type=float),
      MAX_JS_KEY: ExecutionParameter(type=float),
      MIN_COUNT_PER_CLASS_KEY: ExecutionParameter(type=int),
      FAIL_ON_IMBALANCE_KEY: ExecutionParameter(type=int),
      NEAR_FULL_MASK_KEY: ExecutionParameter(type=float),
  }
  INPUTS = {
      STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }
  OUTPUTS = {
      ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
  }
