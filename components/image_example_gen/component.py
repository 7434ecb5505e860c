"""ImageExampleGen: TFX's FileBasedExampleGen, with a CSV index of image files (or an image
folder without one) as its input."""
import dataclasses
import os
from typing import Any, Mapping, Optional, Union

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.proto import range_config_pb2
from tfx.types import standard_artifacts

from components import options
from components.image_example_gen import config as config_lib
from components.image_example_gen import driver
from components.image_example_gen import executor
from components.image_example_gen import spans
from components.image_example_gen import spec

INDEX_SPLIT_NAME = 'index'
IMAGE_DIR_PATTERN = driver.IMAGE_DIR_PATTERN  # an image folder's input: its class folders
RuntimeParameter = data_types.RuntimeParameter


def _default(value):
  """A RuntimeParameter's default (what is validated at construction), else the value."""
  return value.default if isinstance(value, RuntimeParameter) else value


class ImageExampleGen(FileBasedExampleGen):
  """CSV of ``image_path, mask_path, class`` (or a folder ``DIR/<class>/<images>``) -> Examples
  with class-stratified, seeded shards. Images are PNG, JPEG or DICOM (rendered to PNG).

  Output: a standard ``Examples`` artifact, ``Split-<name>/data_tfrecord-0000k-of-0000n.gz``
  (gzipped TFRecords of tf.Example{image, mask, class, image_id, image_sha256}, plus dicom_*
  and group_hash where they apply), one file per shard.
  Each split's ``hash_buckets`` is its shard count. It is a FileBasedExampleGen, so TFX's
  driver fingerprints the CSV for caching and records span/version as usual; ImageExampleGen's
  driver adds every referenced (or listed) image and mask.
  """

  SPEC_CLASS = spec.ImageExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  DRIVER_CLASS = driver.Driver

  def __init__(self, csv_path: Union[str, RuntimeParameter, None] = None,
               image_dir: Optional[str] = None,
               config: Optional[config_lib.IngestConfig] = None,
               span: Optional[int] = None,
               range_config: Optional[range_config_pb2.RangeConfig] = None,
               **option_values: Any):
    """Args:
      csv_path: the CSV index (local path or any tf.io.gfile URI such as gs://...). Relative
        image/mask paths in it resolve against its folder. A span pattern
        (``data/index-{SPAN}.csv``; also {VERSION}, {YYYY}{MM}{DD}) ingests the newest span,
        or ``span``. May be a ``RuntimeParameter`` (a KFP pipeline parameter) whose default is
        what TFX's own driver fingerprints.
      image_dir: instead of ``csv_path`` (give exactly one): a folder ``DIR/<class>/<images>``
        with optional ``DIR/<class>/masks/`` (matched by file stem), or the COVID-19
        Radiography Database's ``DIR/<Class>/images`` + ``DIR/<Class>/masks``. Listed by the
        launcher (names only); ``class_mapping`` defaults to the sorted class folder names, and
        the mapping and the listing (as a CSV) are written next to the outputs.
      config: the options (``config.IngestConfig``: class mapping, splits, seed, checks, ...);
        validated now, at pipeline construction.
      span: with a span pattern: ingest this span (default: the newest). Shorthand for
        ``range_config`` with a StaticRange [span, span].
      range_config: TFX's RangeConfig for the span pattern, as FileBasedExampleGen takes it
        (ExampleGen's rules: a StaticRange of one span, or a RollingRange of one span). TFX's
        driver resolves the span and the newest version in it ({VERSION}), records both on the
        Examples artifact (``span``, ``version``) and fingerprints that span's CSV and every
        image it references.
      **option_values: IngestConfig fields by name, over ``config`` (e.g.
        ``class_mapping={'COVID': 0, ...}, splits=[('train', 8), ('test', 2)]``). Those
        IngestConfig marks ``runtime`` (class_mapping as JSON, splits as 'train=8,...', seed,
        split_manifest) may be RuntimeParameters: their defaults are validated now.
    """
    runtime = {name: value for name, value in option_values.items()
               if isinstance(value, RuntimeParameter)}
    _check_option_names(option_values, runtime)
    if bool(_default(csv_path)) == bool(image_dir):
      raise config_lib.ConfigError('give exactly one input: csv_path (option --csv) or '
                                   'image_dir (option --image-dir).')
    if image_dir and (runtime or isinstance(csv_path, RuntimeParameter)):
      raise config_lib.ConfigError('image_dir cannot be combined with runtime parameters for '
                                   'the CSV or the options.')
    default_csv = _default(csv_path)
    spanned = isinstance(default_csv, str) and spans.has_any_spec(default_csv)
    values = {name: _option_value(name, value) for name, value in option_values.items()
              if _default(value) is not None}
    if config is None:
      values.setdefault('class_mapping', {})
    ingest_config = (dataclasses.replace(config, **values) if config
                     else config_lib.IngestConfig(**values))
    ingest_config = ingest_config.for_input(default_csv if isinstance(default_csv, str) else '')
    _check_span_options(csv_path, image_dir, spanned, span, range_config, ingest_config)
    if span is not None:
      range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
          start_span_number=span, end_span_number=span))
    if not image_dir and not ingest_config.class_mapping:
      config_lib.validate_class_mapping({})  # raises: a CSV needs a class mapping
    if image_dir:
      # TFX's own fingerprint covers the class folders' names, sizes and mtimes (pattern '*');
      # the driver adds every listed image and mask (fingerprint.py).
      input_base, pattern = image_dir.rstrip('/') or '/', IMAGE_DIR_PATTERN
    elif not isinstance(default_csv, str) or not default_csv:
      raise config_lib.ConfigError('csv_path needs a CSV path (or a RuntimeParameter with a '
                                   'default CSV path) (option --csv).')
    elif spanned:  # TFX's driver resolves input_base/pattern to one span's CSV
      input_base, pattern = spans.split_pattern(default_csv)
    else:
      input_base, pattern = os.path.dirname(default_csv), os.path.basename(default_csv)
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(
        name=INDEX_SPLIT_NAME, pattern=pattern)])
    if spanned:
      _check_with_tfx(input_base, input_config, range_config)
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=s.name, hash_buckets=s.num_shards)
        for s in ingest_config.splits]))
    component_spec = spec.ImageExampleGenSpec(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        range_config=range_config,
        # A span pattern: the executor reads the CSV TFX's driver resolved (input_config).
        csv_uri='' if spanned else (csv_path or ''),
        image_dir=image_dir or '',
        **{**options.to_exec_properties(ingest_config), **runtime},
        examples=types.Channel(type=standard_artifacts.Examples))
    base_beam_component.BaseBeamComponent.__init__(self, spec=component_spec)
    self.ingest_config = ingest_config  # what was validated (runtime parameters: defaults)


