"""Validated configuration of one ImageExampleGen run (pure: no TensorFlow/TFX imports).

Every error says what was wrong and which option fixes it.
"""
import dataclasses
import json
import math
import re
from typing import Dict, Mapping, Sequence, Tuple

from components.errors import ConfigError
from components.image_example_gen import mask_check as mask_check_lib

DEFAULT_SPLITS = (('train', 8), ('eval', 1), ('test', 1))
DEFAULT_SEED = 0
ON_BAD_RECORD_FAIL = 'fail'
ON_BAD_RECORD_QUARANTINE = 'quarantine'
ON_BAD_RECORD_CHOICES = (ON_BAD_RECORD_FAIL, ON_BAD_RECORD_QUARANTINE)
DUPLICATES_REPORT = 'report'
DUPLICATES_FAIL = 'fail'
DUPLICATES_DROP = 'drop'
DUPLICATES_CHOICES = (DUPLICATES_REPORT, DUPLICATES_FAIL, DUPLICATES_DROP)
# Decompression-bomb guard: 50 MP is far above any radiograph (a 4k x 4k CXR is 16.8 MP).
DEFAULT_MAX_PIXELS = 50_000_000
# Files larger than this are bad records, refused before a byte is read (a 4k x 4k 16-bit PNG is
# ~32 MB; the COVID-19 Radiography PNGs ~37 KB).
DEFAULT_MAX_FILE_BYTES = 128 * 1024 * 1024
# How much of each image and mask the workers verify before it is written:
VERIFY_FULL = 'full'  # decode every pixel (Pillow): corrupt compressed data is a bad record
VERIFY_HEADER = 'header'  # format, size and structure only (PNG chunk CRCs, JPEG markers)
VERIFY_CHOICES = (VERIFY_FULL, VERIFY_HEADER)
# What happens to a mask that is not decodable, single-channel, binary and of its image's size
# (or the declared mask size); see mask_check.py:
MASK_CHECK_OFF = 'off'  # not checked (no extra decode)
MASK_CHECK_WARN = 'warn'  # written; counted per split and class in the summary and the report
MASK_CHECK_FAIL = 'fail'  # a bad record (empty masks are counted, never refused)
MASK_CHECK_CHOICES = (MASK_CHECK_OFF, MASK_CHECK_WARN, MASK_CHECK_FAIL)
# DICOM images (dicom.py): the VOI step and the PNG they are rendered to.
DICOM_WINDOW_AUTO = 'auto'  # the file's VOI LUT or window; min..max stretch without one
DICOM_WINDOW_NONE = 'none'  # no VOI: the modality output's nominal range
DICOM_OUTPUT_PNG16 = 'png16'  # 16-bit grayscale PNG: precision kept (default)
DICOM_OUTPUT_PNG8 = 'png8'  # 8-bit grayscale PNG: smaller, 256 grey levels
DICOM_OUTPUT_CHOICES = (DICOM_OUTPUT_PNG16, DICOM_OUTPUT_PNG8)
# --group-column dicom:<keyword>: the group is a DICOM attribute read by the workers, written as
# a salted hash. The default salt is a constant, so a patient's hash is the same for every seed
# and run; being public, it only keeps raw IDs out of the shards (anyone can hash a guessed ID
# with it). Your own salt (group_salt) makes hashes unlinkable to other datasets; like every
# option it is recorded in ML Metadata, so it is as secret as the metadata store.
DICOM_GROUP_PREFIX = 'dicom:'
DEFAULT_GROUP_SALT = 'cxr-tfx/group/v1'
# How groups go to splits (assignment.py): 'balanced' deals whole groups greedily towards
# proportional class counts (a function of every group in the input); 'stable' gives each group
# the split hash(seed, group) picks, weighted by shard counts, so a patient's split is the same
# in every span (ImageExampleGen's default for a {SPAN} pattern).
GROUP_ASSIGNMENT_BALANCED = 'balanced'
GROUP_ASSIGNMENT_STABLE = 'stable'
GROUP_ASSIGNMENT_CHOICES = (GROUP_ASSIGNMENT_BALANCED, GROUP_ASSIGNMENT_STABLE)

_SPLIT_NAME = re.compile(r'^[A-Za-z0-9_]+$')




