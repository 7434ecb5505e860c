"""Runs ``create_pipeline`` with TFX's LocalDagRunner and a SQLite ML Metadata store.

The runner only builds paths and calls ``create_pipeline``; what it returns is read back from
the metadata store, so the summary is what ML Metadata recorded.
"""
import dataclasses
import os
from typing import List, Sequence, Tuple

from components.image_example_gen import index
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.summary import IngestSummary
from pipeline import configs
from pipeline import progress


@dataclasses.dataclass
class RunResult:
  pipeline_root: str
  metadata_path: str
  examples_uri: str
  summary: IngestSummary
  components: List[Tuple[str, float, bool]]  # (component id, seconds, cached)


def run_local(pipeline_root: str, csv_path: str, ingest_config: IngestConfig,
              metadata_path: str = '',
              beam_pipeline_args: Sequence[str] = (), enable_cache: bool = True,
              fingerprint_content: bool = False, verbose: bool = False) -> RunResult:
  """Runs the pipeline locally and returns what the metadata store recorded."""
  progress.quiet_native_logs()
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top  (heavy)
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
      ingest_config=ingest_config,
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
  return RunResult(pipeline_root, metadata_path, examples.uri, summary, reporter.finished)
