"""Reading and checking the index: rows of ``image_path, mask_path, class``.

This is all the launcher reads: the index (ids, paths, labels, groups), never an image or a
mask, so it stays small at any dataset size. ``parse_index`` is pure; ``read_index`` adds the
CSV read (``tf.io.gfile``, so ``gs://`` works, imported lazily) and the allowed-root rule by
name. The files themselves are opened and checked by the Beam workers (``files.py``).

The index comes from a CSV or from an image folder (``Source``): ``read_folder_index`` lists the
folder (``folders.py``, names only) into the CSV it stands for and checks that text with the
same ``parse_index``, so both inputs obey the same rules.
"""
import collections
import csv
import dataclasses
import functools
import io
import os
import posixpath
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from components.errors import CxrError
from components.errors import special_file
from components.image_example_gen import files
from components.image_example_gen import folders
from components.image_example_gen.config import dicom_group_keyword
from components.image_example_gen.config import IngestConfig

IMAGE_PATH_COLUMN = 'image_path'
MASK_PATH_COLUMN = 'mask_path'
CLASS_COLUMN = 'class'
IMAGE_ID_COLUMN = 'image_id'  # optional; defaults to the image path as written in the CSV
REQUIRED_COLUMNS = (IMAGE_PATH_COLUMN, MASK_PATH_COLUMN, CLASS_COLUMN)

MAX_LISTED_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class IndexRow:
  """One CSV row, resolved. ``line`` is the CSV line the row ends on (the header is line 1)."""
  line: int
  image_id: str
  image_path: str
  mask_path: str  # '' when the row has no mask
  label: int
  class_name: str
  group: str = ''  # the group column's value (e.g. patient id); '' without a group column
  image_sha256: str = ''  # content hash, once a worker has read the image
  image_as_written: str = ''  # the paths as the CSV spells them, for error and quarantine records
  mask_as_written: str = ''
  # Set by a worker's check pass (ingest.load_and_hash), which checks and serializes the row
  # once; the write pass copies its record:
  mask_sha256: str = ''
  mask_findings: Tuple[str, ...] = ()  # mask_check codes
  fingerprint: str = ''  # perceptual fingerprint text (image_facts), '' if not measured
  measures: str = ''  # image_facts.ImageFacts.encode(): quality measures and properties
  size: int = 0  # bytes of the image and its mask, from the check pass (shard sizing)
  record: str = ''  # where the check pass wrote the row's serialized record: 'chunk:offset:len'
  dicom_counts: str = ''  # JSON {category: {key: n}} of the row's DICOM files ('' for none)

  def as_written(self, path: str) -> str:
    """A resolved path of this row -> how the CSV wrote it."""
    return {self.image_path: self.image_as_written or self.image_path,
            self.mask_path: self.mask_as_written or self.mask_path}.get(path, path)


@dataclasses.dataclass(frozen=True)
class Problem:
  """A bad row: where it is (CSV line), which path (as written in the CSV), and why; a row with
  several problems (a bad image and a bad mask) lists each in ``problems``."""
  line: int
  path: str
  reason: str  # every reason, joined with '; '
  problems: Tuple[Tuple[str, str], ...] = ()  # ((path as written, reason), ...) when several

  def __str__(self):
    return f'line {self.line}: {self.reason}' + (f' ({self.path})' if self.path else '')

  def to_dict(self) -> Dict[str, object]:
    out = dict(line=self.line, path=self.path, reason=self.reason)
    if len(self.problems) > 1:
      out['problems'] = [dict(path=p, reason=r) for p, r in self.problems]
    return out

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> 'Problem':
    return cls(d['line'], d['path'], d['reason'],
               tuple((p['path'], p['reason']) for p in d.get('problems', ())))

  @classmethod
  def of(cls, line: int, problems: Sequence[Tuple[str, str]]) -> 'Problem':
    """One record for a row's (path as written, reason) problems, image first."""
    return cls(line, problems[0][0], '; '.join(r for _, r in problems), tuple(problems))


