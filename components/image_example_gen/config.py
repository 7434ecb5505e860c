"""Validated configuration of one ImageExampleGen run (pure: no TensorFlow/TFX imports).

Every error says what was wrong and which option fixes it.
"""
import dataclasses
import json
import math
import re
from typing import Dict, Mapping, Sequence, Tuple

from components import options
from components.errors import ConfigError
from components.image_example_gen import mask_check as mask_check_lib
from components.image_example_gen import spans as spans_lib

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
# Near-duplicate images (near_duplicates.py), found on the pixels verify=full decodes:
NEAR_DUPLICATES_GROUP = 'group'  # each group is one unit of the deal: never straddles splits
NEAR_DUPLICATES_REPORT = 'report'  # dealt as any image; the groups are reported
NEAR_DUPLICATES_OFF = 'off'  # no grouping
NEAR_DUPLICATES_CHOICES = (NEAR_DUPLICATES_GROUP, NEAR_DUPLICATES_REPORT, NEAR_DUPLICATES_OFF)
# Shortcut risk (shortcut.py): the cross-validated one-vs-rest balanced accuracy (chance 0.5)
# with which non-anatomical properties tell some class from the others, from which the run
# warns.
DEFAULT_SHORTCUT_THRESHOLD = 0.8

_SPLIT_NAME = re.compile(r'^[A-Za-z0-9_]+$')


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """One output split and how many shard files it is written as."""
  name: str
  num_shards: int


def _decode_mapping(text: str) -> Dict[str, int]:
  return load_class_mapping_text(text) if text else {}


def _encode_mapping(mapping: Mapping[str, int]) -> str:
  return class_mapping_to_json(mapping) if mapping else ''