def _check_option_names(option_values: Mapping[str, Any],
                        runtime: Mapping[str, RuntimeParameter]) -> None:
  known = {field.name for field, _ in options.options_of(config_lib.IngestConfig)}
  unknown = sorted(set(option_values) - known)
  if unknown:
    raise TypeError(f'ImageExampleGen got unknown options {unknown}; its options are the '
                    f'fields of IngestConfig: {sorted(known)}.')
  allowed = options.runtime_parameters(config_lib.IngestConfig)
  for name in runtime:
    if name not in allowed:
      raise config_lib.ConfigError(f'{name} cannot be a runtime parameter; those that can: '
                                   f'{sorted(allowed)}.')


def _option_value(name: str, value: Any) -> Any:
  """A RuntimeParameter's default, or a value given as its exec-property text (a class
  mapping as JSON, splits as 'train=8,eval=1,test=1'), as the IngestConfig field's value."""
  value = _default(value)
  field, opt = {f.name: (f, o) for f, o in options.options_of(config_lib.IngestConfig)}[name]
  if isinstance(value, str) and field.type is not str:
    return options.decode(field, opt, value)
  return value


def _check_span_options(csv_path, image_dir, spanned: bool, span, range_config,
                        ingest_config: config_lib.IngestConfig) -> None:
  """Span options the component cannot honour are refused here, never ignored."""
  if spanned and isinstance(csv_path, RuntimeParameter):
    raise config_lib.ConfigError(
        'a span pattern ({SPAN}) cannot be a runtime parameter: TFX resolves spans from the '
        'compiled pattern; compile with the pattern itself (options --csv and '
        '--no-runtime-parameters).')
  if (span is not None or range_config is not None) and not spanned:
    raise config_lib.ConfigError(
        f'span/range_config need a span pattern in the CSV path, e.g. data/index-{{SPAN}}.csv, '
        f'got {image_dir or _default(csv_path)!r} (option --csv; or drop --span).')
  if span is not None and range_config is not None:
    raise config_lib.ConfigError('give span or range_config, not both (option --span).')
  if span is not None and (isinstance(span, bool) or not isinstance(span, int) or span < 0):
    raise config_lib.ConfigError(f'span must be an int >= 0, got {span!r} (option --span).')
  if (ingest_config.group_assignment == config_lib.GROUP_ASSIGNMENT_BALANCED and spanned
      and ingest_config.group_column):
    raise config_lib.ConfigError(
        "group_assignment='balanced' with a span pattern would let a patient change split "
        "between spans (a patient in an earlier span's test split could land in this span's "
        "train split); spans need 'stable' (option --group-assignment).")


def _check_with_tfx(input_base: str, input_config, range_config) -> None:
  """TFX's own span rules (FileBasedInputProcessor validates without touching files)."""
  from tfx.components.example_gen import input_processor
  try:
    spans.check_pattern(os.path.join(input_base, input_config.splits[0].pattern))
    input_processor.FileBasedInputProcessor(input_base, input_config.splits, range_config)
  except ValueError as e:
    raise config_lib.ConfigError(f'{e} (options --csv, --span)') from e
