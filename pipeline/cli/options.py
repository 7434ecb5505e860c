"""The options' argparse types, and options -> the components' configs (IngestConfig,
BalanceConfig, TransformConfig, Beam args): shared by `validate`, `run` and `compile`. No
TensorFlow."""
import argparse
import os
from typing import Dict, List, Sequence, Tuple

from components.class_balance import config as balance_config_lib
from components.image_example_gen import config as config_lib
from components.image_example_gen import spans as spans_lib
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


def _int_at_least(minimum: int, what: str):
  """An argparse type: an int >= ``minimum``, else an error saying ``what`` was expected."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = minimum - 1
    if value < minimum:
      raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value
  return parse


_non_negative_int = _int_at_least(0, 'an integer >= 0')
_positive_int = _int_at_least(1, 'a positive integer')


def _pipeline_name(text: str) -> str:
  try:
    return configs.validate_pipeline_name(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from e


def _transform_config(args):
  from components.transform.config import ConfigError, TransformConfig  # pylint: disable=g-import-not-at-top
  try:
    height, width = (int(v) for v in args.image_size.lower().split('x'))
  except ValueError as e:
    raise ConfigError(f'--image-size {args.image_size!r} must be HxW, e.g. 256x256.') from e
  return TransformConfig(image_size=(height, width), channels=args.channels,
                         materialize=args.materialize)


def _balance_config(args) -> balance_config_lib.BalanceConfig:
  return balance_config_lib.BalanceConfig(
      max_linf=args.max_linf, max_js=args.max_js, min_count_per_class=args.min_count_per_class,
      fail_on_imbalance=args.fail_on_imbalance, max_class_ratio=args.max_class_ratio,
      max_mask_presence_gap=args.max_mask_presence_gap, coverage_sample=args.coverage_sample,
      warnings_as_errors=args.warnings_as_errors, max_drift_linf=args.max_drift_linf,
      max_drift_js=args.max_drift_js, fail_on_drift=args.fail_on_drift)


def _ingest_config(args, mapping_path: str) -> config_lib.IngestConfig:
  """``mapping_path`` '' means no mapping: an image folder's sorted class folders."""
  _check_split_args(args)
  return config_lib.IngestConfig(
      class_mapping=_load_mapping(mapping_path) if mapping_path else {},
      splits=config_lib.parse_splits(args.splits),
      seed=args.seed, on_bad_record=args.on_bad_record, max_pixels=args.max_pixels,
      group_column=args.group_column, duplicates=args.duplicates, verify=args.verify,
      max_file_bytes=args.max_file_bytes, dicom_window=args.dicom_window,
      dicom_output=args.dicom_output, allow_burned_in=args.allow_burned_in,
      group_salt=args.group_salt, mask_check=args.mask_check, mask_size=args.mask_size,
      group_assignment=args.group_assignment or (
          config_lib.GROUP_ASSIGNMENT_STABLE if args.csv and spans_lib.has_span_spec(args.csv)
          else config_lib.GROUP_ASSIGNMENT_BALANCED),
      allowed_roots=tuple(a if '://' in a else os.path.abspath(a) for a in args.allowed_root),
      split_manifest=(args.split_manifest if not args.split_manifest or _is_uri(args.split_manifest)
                      else os.path.abspath(args.split_manifest)),
      fresh_splits=args.fresh_splits)


def _check_split_args(args) -> None:
  """--split-manifest and --fresh-splits contradict each other: refused before any work."""
  if args.split_manifest and args.fresh_splits:
    raise config_lib.ConfigError(
        'give --split-manifest (keep the split membership it publishes) or --fresh-splits '
        '(ignore published membership and deal every image afresh), not both.')


def _load_mapping(path: str):
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as e:
    raise config_lib.ConfigError(f'cannot read the class mapping {path}: {e.strerror} '
                                 '(option --class-mapping).') from e
  return config_lib.load_class_mapping_text(text, path)


def _is_uri(path: str) -> bool:
  return '://' in path  # files.is_uri's rule (files imports numpy: not before the first line)