@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """One output split and how many shard files it is written as."""
  name: str
  num_shards: int


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  """What ImageExampleGen needs besides the CSV itself.

  Attributes:
    class_mapping: class name (as in the CSV's ``class`` column) -> int label 0..K-1.
    splits: output splits (SplitSpec or (name, shards)) in order; shard files are numbered
      across them in this order.
    seed: seeds the shard assignment and the record order inside each shard.
    on_bad_record: 'fail' (stop before writing, listing bad rows) or 'quarantine' (write the
      good rows, record the bad ones with the output).
    allowed_roots: folders/URI prefixes files must resolve into (symlinks followed); empty
      means the CSV's folder.
    max_pixels: images or masks with more pixels are bad records.
    group_column: optional CSV column (e.g. patient id) whose rows stay in one shard/split.
    duplicates: identical image bytes under several rows: 'report' (keep all, list them;
      cross-split ones are leakage anomalies), 'fail' (stop before writing) or 'drop' (keep the
      first by image_id, quarantine the rest).
    verify: 'full' decodes every image and mask before it is written (the default: a file with
      a valid header but corrupt pixel data is a bad record); 'header' checks format, size and
      file structure only (faster; see bench/).
    max_file_bytes: images/masks larger than this are bad records, refused before reading.
    mask_check: 'warn' (default), 'fail' or 'off': what a mask that does not decode, is not
      single-channel, not binary ({0, its foreground value}) or not its image's size (nor
      mask_size) does to its row.
    mask_size: 'WIDTHxHEIGHT' that every mask may have instead of its image's size ('' none).
    dicom_window: how DICOM images are windowed: 'auto' (the file's VOI LUT or window, a
      min..max stretch without one), 'none' (the nominal range) or 'CENTER,WIDTH'.
    dicom_output: 'png16' (default) or 'png8': the PNG a DICOM image is rendered to.
    allow_burned_in: write DICOM files whose BurnedInAnnotation is YES (by default they are
      bad records).
    group_salt: salt of the group hashes written as ``group_hash`` ('' = DEFAULT_GROUP_SALT).
    group_assignment: 'balanced' (default) or 'stable': how groups go to splits (see
      GROUP_ASSIGNMENT_*); 'stable' keeps a group's split the same across spans.
    split_manifest: a split manifest (path or URI of a ``split_manifest.json`` an earlier run
      published) whose membership this run keeps: every image (by content) and group in it
      keeps its split. '' = the previous run's, found through ML Metadata where a driver runs
      (LocalDagRunner); on Kubeflow/Vertex, or across pipeline roots, give it here.
    fresh_splits: start over: ignore every published membership and deal all images afresh.

  ``group_column`` may be ``dicom:<keyword>`` (e.g. ``dicom:PatientID``): the group is that
  attribute of each (DICOM) image, read by the workers. An empty ``class_mapping`` means "the
  sorted class folder names", valid only for an image folder (ImageExampleGen(image_dir=...)).
  """
  class_mapping: Mapping[str, int]
  splits: Tuple[SplitSpec, ...] = tuple(SplitSpec(n, k) for n, k in DEFAULT_SPLITS)
  seed: int = DEFAULT_SEED
  on_bad_record: str = ON_BAD_RECORD_FAIL
  allowed_roots: Tuple[str, ...] = ()
  max_pixels: int = DEFAULT_MAX_PIXELS
  group_column: str = ''
  duplicates: str = DUPLICATES_REPORT
  verify: str = VERIFY_FULL
  max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
  mask_check: str = MASK_CHECK_WARN
  mask_size: str = ''
  dicom_window: str = DICOM_WINDOW_AUTO
  dicom_output: str = DICOM_OUTPUT_PNG16
  allow_burned_in: bool = False
  group_salt: str = ''
  group_assignment: str = GROUP_ASSIGNMENT_BALANCED
  split_manifest: str = ''
  fresh_splits: bool = False

  def __post_init__(self):
    if self.class_mapping:  # empty: derived from an image folder's class folders
      validate_class_mapping(self.class_mapping)
    object.__setattr__(self, 'splits', tuple(
        s if isinstance(s, SplitSpec) else SplitSpec(*s) for s in self.splits))
    validate_splits(self.splits)
    if not isinstance(self.seed, int) or isinstance(self.seed, bool):
      raise ConfigError(f'seed must be an int, got {self.seed!r} (option --seed).')
    if self.on_bad_record not in ON_BAD_RECORD_CHOICES:
      raise ConfigError(f'on_bad_record must be one of {ON_BAD_RECORD_CHOICES}, got '
                        f'{self.on_bad_record!r} (option --on-bad-record).')
    object.__setattr__(self, 'allowed_roots', tuple(self.allowed_roots))
    if self.duplicates not in DUPLICATES_CHOICES:
      raise ConfigError(f'duplicates must be one of {DUPLICATES_CHOICES}, got '
                        f'{self.duplicates!r} (option --duplicates).')
    if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
      raise ConfigError(f'max_pixels must be a positive int, got {self.max_pixels!r} '
                        '(option --max-pixels).')
    if self.verify not in VERIFY_CHOICES:
      raise ConfigError(f'verify must be one of {VERIFY_CHOICES}, got {self.verify!r} '
                        '(option --verify).')
    if not isinstance(self.max_file_bytes, int) or self.max_file_bytes < 1:
      raise ConfigError(f'max_file_bytes must be a positive int, got {self.max_file_bytes!r} '
                        '(option --max-file-bytes).')
    if self.mask_check not in MASK_CHECK_CHOICES:
      raise ConfigError(f'mask_check must be one of {MASK_CHECK_CHOICES}, got '
                        f'{self.mask_check!r} (option --mask-check).')
    try:
      mask_check_lib.parse_size(self.mask_size)
    except ValueError as e:
      raise ConfigError(f'mask_size: {e} (option --mask-size).') from e
    try:
      parse_dicom_window(self.dicom_window)
    except ValueError as e:
      raise ConfigError(f'dicom_window: {e} (option --dicom-window).') from e
    if self.dicom_output not in DICOM_OUTPUT_CHOICES:
      raise ConfigError(f'dicom_output must be one of {DICOM_OUTPUT_CHOICES}, got '
                        f'{self.dicom_output!r} (option --dicom-output).')
    _check_bool('allow_burned_in', self.allow_burned_in, '--allow-burned-in')
    if self.group_assignment not in GROUP_ASSIGNMENT_CHOICES:
      raise ConfigError(f'group_assignment must be one of {GROUP_ASSIGNMENT_CHOICES}, got '
                        f'{self.group_assignment!r} (option --group-assignment).')
    if not isinstance(self.split_manifest, str):
      raise ConfigError(f'split_manifest must be a path or URI, got {self.split_manifest!r} '
                        '(option --split-manifest).')
    _check_bool('fresh_splits', self.fresh_splits, '--fresh-splits')
    if self.fresh_splits and self.split_manifest:
      raise ConfigError('give a split manifest to keep (option --split-manifest) or start over '
                        '(option --fresh-splits), not both.')
    if self.group_column.startswith(DICOM_GROUP_PREFIX):
      try:
        check_dicom_keyword(self.dicom_group_keyword)
      except ValueError as e:
        raise ConfigError(f'group_column {self.group_column!r}: {e} (option --group-column '
                          f'{DICOM_GROUP_PREFIX}KEYWORD).') from e

  @property
  def dicom_group_keyword(self) -> str:
    """'PatientID' for group_column 'dicom:PatientID'; '' for a CSV column or none."""
    return dicom_group_keyword(self.group_column)

  @property
  def group_hash_salt(self) -> str:
    return self.group_salt or DEFAULT_GROUP_SALT

  @property
  def declared_mask_size(self) -> Tuple[int, ...]:
    return mask_check_lib.parse_size(self.mask_size)

  @property
  def quarantine(self) -> bool:
    return self.on_bad_record == ON_BAD_RECORD_QUARANTINE

  @property
  def total_shards(self) -> int:
    return sum(s.num_shards for s in self.splits)


