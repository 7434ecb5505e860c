"""What the first lines say about the input, before anything heavy loads: a CSV's rows, its
span, its class mapping, an image folder's classes, the split membership kept. No TensorFlow."""
import csv
import dataclasses
import os
from typing import Optional, Tuple

from components.errors import ConfigError
from components.errors import escape_control
from components.errors import special_file
from components.image_example_gen import config as config_lib
from components.image_example_gen import spans as spans_lib
from pipeline import configs
from pipeline import metadata_store
from pipeline import progress
from pipeline.cli.options import _is_uri

SQLITE_HEADER = b'SQLite format 3\x00'  # the first 16 bytes of every SQLite database file


def _existing_store(path: str, option: str) -> None:
  """A local ML Metadata store that a read-only command (report, lineage) can open: it exists
  and is an SQLite database, else a ConfigError naming ``option`` (a server is checked when
  connecting)."""
  if metadata_store.is_server(path):
    return
  if not os.path.exists(path):
    raise ConfigError(f'no metadata store at {path} (option {option}).')
  special = special_file(path)
  if special:
    raise ConfigError(f'the metadata store {path} is {special}, not an SQLite file '
                      f'(option {option}).')
  with open(path, 'rb') as f:
    head = f.read(len(SQLITE_HEADER))
  if head != SQLITE_HEADER:
    raise ConfigError(f'{path} is not an ML Metadata store (not an SQLite database file) '
                      f'(option {option}).')


def _count_rows(csv_path: str) -> Optional[int]:
  """Data rows of a local CSV (quoted newlines understood), with the csv module only: for the
  first line, before anything heavy loads. None for a URI or an unreadable file."""
  if _is_uri(csv_path) or special_file(csv_path):
    return None
  try:
    with open(csv_path, newline='', encoding='utf-8-sig', errors='replace') as f:
      return max(0, sum(1 for _ in csv.reader(f)) - 1)
  except (OSError, csv.Error):
    return None


def _csv_rows(csv_path: str) -> str:
  """'21,165 rows of PATH' for the first line, or just the path for a URI; a local CSV that
  does not exist fails now, as the run's would, in a second."""
  if not _is_uri(csv_path) and not os.path.isfile(csv_path):
    from components.image_example_gen import index
    index.read_csv_text(csv_path)  # raises the run's IndexValidationError (no TensorFlow)
  rows = _count_rows(csv_path)
  return f'{rows:,} rows of {csv_path}' if rows is not None else csv_path


def _check_span_arg(csv_arg: str, span: Optional[int]) -> None:
  """--span only with a span pattern in --csv (not with a plain CSV, --image-dir or demo data)."""
  if span is not None and not spans_lib.has_span_spec(csv_arg or ''):
    raise config_lib.ConfigError(f'--span {span} needs a span pattern in --csv, e.g. '
                                 'data/index-{SPAN}.csv.')


def _resolve_span(csv_arg: str, span: Optional[int]) -> Tuple[str, str, int]:
  """(the CSV a span pattern stands for, ' (span N of PATTERN)', N), by TFX's rules without
  TensorFlow (spans.py; TFX's own driver decides in the run); (csv_arg, '', 0) without a
  pattern."""
  _check_span_arg(csv_arg, span)
  if not spans_lib.has_any_spec(csv_arg):
    return csv_arg, '', 0
  resolved = spans_lib.resolve(csv_arg, span)
  version = f', version {resolved.version}' if resolved.version is not None else ''
  return resolved.path, f' (span {resolved.span}{version} of {csv_arg})', resolved.span


def _default_mapping_path(csv_arg: str) -> str:
  """class_mapping.json next to the CSV; for a span pattern, in the folder above its first
  spec (one mapping for every span)."""
  folder = (spans_lib.split_pattern(csv_arg)[0] if spans_lib.has_any_spec(csv_arg)
            else os.path.dirname(csv_arg))
  return os.path.join(folder, configs.CLASS_MAPPING_FILE)