@dataclasses.dataclass
class CheckedIndex:
  """The outcome of reading an index: rows to write, and rows set aside with their reasons.

  ``rows_in`` counts every data row of the CSV, so rows_in == len(rows) + len(quarantined)
  always holds (one quarantine record per bad row, its reasons joined).
  """
  rows: List[IndexRow]
  quarantined: List[Problem]
  rows_in: int


class IndexValidationError(CxrError, ValueError):
  """The CSV index cannot be used as it is. ``problems`` lists every bad row found."""

  def __init__(self, csv_path: str, problems: Sequence[Problem], summary: str = ''):
    self.csv_path = csv_path
    self.problems = list(problems)
    counts = collections.Counter(_reason_kind(p.reason) for p in self.problems)
    lines = [f'{csv_path}: {summary or f"{len(self.problems)} bad row(s)"}']
    lines += [f'  {p}' for p in self.problems[:MAX_LISTED_PROBLEMS]]
    if len(self.problems) > MAX_LISTED_PROBLEMS:
      lines.append(f'  ... and {len(self.problems) - MAX_LISTED_PROBLEMS} more')
    if len(counts) > 1 or len(self.problems) > MAX_LISTED_PROBLEMS:
      lines.append('  totals: ' + ', '.join(f'{k}: {v}' for k, v in sorted(counts.items())))
    super().__init__('\n'.join(lines))


def _reason_kind(reason: str) -> str:
  return reason.split(':', 1)[0]


is_uri = files.is_uri


def _plain(path: str) -> bool:
  """A relative path that normalises to itself (no '', '.' or '..' segment): the common case,
  which skips normpath (the launcher's largest cost on a 1M-row index, bench/)."""
  segments = path.split('/')
  return '' not in segments and '.' not in segments and '..' not in segments


def resolve_path(path: str, base_dir: str) -> str:
  """A CSV path -> the path to read: relative paths resolve against the CSV's folder."""
  if is_uri(path) or os.path.isabs(path):
    return path
  if is_uri(base_dir):
    return posixpath.normpath(posixpath.join(base_dir, path)).replace(':/', '://', 1)
  if _plain(path) and base_dir == _normalised_dir(base_dir):
    return base_dir + path if base_dir.endswith('/') else f'{base_dir}/{path}'
  return os.path.normpath(os.path.join(base_dir, path))


@functools.lru_cache(maxsize=64)
def _normalised_dir(base_dir: str) -> str:
  return os.path.normpath(os.path.abspath(base_dir))


def default_image_id(raw_image_path: str, csv_dir: str = '') -> str:
  """The key of a row without an ``image_id`` column: its image path as written, normalised; an
  absolute path or URI inside the CSV's folder is taken relative to it, so a CSV moved with its
  data and rewritten to the new place (another folder, a bucket) keeps every key. (Split
  membership never depends on it: it follows the image's content.)"""
  path = raw_image_path.strip().replace('\\', '/')
  if not _plain(path):
    path = posixpath.normpath(path)
  base = csv_dir.replace('\\', '/').rstrip('/')
  if base and (is_uri(path) or path.startswith('/')) and path.startswith(base + '/'):
    return path[len(base) + 1:]
  return path


