"""Runs ``create_pipeline`` with TFX's LocalDagRunner and a SQLite ML Metadata store.

The runner only builds paths and calls ``create_pipeline``; what it returns is read back from
the metadata store, so the summary is what ML Metadata recorded.
"""
import dataclasses
import json
import os
from typing import List, Optional, Sequence, Tuple

from components.class_balance.config import BalanceConfig

from components.image_example_gen import index
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.summary import IngestSummary
from components.transform.config import TransformConfig
from pipeline import configs
from pipeline import progress


@dataclasses.dataclass
class RunResult:
  pipeline_root: str
  metadata_path: str
  examples_uri: str
  summary: IngestSummary
  components: List[Tuple[str, float, bool]]  # (component id, seconds, cached)
  balance_verdict: str  # ClassBalance's one-line verdict
  balanced: bool  # no balance findings
  balance_report: str  # path of ClassBalance's HTML report
  balance_findings: List[str]  # one line per finding ('<kind>: <message>')


def run_local(pipeline_root: str, csv_path: str, ingest_config: IngestConfig,
              metadata_path: str = '', balance_config: Optional[BalanceConfig] = None,
              transform_config: Optional[TransformConfig] = None,
              schema_path: str = configs.SCHEMA_FILE,
              beam_pipeline_args: Sequence[str] = (), enable_cache: bool = True,
              fingerprint_content: bool = False, verbose: bool = False) -> RunResult:
  """Runs the pipeline locally and returns what the metadata store recorded."""
  progress.quiet_native_logs()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (heavy)
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top  (heavy)
  from components.class_balance import spec as balance_spec  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import spec  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  from pipeline.pipeline import create_pipeline  # pylint: disable=g-import-not-at-top

  if not index.is_uri(pipeline_root):
    pipeline_root = os.path.abspath(pipeline_root)
    os.makedirs(pipeline_root, exist_ok=True)
  if not index.is_uri(csv_path):
    csv_path = os.path.abspath(csv_path)
  metadata_path = os.path.abspath(
      metadata_path or os.path.join(pipeline_root, configs.METADATA_FILE))
  pipeline = create_pipeline(
      pipeline_name=configs.PIPELINE_NAME, pipeline_root=pipeline_root, csv_path=csv_path,
      ingest_config=ingest_config, schema_path=schema_path, balance_config=balance_config,
      transform_config=transform_config,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          metadata_path),
      beam_pipeline_args=beam_pipeline_args, enable_cache=enable_cache,
      fingerprint_content=fingerprint_content)
  with progress.component_progress(verbose) as reporter:
    tfx.orchestration.LocalDagRunner().run(pipeline)

  store = mlmd.sqlite_store(metadata_path)
  examples = mlmd.latest_artifact(store, 'Examples')
  if examples is None:
    raise RuntimeError(f'the run finished but {metadata_path} holds no Examples artifact.')
  summary = IngestSummary.from_json(
      examples.custom_properties[spec.SUMMARY_PROPERTY].string_value)
  balance = mlmd.latest_artifact(store, 'ExampleAnomalies',
                                 with_property=balance_spec.VERDICT_PROPERTY)
  props = balance.custom_properties
  with tf.io.gfile.GFile(props[balance_spec.JSON_REPORT_PROPERTY].string_value) as f:
    findings = [f'{x["kind"]}: {x["message"]}' for x in json.load(f)['findings']]
  return RunResult(pipeline_root, metadata_path, examples.uri, summary, reporter.finished,
                   balance_verdict=props[balance_spec.VERDICT_PROPERTY].string_value,
                   balanced=bool(props[balance_spec.BALANCED_PROPERTY].int_value),
                   balance_report=props[balance_spec.HTML_REPORT_PROPERTY].string_value,
                   balance_findings=findings)