def _check_bool(name: str, value, option: str) -> None:
  if not isinstance(value, bool):
    raise ConfigError(f'{name} must be True or False, got {value!r} (option {option}).')


def parse_dicom_window(text: str) -> Tuple[float, ...]:
  """'auto' or 'none' -> (); 'C,W' -> (center, width). ValueError on anything else."""
  if text in (DICOM_WINDOW_AUTO, DICOM_WINDOW_NONE):
    return ()
  center, sep, width = str(text).partition(',')
  try:
    if not sep:
      raise ValueError
    c, w = float(center), float(width)
  except ValueError:
    raise ValueError(f"expected 'auto', 'none' or CENTER,WIDTH (e.g. 2048,4096), got "
                     f'{text!r}') from None
  if not math.isfinite(c) or not math.isfinite(w) or w < 1:
    raise ValueError(f'the window width must be a finite number >= 1 (a DICOM LINEAR window), '
                     f'got {text!r}')
  return c, w


def dicom_group_keyword(group_column: str) -> str:
  """'dicom:PatientID' -> 'PatientID'; a CSV column name (or '') -> ''."""
  return (group_column[len(DICOM_GROUP_PREFIX):] if group_column.startswith(DICOM_GROUP_PREFIX)
          else '')


def check_dicom_keyword(keyword: str) -> None:
  """ValueError unless ``keyword`` is in the DICOM dictionary (e.g. PatientID)."""
  from pydicom import datadict  # pylint: disable=g-import-not-at-top  (only for dicom: groups)
  if not keyword or datadict.tag_for_keyword(keyword) is None:
    raise ValueError(f'{keyword!r} is not a DICOM keyword (e.g. PatientID, StudyInstanceUID)')