def parse_index(csv_text: Union[str, Iterable[str]], csv_dir: str, class_mapping: Mapping[str, int],
                csv_path: str = '<csv>', group_column: str = '') -> CheckedIndex:
  """Parses the CSV text; bad rows become problems, one per row (pure: no file access).

  Raises IndexValidationError only when the CSV as a whole is unusable: a required column is
  missing, it cannot be parsed, or it has no rows. Row checks: an image path is given, the
  class is in the mapping, the field count matches the header, the ``image_id`` is unique
  (the first occurrence is kept), and the group column, if named, is filled in (a
  ``dicom:<keyword>`` group is no CSV column: the workers read it from each DICOM image).
  """
  reader = csv.DictReader(io.StringIO(csv_text, newline='') if isinstance(csv_text, str)
                          else csv_text)
  try:
    header = reader.fieldnames or []
  except csv.Error as e:
    raise IndexValidationError(csv_path, [], f'unparseable CSV header: {e}') from e
  csv_group = '' if dicom_group_keyword(group_column) else group_column  # dicom:X: workers
  missing = [c for c in REQUIRED_COLUMNS + ((csv_group,) if csv_group else ())
             if c not in header]
  if missing:
    raise IndexValidationError(
        csv_path, [], f'missing column(s) {missing}; the header must name '
        f'{", ".join(REQUIRED_COLUMNS)}' + (f' and the group column {csv_group!r} '
                                             '(option --group-column)' if csv_group else '')
        + f' (found: {header or "no header"})')
  rows: List[IndexRow] = []
  problems: List[Problem] = []
  first_line_of_id: Dict[str, int] = {}
  rows_in = 0
  try:
    for record in reader:
      rows_in += 1
      line = reader.line_num
      raw_image = (record.get(IMAGE_PATH_COLUMN) or '').strip()
      raw_mask = (record.get(MASK_PATH_COLUMN) or '').strip()
      class_name = (record.get(CLASS_COLUMN) or '').strip()
      if None in record:  # more fields than header columns
        problems.append(Problem(line, raw_image, 'bad row: more fields than the header has'))
        continue
      if not raw_image:
        problems.append(Problem(line, '', 'no image path: the image_path column is empty'))
        continue
      if class_name not in class_mapping:
        problems.append(Problem(
            line, raw_image, f'unknown class: {class_name!r} is not in the class mapping '
            f'{sorted(class_mapping)}'))
        continue
      group = (record.get(csv_group) or '').strip() if csv_group else ''
      if csv_group and not group:
        problems.append(Problem(line, raw_image, f'no group: the {csv_group!r} column is empty'))
        continue
      image_id = (record.get(IMAGE_ID_COLUMN) or '').strip() or default_image_id(raw_image,
                                                                                 csv_dir)
      if image_id in first_line_of_id:
        problems.append(Problem(
            line, raw_image, f'duplicate image_id: {image_id!r} is also on line '
            f'{first_line_of_id[image_id]}'))
        continue
      first_line_of_id[image_id] = line
      rows.append(IndexRow(
          line=line, image_id=image_id,
          image_path=resolve_path(raw_image, csv_dir),
          mask_path=resolve_path(raw_mask, csv_dir) if raw_mask else '',
          label=class_mapping[class_name], class_name=class_name, group=group,
          image_as_written=raw_image, mask_as_written=raw_mask))
  except csv.Error as e:
    raise IndexValidationError(
        csv_path, problems, f'unparseable CSV at line {reader.line_num}: {e}') from e
  except UnicodeDecodeError as e:  # a CSV streamed from a local file (read_index)
    raise IndexValidationError(csv_path, [], f'the CSV is not UTF-8 text: {e}') from e
  if not rows_in:
    raise IndexValidationError(csv_path, [], 'the index has a header but no rows')
  return CheckedIndex(rows, problems, rows_in)


def read_csv_text(csv_path: str) -> str:
  """The CSV's text: a local file with open() (no TensorFlow import, so `cxr-tfx validate`
  shares this), a URI with tf.io.gfile."""
  if is_uri(csv_path):
    import tensorflow as tf  # URIs only
    if not tf.io.gfile.exists(csv_path):
      raise IndexValidationError(csv_path, [], 'the CSV index does not exist (option --csv)')
    with tf.io.gfile.GFile(csv_path, 'rb') as f:
      raw = f.read()
  else:
    special = special_file(csv_path)
    if special:
      raise IndexValidationError(csv_path, [], f'the CSV index is {special}; give a regular '
                                 'file (option --csv)')
    try:
      with open(csv_path, 'rb') as f:
        raw = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
      raise IndexValidationError(
          csv_path, [], 'the CSV index does not exist (option --csv)') from e
  try:
    return raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise IndexValidationError(csv_path, [], f'the CSV is not UTF-8 text: {e}') from e


def read_csv_text_check(csv_path: str) -> None:
  """What read_csv_text refuses about a local CSV before reading it (special files, missing)."""
  special = special_file(csv_path)
  if special:
    raise IndexValidationError(csv_path, [], f'the CSV index is {special}; give a regular '
                               'file (option --csv)')
  if not os.path.isfile(csv_path):
    raise IndexValidationError(csv_path, [], 'the CSV index does not exist (option --csv)')