def _decode_roots(text: str) -> Tuple[str, ...]:
  return tuple(json.loads(text))


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  """What ImageExampleGen needs besides its input (a CSV or an image folder).

  One field per option; its ``option(...)`` metadata is the rest of the option: the help line
  (shown by ``cxr-tfx run --help`` and docs/cli.md), the flag, the exec-property encoding and
  whether it may be a KFP runtime parameter. ``components.options`` derives the component
  spec, the executor's parsing and the command line from these fields (docs/architecture.md:
  adding an option).

  ``group_column`` may be ``dicom:<keyword>`` (e.g. ``dicom:PatientID``): the group is that
  attribute of each (DICOM) image, read by the workers. An empty ``class_mapping`` means "the
  sorted class folder names", valid only for an image folder (ImageExampleGen(image_dir=...)).
  """
  class_mapping: Mapping[str, int] = options.option(
      help='class name -> int label 0..K-1 (canonical JSON as an exec property; empty: an '
           "image folder's sorted class folders)",
      encode=_encode_mapping, decode=_decode_mapping, runtime='class_mapping')
  splits: Tuple[SplitSpec, ...] = options.option(
      tuple(SplitSpec(n, k) for n, k in DEFAULT_SPLITS), flag='--splits',
      help='NAME=SHARDS,... in order; each split is written as that many shard files '
           '(default %(default)s)',
      encode=lambda splits: format_splits(splits), decode=lambda text: parse_splits(text),
      parse=lambda text: parse_splits(text), show=lambda splits: format_splits(splits),
      runtime='splits')
  seed: int = options.option(
      DEFAULT_SEED, flag='--seed', kind=int, runtime='seed',
      help='seeds the shard assignment and the record order in each shard (default '
           '%(default)s)')
  on_bad_record: str = options.option(
      ON_BAD_RECORD_FAIL, flag='--on-bad-record', choices=ON_BAD_RECORD_CHOICES,
      help='fail: stop before writing anything and list the bad rows (line, path, reason); '
           'quarantine: write the good rows and record the bad ones in quarantine.json next to '
           'the shards (default %(default)s)')
  allowed_roots: Tuple[str, ...] = options.option(
      (), flag='--allowed-root', repeat=True, path=True, metavar='DIR',
      encode=lambda roots: json.dumps(list(roots)), decode=_decode_roots,
      help="folder (or URI prefix) that images and masks may resolve into, symlinks followed; "
           "repeatable; default: the CSV's folder")
  max_pixels: int = options.option(
      DEFAULT_MAX_PIXELS, flag='--max-pixels', kind=int, minimum=1, parse=options.positive_int,
      help='images/masks with more pixels are bad records (decompression-bomb guard; default '
           '%(default)s)')
  group_column: str = options.option(
      '', flag='--group-column', metavar='NAME',
      help="CSV column (e.g. patient_id), or dicom:KEYWORD (e.g. dicom:PatientID: read from "
           "each DICOM image's header), whose rows must stay together: a group never spans "
           'splits, nor shards unless --shard-size re-cuts them into files; classes stay as '
           'close to proportional as the groups allow, and the achieved deviation is reported. '
           'Written only as a salted hash (group_hash)')
  duplicates: str = options.option(
      DUPLICATES_REPORT, flag='--duplicates', choices=DUPLICATES_CHOICES,
      help='rows whose image bytes are identical (sha256): report them (those in different '
           'splits are leakage), fail before writing, or drop all but the first by image_id '
           'into the quarantine report (default %(default)s)')
  verify: str = options.option(
      VERIFY_FULL, flag='--verify', choices=VERIFY_CHOICES,
      help='full decodes every image and mask before it is written, so corrupt pixel data is '
           'a bad record; header checks format, size and file structure only, faster (see '
           'docs/benchmarks.md) (default %(default)s)')
  max_file_bytes: int = options.option(
      DEFAULT_MAX_FILE_BYTES, flag='--max-file-bytes', kind=int, minimum=1,
      parse=options.positive_int, metavar='N',
      help='images/masks larger than N bytes are bad records, refused before they are read '
           '(default %(default)s = 128 MiB)')
  mask_check: str = options.option(
      MASK_CHECK_WARN, flag='--mask-check', choices=MASK_CHECK_CHOICES,
      help="masks must decode, be single-channel, binary (0 and one foreground value) and of "
           "their image's size (or --mask-size): warn writes and counts violations "
           '(ClassBalance reports them), fail makes them bad records, off does not look '
           '(default %(default)s)')
  mask_size: str = options.option(
      '', flag='--mask-size', metavar='WxH',
      help="a size every mask may have instead of its image's, e.g. 256x256 for the COVID-19 "
           'Radiography Database (299x299 images)')
  dicom_window: str = options.option(
      DICOM_WINDOW_AUTO, flag='--dicom-window', metavar='auto|none|CENTER,WIDTH',
      help="DICOM images' VOI step: auto = the file's VOI LUT or first window (a min..max "
           'stretch without one); none = the nominal range; CENTER,WIDTH = that LINEAR window '
           '(default %(default)s; docs/inputs.md)')
  dicom_output: str = options.option(
      DICOM_OUTPUT_PNG16, flag='--dicom-output', choices=DICOM_OUTPUT_CHOICES,
      help='what DICOM images are rendered to: a 16-bit (precision kept) or 8-bit grayscale '
           'PNG (default %(default)s)')
  allow_burned_in: bool = options.option(
      False, flag='--allow-burned-in',
      help='write DICOM files whose BurnedInAnnotation is YES (by default they are bad '
           'records: their pixels may show identifying text)')
  group_salt: str = options.option(
      '', flag='--group-salt', metavar='SECRET',
      help='salt of the group hashes (default: a public constant; docs/inputs.md). Recorded '
           'in ML Metadata like every option')
  group_assignment: str = options.option(
      '', flag='--group-assignment', choices=GROUP_ASSIGNMENT_CHOICES,
      help='how groups go to splits: balanced (class counts closest to proportional, given the '
           'whole input) or stable (a seeded hash of the group: a patient keeps its split in '
           'every span). Default: stable for a span pattern, balanced otherwise')
  split_manifest: str = options.option(
      '', flag='--split-manifest', path=True, metavar='PATH|URI', runtime='split_manifest',
      help='keep the split membership published in this split manifest (the '
           'split_manifest.json an earlier run wrote): every image in it keeps its split. '
           "Locally `run` finds the previous run's manifest in ML Metadata without it; needed "
           'across pipeline roots and on Kubeflow')
  fresh_splits: bool = options.option(
      False, flag='--fresh-splits',
      help='start over: ignore published split membership and deal every image afresh; the '
           "run says how many images' membership it discards")
  fingerprint_content: bool = options.option(
      False, flag='--fingerprint-content',
      help='the cache notices changed images by path, size and mtime; this adds a sha256 of '
           'every referenced file (reads them all before each run). (On Kubeflow, `compile` '
           'turns caching off for ImageExampleGen instead.)')
  near_duplicates: str = options.option(
      NEAR_DUPLICATES_GROUP, flag='--near-duplicates', choices=NEAR_DUPLICATES_CHOICES,
      help='images that are copies of one another once re-encoded, resized, cropped or '
           're-exposed (perceptual fingerprints, verified on thumbnails; needs --verify full): '
           'group deals each group to one split as one unit, keeping the split a previous '
           'span gave any of them; report deals them as any image and reports them; off does '
           'not look (default %(default)s)')
  quality_thresholds: str = options.option(
      '', flag='--quality-thresholds', metavar='NAME=VALUE,...',
      help='image-quality thresholds to change from their defaults (dark, light, blurry, low '
           'information, odd size and aspect; docs/near_duplicates.md lists them), e.g. '
           'dark=0.1')
  shortcut_threshold: float = options.option(
      DEFAULT_SHORTCUT_THRESHOLD, flag='--shortcut-threshold', kind=float, metavar='ACCURACY',
      help='warn of shortcut risk when non-anatomical properties (size, mode, format, '
           'intensity, borders, corners) tell some class from the others with at least this '
           'cross-validated balanced accuracy (chance 0.5; default %(default)s)')
  shard_size: str = options.option(
      '', flag='--shard-size', metavar='SIZE',
      help='write each split as files of about SIZE (e.g. 256MiB, 1GB; K/M/G and KiB/MiB/GiB '
           'are powers of 1024, KB/MB/GB of 1000): max(1, ceil(split bytes / SIZE)) files, '
           'classes spread evenly over them. It sets only the file count: split membership '
           'and the split weights stay those of --splits. Default: the shard counts of --splits')

  def __post_init__(self):
    if not (isinstance(self.shortcut_threshold, (int, float))
            and not isinstance(self.shortcut_threshold, bool)
            and 0 < self.shortcut_threshold <= 1):
      raise ConfigError(f'shortcut_threshold must be a number in (0, 1], got '
                        f'{self.shortcut_threshold!r} (option --shortcut-threshold).')
    if self.quality_thresholds:
      self.quality_thresholds_parsed  # pylint: disable=pointless-statement  (raises if bad)
    if self.class_mapping:  # empty: derived from an image folder's class folders
      validate_class_mapping(self.class_mapping)
    object.__setattr__(self, 'splits', tuple(
        s if isinstance(s, SplitSpec) else SplitSpec(*s) for s in self.splits))
    validate_splits(self.splits)
    object.__setattr__(self, 'allowed_roots', tuple(self.allowed_roots))
    options.validate(self)
    try:
      mask_check_lib.parse_size(self.mask_size)
    except ValueError as e:
      raise ConfigError(f'mask_size: {e} (option --mask-size).') from e
    if self.shard_size:
      self.shard_size_bytes  # pylint: disable=pointless-statement  (raises if bad)
    try:
      parse_dicom_window(self.dicom_window)
    except ValueError as e:
      raise ConfigError(f'dicom_window: {e} (option --dicom-window).') from e
    if not isinstance(self.split_manifest, str):
      raise ConfigError(f'split_manifest must be a path or URI, got {self.split_manifest!r} '
                        '(option --split-manifest).')
    if self.fresh_splits and self.split_manifest:
      raise ConfigError('give a split manifest to keep (option --split-manifest) or start over '
                        '(option --fresh-splits), not both.')
    if self.group_column.startswith(DICOM_GROUP_PREFIX):
      try:
        check_dicom_keyword(self.dicom_group_keyword)
      except ValueError as e:
        raise ConfigError(f'group_column {self.group_column!r}: {e} (option --group-column '
                          f'{DICOM_GROUP_PREFIX}KEYWORD).') from e

  def for_input(self, csv_path: str) -> 'IngestConfig':
    """The defaults that depend on the input, decided here once: group_assignment '' becomes
    'stable' for a span pattern in ``csv_path`` ({SPAN}, {VERSION}, a date), else
    'balanced'."""
    if self.group_assignment:
      return self
    spanned = bool(csv_path) and spans_lib.has_any_spec(csv_path)
    return dataclasses.replace(self, group_assignment=(
        GROUP_ASSIGNMENT_STABLE if spanned else GROUP_ASSIGNMENT_BALANCED))

  @property
  def dicom_group_keyword(self) -> str:
    """'PatientID' for group_column 'dicom:PatientID'; '' for a CSV column or none."""
    return dicom_group_keyword(self.group_column)

  @property
  def group_hash_salt(self) -> str:
    return self.group_salt or DEFAULT_GROUP_SALT

  @property
  def shard_size_bytes(self) -> int:
    """``shard_size`` in bytes (shard_sizing.parse_size); 0 when not given (the files are the
    shard counts of ``splits``)."""
    # Imported here: shard_sizing imports assignment, which imports this module.
    from components.image_example_gen import shard_sizing
    return shard_sizing.parse_size(self.shard_size) if self.shard_size else 0

  @property
  def declared_mask_size(self) -> Tuple[int, ...]:
    return mask_check_lib.parse_size(self.mask_size)

  @property
  def quality_thresholds_parsed(self):
    """``quality_thresholds`` ('NAME=VALUE,...') over quality.QualityThresholds' defaults."""
    return parse_quality_thresholds(self.quality_thresholds)

  @property
  def measures_images(self) -> bool:
    """Whether the workers measure each image's pixels (fingerprint, quality, properties):
    they do on the decode verify=full makes; header mode decodes no image."""
    return self.verify == VERIFY_FULL

  @property
  def quarantine(self) -> bool:
    return self.on_bad_record == ON_BAD_RECORD_QUARANTINE

  @property
  def total_shards(self) -> int:
    return sum(s.num_shards for s in self.splits)


def parse_quality_thresholds(text: str):
  """'dark=0.1,blurry=20' -> quality.QualityThresholds with those fields changed; ConfigError
  naming the option on an unknown name or a value that is not a number."""
  from components.image_example_gen import quality  # numpy: imported when a config is made
  defaults = quality.QualityThresholds()
  names = [f.name for f in dataclasses.fields(defaults)]
  changes = {}
  for item in filter(None, (t.strip() for t in str(text or '').split(','))):
    name, sep, value = item.partition('=')
    name = name.strip()
    if not sep or name not in names:
      raise ConfigError(f'quality_thresholds: {item!r} is not NAME=VALUE with NAME one of '
                        f'{names} (option --quality-thresholds).')
    try:
      number = float(value)
      if not math.isfinite(number):
        raise ValueError
    except ValueError:
      raise ConfigError(f'quality_thresholds: {name} must be a number, got {value!r} '
                        '(option --quality-thresholds).') from None
    changes[name] = type(getattr(defaults, name))(number)
  return dataclasses.replace(defaults, **changes)


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
  from pydicom import datadict  # only for dicom: groups
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