def validate_class_mapping(mapping: Mapping[str, int]) -> None:
  """Labels must be exactly 0..K-1, one per class name."""
  if not mapping:
    raise ConfigError('class mapping is empty: give a JSON object {"class name": label, ...} '
                      '(option --class-mapping).')
  for name, label in mapping.items():
    if not isinstance(name, str) or not name:
      raise ConfigError(f'class mapping has an empty or non-string class name: {name!r}.')
    if not isinstance(label, int) or isinstance(label, bool):
      raise ConfigError(f'class mapping label for {name!r} must be an int, got {label!r}.')
  labels = sorted(mapping.values())
  if labels != list(range(len(labels))):
    raise ConfigError(f'class mapping labels must be exactly 0..{len(labels) - 1}, one per class; '
                      f'got {labels} (fix the class mapping JSON).')


def validate_splits(splits: Sequence[SplitSpec]) -> None:
  if not splits:
    raise ConfigError('at least one split is needed (option --splits, e.g. train=8,eval=1,test=1).')
  seen = set()
  for s in splits:
    if not _SPLIT_NAME.match(s.name):
      raise ConfigError(f'split name {s.name!r} must be letters, digits or _ (option --splits).')
    if s.name in seen:
      raise ConfigError(f'split {s.name!r} is given twice (option --splits).')
    seen.add(s.name)
    if not isinstance(s.num_shards, int) or s.num_shards < 1:
      raise ConfigError(f'split {s.name!r} needs at least 1 shard, got {s.num_shards!r} '
                        '(option --splits NAME=SHARDS).')


def parse_splits(text: str) -> Tuple[SplitSpec, ...]:
  """'train=8,eval=1,test=1' -> (SplitSpec('train', 8), ...)."""
  splits = []
  for part in (p.strip() for p in text.split(',')):
    name, sep, shards = part.partition('=')
    if not sep or not shards.strip().isdigit():
      raise ConfigError(f'bad split {part!r} in {text!r}: expected NAME=SHARDS, '
                        'e.g. --splits train=8,eval=1,test=1.')
    splits.append(SplitSpec(name.strip(), int(shards)))
  validate_splits(splits)
  return tuple(splits)


def format_splits(splits: Sequence[SplitSpec]) -> str:
  return ','.join(f'{s.name}={s.num_shards}' for s in splits)


def load_class_mapping_text(text: str, source: str = 'class mapping') -> Dict[str, int]:
  """Parses and validates a class mapping JSON document (a key given twice is an error: JSON
  parsers silently keep the last one)."""
  def no_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
      if key in seen:
        raise ConfigError(f'{source} gives the class {key!r} twice (labels {seen[key]!r} and '
                          f'{value!r}); keep one (option --class-mapping).')
      seen[key] = value
    return seen

  try:
    mapping = json.loads(text, object_pairs_hook=no_duplicate_keys)
  except json.JSONDecodeError as e:
    raise ConfigError(f'{source} is not valid JSON: {e} (option --class-mapping).') from e
  if not isinstance(mapping, dict):
    raise ConfigError(f'{source} must be a JSON object {{"class name": label}}, '
                      f'got {type(mapping).__name__}.')
  validate_class_mapping(mapping)
  return mapping


def class_mapping_to_json(mapping: Mapping[str, int]) -> str:
  """Canonical JSON (sorted keys) so equal mappings give equal exec properties (cache hits)."""
  return json.dumps(dict(mapping), sort_keys=True)