def csv_folder(csv_path: str) -> str:
  return posixpath.dirname(csv_path) if is_uri(csv_path) else os.path.dirname(
      os.path.abspath(csv_path))


def read_index(csv_path: str, class_mapping: Mapping[str, int],
               allowed_roots: Sequence[str] = (), group_column: str = '') -> CheckedIndex:
  """Reads the CSV (any ``tf.io.gfile`` path) and checks every row without opening its files.

  Row problems: those of ``parse_index``, plus paths outside the allowed roots by name
  (normalised path or URI prefix; symlinks are resolved by the worker that opens the file).
  The caller applies the bad-record policy; ``rows_in == len(rows) + len(quarantined)``.
  """
  csv_dir = csv_folder(csv_path)
  if is_uri(csv_path):
    parsed = parse_index(read_csv_text(csv_path), csv_dir, class_mapping, csv_path,
                         group_column)
  else:  # streamed: the text is never held whole (a 1M-row index is ~100 MB)
    read_csv_text_check(csv_path)
    with open(csv_path, encoding='utf-8-sig', newline='') as f:
      parsed = parse_index(f, csv_dir, class_mapping, csv_path, group_column)
  return _check_roots(parsed, files.resolve_roots(allowed_roots, csv_dir))


@dataclasses.dataclass(frozen=True)
class Source:
  """Where the rows come from: a CSV index or an image folder, exactly one."""
  csv_path: str = ''
  image_dir: str = ''

  def __post_init__(self):
    if bool(self.csv_path) == bool(self.image_dir):
      raise SourceError('give exactly one input: a CSV index (option --csv) or an image folder '
                        f'(option --image-dir); got csv_path={self.csv_path!r}, '
                        f'image_dir={self.image_dir!r}')

  @property
  def label(self) -> str:
    """How errors name the input."""
    return self.csv_path or self.image_dir

  @property
  def base_dir(self) -> str:
    """The folder relative paths resolve against, and the default allowed root."""
    if self.csv_path:
      return csv_folder(self.csv_path)
    return self.image_dir.rstrip('/') if is_uri(self.image_dir) else os.path.abspath(
        self.image_dir)


class SourceError(CxrError, ValueError):
  """The input is not given right (both or neither of CSV and folder, or no such folder)."""


def _check_roots(parsed: CheckedIndex, roots: Sequence[str]) -> CheckedIndex:
  """Rows whose image or mask lies outside the allowed roots by name become problems."""
  rows, problems = [], list(parsed.quarantined)
  for row in parsed.rows:
    outside = [(row.as_written(p), f'outside allowed roots: the {what} is outside {list(roots)}; '
                'add its folder with --allowed-root if it is trusted')
               for what, p in (('image', row.image_path), ('mask', row.mask_path))
               if p and not files.within_by_name(p, roots)]
    if outside:
      problems.append(Problem.of(row.line, outside))
    else:
      rows.append(row)
  return CheckedIndex(rows, sorted(problems, key=lambda p: p.line), parsed.rows_in)


@dataclasses.dataclass
class FolderIndex:
  """An image folder's index: the checked rows, the class mapping used (the given one, else
  the sorted class folders) and the listing (whose ``csv_text`` the line numbers refer to).
  ``classes_without_folder``: the given mapping's classes that have no class folder (holding
  images) in this folder, sorted by label -- allowed (a span may lack a class; its label stays
  reserved), and said by the command line."""
  checked: CheckedIndex
  class_mapping: Dict[str, int]
  listing: folders.Listing
  classes_without_folder: List[str] = dataclasses.field(default_factory=list)


