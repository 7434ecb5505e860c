"""``create_pipeline``: the cxr-tfx TFX pipeline as a pure function of its arguments."""
import dataclasses
from typing import Optional, Sequence

from tfx import v1 as tfx
from ml_metadata.proto import metadata_store_pb2

from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.config import IngestConfig


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    csv_path: str,
    ingest_config: IngestConfig,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    fingerprint_content: bool = False,
) -> tfx.dsl.Pipeline:
  """Builds the pipeline; runs nothing and touches no file.

  Args:
    pipeline_name: also the KFP pipeline name ([a-z0-9-]).
    pipeline_root: where artifacts are written (local path, gs://, s3://, hdfs://).
    csv_path: the CSV index, absolute (or a URI).
    ingest_config: class mapping, splits and shard counts, seed, bad-record policy.
    metadata_connection_config: ML Metadata store; None lets the orchestrator provide one (KFP).
    beam_pipeline_args: passed to every Beam-based component (runner, workers, ...).
    enable_cache: reuse outputs of unchanged executions. "Unchanged" covers the CSV and every
      image/mask it references (path, size, mtime; plus content with fingerprint_content).
    fingerprint_content: hash every referenced file's bytes for the cache fingerprint.
  """
  example_gen = ImageExampleGen(
      csv_path=csv_path, fingerprint_content=fingerprint_content,
      **{f.name: getattr(ingest_config, f.name) for f in dataclasses.fields(ingest_config)})
  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=[example_gen],
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))
