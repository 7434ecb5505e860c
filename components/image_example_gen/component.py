"""ImageExampleGen: TFX's FileBasedExampleGen, with a CSV index of image files (or an image
folder without one) as its input."""
import json
import os
from typing import Mapping, Optional, Sequence, Tuple, Union

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2
from tfx.proto import range_config_pb2
from tfx.types import standard_artifacts

from components.image_example_gen import config as config_lib
from components.image_example_gen import driver
from components.image_example_gen import executor
from components.image_example_gen import spans
from components.image_example_gen import spec

INDEX_SPLIT_NAME = 'index'
IMAGE_DIR_PATTERN = '*'  # an image folder's input pattern for TFX's driver: the class folders
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
               class_mapping: Union[Mapping[str, int], RuntimeParameter, None] = None,
               splits: Union[Sequence[Union[config_lib.SplitSpec, Tuple[str, int]]],
                             RuntimeParameter] = config_lib.DEFAULT_SPLITS,
               seed: Union[int, RuntimeParameter] = config_lib.DEFAULT_SEED,
               on_bad_record: str = config_lib.ON_BAD_RECORD_FAIL,
               allowed_roots: Sequence[str] = (),
               max_pixels: int = config_lib.DEFAULT_MAX_PIXELS,
               group_column: str = '',
               duplicates: str = config_lib.DUPLICATES_REPORT,
               fingerprint_content: bool = False,
               verify: str = config_lib.VERIFY_FULL,
               max_file_bytes: int = config_lib.DEFAULT_MAX_FILE_BYTES,
               mask_check: str = config_lib.MASK_CHECK_WARN,
               mask_size: str = '',
               image_dir: Optional[str] = None,
               dicom_window: str = config_lib.DICOM_WINDOW_AUTO,
               dicom_output: str = config_lib.DICOM_OUTPUT_PNG16,
               allow_burned_in: bool = False,
               group_salt: str = '',
               span: Optional[int] = None,
               range_config: Optional[range_config_pb2.RangeConfig] = None,
               group_assignment: str = '',
               split_manifest: Union[str, RuntimeParameter] = '',
               fresh_splits: bool = False):
    """Args:
      csv_path: the CSV index (local path or any tf.io.gfile URI such as gs://...). Relative
        image/mask paths in it resolve against its folder.
      class_mapping: class name -> label 0..K-1.
      splits: (name, number of shards) per output split, in order.
      seed: seeds the shard assignment and the record order within shards.
      csv_path, class_mapping (a JSON string), splits ('train=8,eval=1,test=1') and seed may
        each be a ``RuntimeParameter`` (KFP pipeline parameters: one compiled spec serves many
        datasets); its default is validated now and is what TFX's own driver fingerprints.
      on_bad_record: 'fail' stops before writing and lists the bad rows (line, path, reason);
        'quarantine' writes the good rows and records the bad ones in ``quarantine.json``.
      allowed_roots: folders/URI prefixes every file must resolve into, symlinks followed
        (default: the CSV's folder), so an index cannot pull in files from elsewhere.
      max_pixels: images/masks with more pixels are bad records (decompression bombs).
      group_column: optional CSV column (e.g. patient id): all rows sharing a value go to one
        shard, hence one split, with classes kept as close to proportional as groups allow.
      duplicates: rows whose image bytes are identical: 'report', 'fail' or 'drop' (keep the
        first by image_id, quarantine the rest).
      fingerprint_content: the cache fingerprint covers every referenced image and mask by
        path, size and mtime; True adds a content hash of each (reads every file).
      verify: 'full' (default) decodes every image and mask in the workers before it is
        written, so corrupt pixel data is a bad record; 'header' checks format, size and file
        structure only (faster; docs/benchmarks.md).
      max_file_bytes: larger images/masks are bad records, refused before they are read.
      mask_check: 'warn' (default) writes masks that do not decode, are not single-channel,
        not binary or not their image's size (nor mask_size) and counts them in the summary
        for ClassBalance's report; 'fail' makes them bad records; 'off' does not look.
      mask_size: 'WIDTHxHEIGHT' all masks may have instead of their image's size (the
        COVID-19 Radiography Database: 256x256 masks for 299x299 images).
      image_dir: instead of ``csv_path`` (give exactly one): a folder ``DIR/<class>/<images>``
        with optional ``DIR/<class>/masks/`` (matched by file stem), or the COVID-19
        Radiography Database's ``DIR/<Class>/images`` + ``DIR/<Class>/masks``. Listed by the
        launcher (names only); ``class_mapping`` defaults to the sorted class folder names, and
        the mapping and the listing (as a CSV) are written next to the outputs.
      dicom_window: DICOM images' VOI step: 'auto' (the file's VOI LUT or window; a min..max
        stretch without one), 'none' (the nominal range) or 'CENTER,WIDTH'.
      dicom_output: 'png16' (default: precision kept) or 'png8': what DICOM images become.
      allow_burned_in: write DICOM files whose BurnedInAnnotation is YES (default: bad records).
      group_salt: salt of the ``group_hash`` feature ('' = a public constant); see docs/inputs.md.
        ``group_column`` may be ``dicom:<keyword>`` (e.g. dicom:PatientID): read from each DICOM
        image's header by the workers and written only as that salted hash.
      span: with a span pattern (``csv_path='data/index-{SPAN}.csv'``): ingest this span
        (default: the newest). Shorthand for ``range_config`` with a StaticRange [span, span].
      range_config: TFX's RangeConfig for the span pattern, as FileBasedExampleGen takes it
        (ExampleGen's rules: a StaticRange of one span, or a RollingRange of one span).
        TFX's driver resolves the span and the newest version in it ({VERSION}), records both
        on the Examples artifact (``span``, ``version``) and fingerprints that span's CSV and
        every image it references.
      group_assignment: with a group column, how groups go to splits: 'balanced' (greedy: class
        counts closest to proportional, given the whole input) or 'stable' (a group's split is a
        function of (seed, group) alone, so a patient keeps its split in every span: no leakage
        across time). Default '': 'stable' for a span pattern, 'balanced' otherwise.
      split_manifest: a ``split_manifest.json`` an earlier run published (path or URI; may be
        a ``RuntimeParameter``): every image (by content) and group it names keeps its split.
        Without it, the driver finds the previous run's manifest in ML Metadata (LocalDagRunner;
        no component driver runs on Kubeflow/Vertex, so there give it here).
      fresh_splits: start over: ignore published membership and deal every image afresh (the
        summary says how many images' membership was discarded).
    """
    if bool(_default(csv_path)) == bool(image_dir):
      raise config_lib.ConfigError('give exactly one input: csv_path (option --csv) or '
                                   'image_dir (option --image-dir).')
    if image_dir and any(isinstance(v, RuntimeParameter) for v in (csv_path, class_mapping)):
      raise config_lib.ConfigError('image_dir cannot be combined with runtime parameters for '
                                   'the CSV or the class mapping.')
    default_csv = _default(csv_path)
    spanned = isinstance(default_csv, str) and spans.has_any_spec(default_csv)
    _check_span_options(csv_path, image_dir, spanned, span, range_config, group_assignment,
                        group_column)
    if span is not None:
      range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
          start_span_number=span, end_span_number=span))
    mapping, split_specs = _default(class_mapping) or {}, _default(splits)
    if isinstance(mapping, str):
      mapping = config_lib.load_class_mapping_text(mapping)
    if not image_dir and not mapping:
      config_lib.validate_class_mapping(mapping)  # raises: a CSV needs a class mapping
    if isinstance(split_specs, str):
      split_specs = config_lib.parse_splits(split_specs)
    ingest_config = config_lib.IngestConfig(  # validates now, at pipeline construction
        class_mapping=mapping, seed=_default(seed), on_bad_record=on_bad_record,
        allowed_roots=tuple(allowed_roots), max_pixels=max_pixels, group_column=group_column,
        duplicates=duplicates, verify=verify, max_file_bytes=max_file_bytes,
        mask_check=mask_check, mask_size=mask_size, splits=split_specs,
        dicom_window=dicom_window, dicom_output=dicom_output, allow_burned_in=allow_burned_in,
        group_salt=group_salt,
        group_assignment=group_assignment or (config_lib.GROUP_ASSIGNMENT_STABLE if spanned
                                              else config_lib.GROUP_ASSIGNMENT_BALANCED),
        split_manifest=_default(split_manifest) or '', fresh_splits=fresh_splits)
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
        class_mapping=(class_mapping if isinstance(class_mapping, RuntimeParameter)
                       else config_lib.class_mapping_to_json(ingest_config.class_mapping)
                       if ingest_config.class_mapping else ''),
        seed=seed if isinstance(seed, RuntimeParameter) else ingest_config.seed,
        splits=(splits if isinstance(splits, RuntimeParameter)
                else config_lib.format_splits(ingest_config.splits)),
        on_bad_record=ingest_config.on_bad_record,
        allowed_roots=json.dumps(list(ingest_config.allowed_roots)),
        max_pixels=ingest_config.max_pixels,
        group_column=ingest_config.group_column,
        duplicates=ingest_config.duplicates,
        fingerprint_content=int(fingerprint_content),
        verify=ingest_config.verify,
        max_file_bytes=ingest_config.max_file_bytes,
        mask_check=ingest_config.mask_check,
        mask_size=ingest_config.mask_size,
        dicom_window=ingest_config.dicom_window,
        dicom_output=ingest_config.dicom_output,
        allow_burned_in=int(ingest_config.allow_burned_in),
        group_salt=ingest_config.group_salt,
        group_assignment=ingest_config.group_assignment,
        split_manifest=(split_manifest if isinstance(split_manifest, RuntimeParameter)
                        else ingest_config.split_manifest),
        fresh_splits=int(ingest_config.fresh_splits),
        examples=types.Channel(type=standard_artifacts.Examples))
    base_beam_component.BaseBeamComponent.__init__(self, spec=component_spec)


def _check_span_options(csv_path, image_dir, spanned: bool, span, range_config,
                        group_assignment: str, group_column: str) -> None:
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
  if (group_assignment == config_lib.GROUP_ASSIGNMENT_BALANCED and spanned and group_column):
    raise config_lib.ConfigError(
        "group_assignment='balanced' with a span pattern would let a patient change split "
        "between spans (a patient in an earlier span's test split could land in this span's "
        "train split); spans need 'stable' (option --group-assignment).")


def _check_with_tfx(input_base: str, input_config, range_config) -> None:
  """TFX's own span rules (FileBasedInputProcessor validates without touching files)."""
  from tfx.components.example_gen import input_processor  # pylint: disable=g-import-not-at-top
  try:
    spans.check_pattern(os.path.join(input_base, input_config.splits[0].pattern))
    input_processor.FileBasedInputProcessor(input_base, input_config.splits, range_config)
  except ValueError as e:
    raise config_lib.ConfigError(f'{e} (options --csv, --span)') from e
