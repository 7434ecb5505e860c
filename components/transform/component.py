"""The stock TFX Transform, configured for image records."""
from typing import Optional, Sequence

from tfx import v1 as tfx
from tfx.types import BaseChannel

from components.transform import config as config_lib


def make_transform(examples: BaseChannel, schema: BaseChannel,
                   config: Optional[config_lib.TransformConfig] = None,
                   split_names: Sequence[str] = ()) -> tfx.components.Transform:
  """Transform with the project's preprocessing_fn (by module path) and deliberate sizes:
  no materialisation and no statistics by default (see ``TransformConfig``).

  TFX's Transform analyses the 'train' split; when ``split_names`` (the Examples' splits, in
  order) has none, it analyses the first one instead and transforms them all (the graph has no
  analyzers: decoding needs no statistics, so which split is analysed does not change it)."""
  config = config or config_lib.TransformConfig()
  splits_config = None
  if split_names and TRAIN_SPLIT not in split_names:
    splits_config = tfx.proto.SplitsConfig(analyze=[split_names[0]],
                                           transform=list(split_names))
  return tfx.components.Transform(
      examples=examples, schema=schema, preprocessing_fn=config_lib.PREPROCESSING_FN,
      custom_config=config.to_custom_config(), materialize=config.materialize,
      disable_statistics=config.disable_statistics, splits_config=splits_config)


TRAIN_SPLIT = 'train'  # what TFX's Transform analyses by default