def _split_lines(display: progress.Display, config: config_lib.IngestConfig):
  """The first lines' word on split membership: kept from --split-manifest (how many images,
  read with assignment.load_manifest: plain JSON, no TensorFlow; a URI is read by the run
  itself), or --fresh-splits. -> the local manifest read, else None."""
  if config.fresh_splits:
    display.line('splits: --fresh-splits: published split membership is ignored and every '
                 'image is dealt afresh')
  elif config.split_manifest and _is_uri(config.split_manifest):
    display.line(f'splits: membership kept from {config.split_manifest} (read when '
                 'ImageExampleGen runs)')
  elif config.split_manifest:
    from components.image_example_gen import assignment
    manifest = assignment.load_manifest(config.split_manifest)  # AssignmentError names it
    display.line(f'splits: membership of {len(manifest.images):,} images kept from '
                 f'{config.split_manifest} (seed {manifest.seed})')
    _measure_line(display, config)
    return manifest
  _measure_line(display, config)
  return None


def _measure_line(display: progress.Display, config: config_lib.IngestConfig) -> None:
  """What the run will not look at because an option turned the image decode off, and the file
  counts --shard-size sets in place of --splits'."""
  if config.shard_size:
    display.line(f'shards: --shard-size {config.shard_size}: each split is written as files of '
                 'about that size, counted from the bytes the check pass reads, in place of '
                 "--splits' shard counts (split membership and weights stay those of --splits; "
                 'the counts are in the summary)')
  if not config.measures_images:
    display.line(f'images: --verify {config.verify} decodes no image, so near-duplicates, '
                 'image quality and shortcut risk are not measured (--verify full measures '
                 'them)')


def _published_splits_line(metadata_path: str, pipeline_name: str,
                           config: config_lib.IngestConfig) -> str:
  """What the run keeps without --split-manifest: the membership earlier runs of this pipeline
  published, as ImageExampleGen's driver will find it in ML Metadata ('' when none)."""
  if config.split_manifest or not (metadata_store.is_server(metadata_path)
                                   or os.path.exists(metadata_path)):
    return ''
  from components.image_example_gen import spec
  from components.image_example_gen import split_history
  from pipeline import mlmd
  uri, images = split_history.latest_manifest(
      split_history.published_examples(mlmd.open_store(metadata_path), pipeline_name,
                                       configs.IMAGE_EXAMPLE_GEN),
      spec.SPLIT_MANIFEST_PROPERTY, spec.SPLIT_MANIFEST_IMAGES_PROPERTY)
  if not uri:
    return ''
  if config.fresh_splits:
    return (f'splits: --fresh-splits discards the membership of {images:,} images published '
            f'in {uri}')
  return (f'splits: {images:,} images keep the split published in {uri} (found in ML '
          f'Metadata); new images are dealt with seed {config.seed} (--fresh-splits starts over)')


def _read_folder(image_dir: str, config: config_lib.IngestConfig):
  """index.read_folder_index, as ImageExampleGen's launcher reads the folder: a mapping that
  misses a class folder is refused here (SourceError naming both sides)."""
  from components.image_example_gen import index
  return index.read_folder_index(image_dir, config.class_mapping, config.allowed_roots,
                                 config.group_column)


def _classes_line(image_dir: str, mapping_path: str, folder) -> str:
  """Which label each class folder got, when no mapping fixes them; the mapping's classes
  without a folder, when one does ('' if there is nothing to say)."""
  if not mapping_path:
    labels = ', '.join(f'{name}={label}' for name, label in
                       sorted(folder.class_mapping.items(), key=lambda kv: kv[1]))
    return (f'classes: no --class-mapping, so labels follow the sorted class folders: {labels} '
            '(pass --class-mapping to fix them)')
  if folder.classes_without_folder:
    missing = ', '.join(f'{name}={folder.class_mapping[name]}'
                        for name in folder.classes_without_folder)
    return (f'classes: the class mapping {mapping_path} names '
            f'{len(folder.classes_without_folder)} class(es) with no folder in {image_dir}: '
            f'{missing}; their labels stay reserved, and no examples of them are written')
  return ''


def _folder_classes(display: progress.Display, image_dir: str, mapping_path: str, folder,
                    config: config_lib.IngestConfig) -> config_lib.IngestConfig:
  """Says the folder's labels (``_classes_line``) -> the config with the mapping used."""
  line = _classes_line(image_dir, mapping_path, folder)
  if line:
    display.line(escape_control(line))
  return dataclasses.replace(config, class_mapping=folder.class_mapping)
