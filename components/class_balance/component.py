"""ClassBalance: is every split and every shard file class-balanced, leak-free and intact?"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.class_balance import config as config_lib
from components.class_balance import executor
from components.class_balance import spec


class ClassBalance(base_beam_component.BaseBeamComponent):
  """Checks class balance per split and per shard against the whole dataset.

  Inputs: StatisticsGen's ``statistics`` (split class counts), ImageExampleGen's ``examples``
  (the shard files, scanned once for per-shard counts, content hashes and image statistics)
  and the curated ``schema`` (class labels and names).

  Output ``anomalies`` (ExampleAnomalies): ``Split-<name>/SchemaDiff.pb`` in TFDV's format
  (TFDV's L-infinity and Jensen-Shannon drift measurements for the split and each shard, and
  an anomaly for every failed check), plus ``balance_report.json`` and ``balance_report.html``
  (verdict, per-unit measures, per-shard class chart, duplicates across splits, per-class image
  and mask statistics, TFDV's statistics view).
  """

  SPEC_CLASS = spec.ClassBalanceSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, statistics: types.BaseChannel, examples: types.BaseChannel,
               schema: types.BaseChannel,
               config: Optional[config_lib.BalanceConfig] = None):
    """Args:
      statistics: ExampleStatistics of ``examples``, computed with ``schema``.
      examples: ImageExampleGen's Examples.
      schema: the curated schema (``class``: categorical int_domain 0..K-1, "<k>=<name>" tags).
      config: thresholds and ``fail_on_imbalance``; see ``BalanceConfig``.
    """
    config = config or config_lib.BalanceConfig()
    super().__init__(spec=spec.ClassBalanceSpec(**{
        spec.STATISTICS_KEY: statistics,
        spec.EXAMPLES_KEY: examples,
        spec.SCHEMA_KEY: schema,
        spec.MAX_LINF_KEY: config.max_linf,
        spec.MAX_JS_KEY: config.max_js,
        spec.MIN_COUNT_PER_CLASS_KEY: config.min_count_per_class,
        spec.FAIL_ON_IMBALANCE_KEY: int(config.fail_on_imbalance),
        spec.NEAR_FULL_MASK_KEY: config.near_full_mask,
        spec.ANOMALIES_KEY: types.Channel(type=standard_artifacts.ExampleAnomalies),
    }))
