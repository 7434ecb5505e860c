"""The options' argparse types, and options -> the components' configs (IngestConfig,
BalanceConfig, TransformConfig, Beam args): shared by `validate`, `run` and `compile`. No
TensorFlow."""
import argparse
from typing import Dict, List, Optional, Sequence, Tuple

from components import options as options_lib
from components.class_balance import config as balance_config_lib
from components.errors import ConfigError
from components.errors import special_file
from components.image_example_gen import config as config_lib
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig
from pipeline import configs


def _component_beam_arg(text: str) -> Tuple[str, str]:
  """'ImageExampleGen=--direct_num_workers=2' -> ('ImageExampleGen', '--direct_num_workers=2')."""
  component_id, sep, arg = text.partition('=')
  if not sep or not arg:
    raise argparse.ArgumentTypeError(
        f'expected COMPONENT=ARG, e.g. ImageExampleGen=--direct_num_workers=2, got {text!r}; '
        f'COMPONENT is one of {", ".join(configs.BEAM_COMPONENT_IDS)}')
  if component_id not in configs.beam_component_ids(train=True):
    raise argparse.ArgumentTypeError(configs.unknown_beam_component_message(component_id, True))
  return component_id, arg


def _component_beam_args(pairs: Sequence[Tuple[str, str]],
                         train: bool = False) -> Dict[str, List[str]]:
  """[(component, arg), ...] in command-line order -> {component: [arg, ...]}; the Evaluator's
  only with --train."""
  result: Dict[str, List[str]] = {}
  for component_id, arg in pairs:
    if component_id not in configs.beam_component_ids(train):
      raise configs.PipelineConfigError(
          f'--beam-arg-for: {configs.unknown_beam_component_message(component_id, train)}')
    result.setdefault(component_id, []).append(arg)
  return result


_non_negative_int = options_lib.non_negative_int
_positive_int = options_lib.positive_int


def _pipeline_name(text: str) -> str:
  try:
    return configs.validate_pipeline_name(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from e


def _pipeline_options(args, pipeline_root: str, **given) -> configs.PipelineOptions:
  """The pipeline-level flags `run` and `compile` share (``given``: what the command decides)."""
  return configs.PipelineOptions(
      pipeline_root=pipeline_root, pipeline_name=args.pipeline_name,
      beam_pipeline_args=tuple(args.beam_arg),
      component_beam_args=_component_beam_args(args.beam_arg_for, args.train),
      serving_model_dir=args.serving_dir or '', **given)


def _transform_config(args) -> TransformConfig:
  return options_lib.from_args(TransformConfig, args)


def _train_config(args) -> Optional[TrainConfig]:
  """The Trainer's options with --train, else None (no training); a training flag without
  --train is an error, not silently ignored."""
  if args.train:
    return options_lib.from_args(TrainConfig, args)
  given = [o.flag for f, o in options_lib.options_of(TrainConfig)
           if o.flag and getattr(args, options_lib.dest(o)) != f.default]
  given += ['--serving-dir'] if args.serving_dir else []
  if given:
    raise ConfigError(f'{", ".join(given)} only with --train (add --train, or drop '
                      f'{"them" if len(given) > 1 else "it"}).')
  return None


def _balance_config(args) -> balance_config_lib.BalanceConfig:
  return options_lib.from_args(balance_config_lib.BalanceConfig, args)


def _ingest_config(args, mapping_path: str) -> config_lib.IngestConfig:
  """``mapping_path`` '' means no mapping: an image folder's sorted class folders."""
  _check_split_args(args)
  config = options_lib.from_args(
      config_lib.IngestConfig, args,
      class_mapping=_load_mapping(mapping_path) if mapping_path else {})
  return config.for_input(args.csv or '')


def _check_split_args(args) -> None:
  """--split-manifest and --fresh-splits contradict each other: refused before any work."""
  if args.split_manifest and args.fresh_splits:
    raise config_lib.ConfigError(
        'give --split-manifest (keep the split membership it publishes) or --fresh-splits '
        '(ignore published membership and deal every image afresh), not both.')


def _load_mapping(path: str):
  special = special_file(path)
  if special:
    raise config_lib.ConfigError(f'the class mapping {path} is {special}; give a regular JSON '
                                 'file (option --class-mapping).')
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as e:
    raise config_lib.ConfigError(f'cannot read the class mapping {path}: {e.strerror} '
                                 '(option --class-mapping).') from e
  return config_lib.load_class_mapping_text(text, path)


def _is_uri(path: str) -> bool:
  return '://' in path  # files.is_uri's rule (files imports numpy: not before the first line)