def check_folder_classes(image_dir: str, listing: folders.Listing,
                         class_mapping: Mapping[str, int]) -> List[str]:
  """A given class mapping must name every class folder that holds images: raises SourceError
  naming the folders it misses, the mapping's classes and the folders. Returns the mapping's
  classes that have no folder (sorted by label; allowed). An empty mapping checks nothing."""
  if not class_mapping:
    return []
  unnamed = [c for c in listing.classes if c not in class_mapping]
  if unnamed:
    raise SourceError(
        f'the class mapping (option --class-mapping) does not name the class folder(s) '
        f'{unnamed} of {image_dir}; the mapping names {sorted(class_mapping)}, the folders are '
        f'{listing.classes}. Add the missing classes to the mapping (with new labels), or '
        'move those folders out of the image folder')
  present = set(listing.classes)
  return [name for name, _ in sorted(class_mapping.items(), key=lambda kv: kv[1])
          if name not in present]


def read_folder_index(image_dir: str, class_mapping: Mapping[str, int],
                      allowed_roots: Sequence[str] = (), group_column: str = '') -> FolderIndex:
  """Lists ``image_dir`` (names only) and checks its rows as ``read_index`` checks a CSV's.

  An empty ``class_mapping`` means the sorted class folders that hold images. A given one must
  name every class folder that holds images (SourceError otherwise, naming both sides:
  ``check_folder_classes``); its classes without a folder are allowed and listed in
  ``FolderIndex.classes_without_folder``."""
  base = Source(image_dir=image_dir).base_dir
  try:
    listing = folders.list_image_dir(base)
  except FileNotFoundError as e:
    raise SourceError(f'{image_dir}: the image folder does not exist or is not a folder '
                      '(option --image-dir)') from e
  if not listing.rows:
    raise IndexValidationError(
        image_dir, [], 'no images found: expected DIR/<class>/<image files> or '
        'DIR/<class>/images/<image files> (option --image-dir)')
  without_folder = check_folder_classes(image_dir, listing, class_mapping)
  mapping = dict(class_mapping) or listing.default_class_mapping()
  parsed = parse_index(listing.csv_text(), base, mapping, image_dir, group_column)
  ambiguous = [r for r in parsed.rows if r.image_as_written in listing.ambiguous_masks]
  if ambiguous:
    bad = {r.line for r in ambiguous}
    parsed = CheckedIndex(
        [r for r in parsed.rows if r.line not in bad],
        parsed.quarantined + [Problem(
            r.line, r.image_as_written, 'ambiguous mask: several files in masks/ have this '
            f'image\'s name: {listing.ambiguous_masks[r.image_as_written]}') for r in ambiguous],
        parsed.rows_in)
  checked = _check_roots(parsed, files.resolve_roots(allowed_roots, base))
  return FolderIndex(checked, mapping, listing, without_folder)


def fail_on_problems(csv_path: str, checked: CheckedIndex,
                     problems: Sequence[Problem]) -> None:
  """The 'fail' policy: any bad row stops the run, listing every bad row (nothing written)."""
  if problems:
    raise IndexValidationError(
        csv_path, sorted(problems, key=lambda p: p.line),
        f'{len(problems)} of {checked.rows_in} rows are bad and nothing was written; fix them, '
        'or pass --on-bad-record quarantine to write the good rows and record the bad ones')


@dataclasses.dataclass
class SourceIndex:
  """What the launcher read from the input: the checked rows, the config with the class mapping
  used (an image folder's sorted class folders when none was given), the folder's index (None
  for a CSV)."""
  checked: CheckedIndex
  config: IngestConfig
  folder: Optional[FolderIndex] = None


def read_source(source: Source, config: IngestConfig) -> SourceIndex:
  """The launcher's read, for ImageExampleGen and ``cxr-tfx validate`` alike: the CSV, or the
  folder's listing (names only). A CSV needs a class mapping."""
  if source.image_dir:
    folder = read_folder_index(source.image_dir, config.class_mapping, config.allowed_roots,
                               config.group_column)
    return SourceIndex(folder.checked, dataclasses.replace(
        config, class_mapping=folder.class_mapping), folder)
  if not config.class_mapping:
    raise SourceError(f'{source.csv_path}: a CSV index needs a class mapping '
                      '(option --class-mapping); only an image folder (--image-dir) '
                      'defaults to its class folder names')
  return SourceIndex(read_index(source.csv_path, config.class_mapping, config.allowed_roots,
                                config.group_column), config)
