"""The stock TFX Transform, configured for image records."""
from typing import Optional

from tfx import v1 as tfx
from tfx.types import BaseChannel

from components.transform import config as config_lib


def make_transform(examples: BaseChannel, schema: BaseChannel,
                   config: Optional[config_lib.TransformConfig] = None) -> tfx.components.Transform:
  """Transform with the project's preprocessing_fn (by module path) and deliberate sizes:
  no materialisation and no statistics by default (see ``TransformConfig``)."""
  config = config or config_lib.TransformConfig()
  return tfx.components.Transform(
      examples=examples, schema=schema, preprocessing_fn=config_lib.PREPROCESSING_FN,
      custom_config=config.to_custom_config(), materialize=config.materialize,
      disable_statistics=config.disable_statistics)
