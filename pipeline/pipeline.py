"""``create_pipeline``: the cxr-tfx TFX pipeline as a pure function of its arguments."""
import dataclasses
from typing import Optional, Sequence

from tfx import v1 as tfx
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_component_specs as keys

from components.class_balance.component import ClassBalance
from components.class_balance.config import BalanceConfig
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.config import IngestConfig
from components.transform.component import make_transform
from components.transform.config import TransformConfig


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    csv_path: str,
    ingest_config: IngestConfig,
    schema_path: str,
    balance_config: Optional[BalanceConfig] = None,
    transform_config: Optional[TransformConfig] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    fingerprint_content: bool = False,
) -> tfx.dsl.Pipeline:
  """Builds the pipeline; runs nothing and touches no file.

  ImageExampleGen -> StatisticsGen (with the curated schema from ImportSchemaGen) ->
  ExampleValidator (schema checks per split) and ClassBalance (balance per split and shard,
  leakage, image statistics); Transform (the decode graph, for training and serving).

  Args:
    pipeline_name: also the KFP pipeline name ([a-z0-9-]).
    pipeline_root: where artifacts are written (local path, gs://, s3://, hdfs://).
    csv_path: the CSV index, absolute (or a URI).
    ingest_config: class mapping, splits and shard counts, seed, bad-record policy.
    schema_path: the curated schema.pbtxt, as the executors will see it (in the container
      image for KFP).
    balance_config: ClassBalance thresholds and fail_on_imbalance (default: BalanceConfig()).
    transform_config: output image size and channels, materialisation (default:
      TransformConfig(): 256x256x1, graph only).
    metadata_connection_config: ML Metadata store; None lets the orchestrator provide one (KFP).
    beam_pipeline_args: passed to every Beam-based component (runner, workers, ...).
    enable_cache: reuse outputs of unchanged executions. "Unchanged" covers the CSV and every
      image/mask it references (path, size, mtime; plus content with fingerprint_content).
    fingerprint_content: hash every referenced file's bytes for the cache fingerprint.
  """
  example_gen = ImageExampleGen(
      csv_path=csv_path, fingerprint_content=fingerprint_content,
      **{f.name: getattr(ingest_config, f.name) for f in dataclasses.fields(ingest_config)})
  schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs[keys.EXAMPLES_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  class_balance = ClassBalance(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], examples=example_gen.outputs[keys.EXAMPLES_KEY],
      schema=schema_gen.outputs[keys.SCHEMA_KEY], config=balance_config)
  transform = make_transform(example_gen.outputs[keys.EXAMPLES_KEY],
                             schema_gen.outputs[keys.SCHEMA_KEY], transform_config)
  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=[example_gen, schema_gen, statistics_gen, example_validator, class_balance,
                  transform],
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))
