"""ClassBalance: are the splits stratified, how imbalanced are the classes, is the data intact?"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.class_balance import config as config_lib
from components.class_balance import executor
from components.class_balance import spec


class ClassBalance(base_beam_component.BaseBeamComponent):
  """Two verdicts over ImageExampleGen's output, class weights, and an offline report.

  Inputs: StatisticsGen's ``statistics`` (split class counts), ImageExampleGen's ``examples``
  (the shard files, read once in a Beam job for per-shard class counts and image/mask
  statistics, plus its ``ingest_summary.json``: records written per shard, duplicate images,
  mask checks) and the ``schema`` (class labels and names, from CuratedSchemaGen). Optional
  ``previous_examples``: the newest Examples of every earlier span of the same ImageExampleGen;
  the newest of them is the baseline that this span's class mix and image/mask statistics are
  compared with (drift), and every one's ``group_splits.json`` is checked for groups leaking
  into this span's train split.

  Output ``anomalies`` (ExampleAnomalies): ``Split-<name>/SchemaDiff.pb`` in TFDV's format
  (L-infinity and Jensen-Shannon measurements for the split and each shard, an anomaly per
  finding, ERROR or WARNING), ``balance_report.json`` and ``balance_report.html`` (self-contained:
  verdicts, findings, class counts and weights, thumbnails with masks, per-shard class
  proportions, mask statistics with coverage histograms, TFDV statistics of every split). Custom
  properties: ``class_weights`` (JSON {"<label>": weight}, for a Trainer), the verdicts, counts
  of findings, drift from the baseline span, groups leaking across spans and the report paths
  (names in ``spec.py``).
  """

  SPEC_CLASS = spec.ClassBalanceSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, statistics: types.BaseChannel, examples: types.BaseChannel,
               schema: types.BaseChannel,
               config: Optional[config_lib.BalanceConfig] = None,
               previous_examples: Optional[types.BaseChannel] = None):
    """Args:
      statistics: ExampleStatistics of ``examples``, computed with ``schema``.
      examples: ImageExampleGen's Examples.
      schema: the schema from CuratedSchemaGen (``class``: categorical int_domain 0..K-1,
        "<k>=<name>" tags).
      config: thresholds, ``fail_on_imbalance`` and the rest; see ``BalanceConfig``.
      previous_examples: Examples of earlier spans (span < this one's), e.g. from a resolver:
        zero or more artifacts. None or empty: no earlier span, no drift findings.
    """
    config = config or config_lib.BalanceConfig()
    previous = {} if previous_examples is None else {
        spec.PREVIOUS_EXAMPLES_KEY: previous_examples}
    super().__init__(spec=spec.ClassBalanceSpec(**{
        spec.STATISTICS_KEY: statistics,
        spec.EXAMPLES_KEY: examples,
        spec.SCHEMA_KEY: schema,
        **previous,
        **executor.exec_properties_from_config(config),
        spec.ANOMALIES_KEY: types.Channel(type=standard_artifacts.ExampleAnomalies),
    }))
