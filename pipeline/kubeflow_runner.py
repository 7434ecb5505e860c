"""Compiles ``create_pipeline`` for Kubeflow Pipelines v2 with TFX's KubeflowV2DagRunner.

``.yaml`` output is the pipeline-spec IR for open-source KFP (and loads as a component of a
user's own KFP pipeline with ``kfp.components.load_component_from_file``); ``.json`` output is
a Vertex AI PipelineJob. Components are referenced by module path, so their code comes from
the container image (see the Dockerfile): no ``module_file`` wheels are built at compile time.
"""
import os
from typing import Optional, Sequence

from tfx import v1 as tfx

from components.class_balance.config import BalanceConfig
from components.image_example_gen.config import IngestConfig
from components.transform.config import TransformConfig
from pipeline import configs
from pipeline.pipeline import create_pipeline


def compile_pipeline(output: str, image: str, pipeline_root: str, csv_path: str,
                     ingest_config: IngestConfig, schema_path: str = configs.IMAGE_SCHEMA_FILE,
                     balance_config: Optional[BalanceConfig] = None,
                     transform_config: Optional[TransformConfig] = None,
                     beam_pipeline_args: Sequence[str] = (),
                     fingerprint_content: bool = False) -> str:
  """Writes the compiled pipeline to ``output`` and returns its path."""
  pipeline = create_pipeline(
      pipeline_name=configs.PIPELINE_NAME, pipeline_root=pipeline_root, csv_path=csv_path,
      ingest_config=ingest_config, schema_path=schema_path, balance_config=balance_config,
      transform_config=transform_config,
      metadata_connection_config=None,  # KFP provides the store
      beam_pipeline_args=beam_pipeline_args, fingerprint_content=fingerprint_content)
  output = os.path.abspath(output)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
      output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
  runner.run(pipeline, write_out=True)
  return output
