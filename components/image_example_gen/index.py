"""Reading and checking the CSV index: rows of ``image_path, mask_path, class``.

Only the index is read here (ids, paths, labels), never image bytes, so this stays small at any
dataset size. ``parse_index`` is pure; ``read_index`` adds the file system (``tf.io.gfile``, so
``gs://`` works), imported lazily to keep this module light.
"""
import collections
import csv
import dataclasses
import io
import os
import posixpath
from typing import Callable, Dict, List, Mapping, Optional, Sequence

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


@dataclasses.dataclass(frozen=True)
class Problem:
  """A bad row: where it is, which path, and why."""
  line: int
  path: str
  reason: str

  def __str__(self):
    return f'line {self.line}: {self.reason}' + (f' ({self.path})' if self.path else '')


class IndexValidationError(ValueError):
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


def is_uri(path: str) -> bool:
  return '://' in path


def resolve_path(path: str, base_dir: str) -> str:
  """A CSV path -> the path to read: relative paths resolve against the CSV's folder."""
  if is_uri(path) or os.path.isabs(path):
    return path
  if is_uri(base_dir):
    return posixpath.normpath(posixpath.join(base_dir, path)).replace(':/', '://', 1)
  return os.path.normpath(os.path.join(base_dir, path))


def default_image_id(raw_image_path: str) -> str:
  """The stable key of a row without an ``image_id`` column: its image path as written, normalised.

  It does not depend on where the dataset is mounted, so moving the folder keeps every key (and
  therefore every shard assignment) unchanged.
  """
  return posixpath.normpath(raw_image_path.strip().replace('\\', '/'))


def parse_index(csv_text: str, csv_dir: str, class_mapping: Mapping[str, int],
                csv_path: str = '<csv>') -> List[IndexRow]:
  """Parses the CSV text into rows; raises IndexValidationError listing every bad row.

  Checks: header has the required columns, at least one row, every class is in the mapping,
  every row has an image path, no duplicate ``image_id``.
  """
  reader = csv.DictReader(io.StringIO(csv_text, newline=''))
  header = reader.fieldnames or []
  missing = [c for c in REQUIRED_COLUMNS if c not in header]
  if missing:
    raise IndexValidationError(
        csv_path, [], f'missing column(s) {missing}; the header must name '
        f'{", ".join(REQUIRED_COLUMNS)} (found: {header or "no header"})')
  rows: List[IndexRow] = []
  problems: List[Problem] = []
  first_line_of_id: Dict[str, int] = {}
  try:
    for record in reader:
      line = reader.line_num
      if None in record:  # more fields than header columns
        problems.append(Problem(line, '', 'bad row: more fields than the header has'))
        continue
      raw_image = (record.get(IMAGE_PATH_COLUMN) or '').strip()
      raw_mask = (record.get(MASK_PATH_COLUMN) or '').strip()
      class_name = (record.get(CLASS_COLUMN) or '').strip()
      if not raw_image:
        problems.append(Problem(line, '', 'no image path: the image_path column is empty'))
        continue
      if class_name not in class_mapping:
        problems.append(Problem(
            line, raw_image, f'unknown class: {class_name!r} is not in the class mapping '
            f'{sorted(class_mapping)}'))
        continue
      image_id = (record.get(IMAGE_ID_COLUMN) or '').strip() or default_image_id(raw_image)
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
          label=class_mapping[class_name], class_name=class_name))
  except csv.Error as e:
    raise IndexValidationError(csv_path, problems, f'unparseable CSV at line {reader.line_num}: {e}')
  if problems:
    raise IndexValidationError(csv_path, problems)
  if not rows:
    raise IndexValidationError(csv_path, [], 'the index has a header but no rows')
  return rows


def find_missing_files(rows: Sequence[IndexRow],
                       exists: Optional[Callable[[str], bool]] = None) -> List[Problem]:
  """Every image or mask path that does not exist, as problems."""
  if exists is None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    exists = tf.io.gfile.exists
  problems = []
  for row in rows:
    if not exists(row.image_path):
      problems.append(Problem(row.line, row.image_path, 'missing file: image not found'))
    if row.mask_path and not exists(row.mask_path):
      problems.append(Problem(row.line, row.mask_path, 'missing file: mask not found'))
  return problems


def read_index(csv_path: str, class_mapping: Mapping[str, int],
               check_files: bool = True) -> List[IndexRow]:
  """Reads the CSV (any ``tf.io.gfile`` path), parses it, and checks that its files exist."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(csv_path):
    raise IndexValidationError(csv_path, [], 'the CSV index does not exist (option --csv)')
  with tf.io.gfile.GFile(csv_path, 'rb') as f:
    raw = f.read()
  try:
    text = raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise IndexValidationError(csv_path, [], f'the CSV is not UTF-8 text: {e}') from e
  rows = parse_index(text, posixpath.dirname(csv_path) if is_uri(csv_path)
                     else os.path.dirname(os.path.abspath(csv_path)), class_mapping, csv_path)
  if check_files:
    problems = find_missing_files(rows, tf.io.gfile.exists)
    if problems:
      raise IndexValidationError(csv_path, problems)
  return rows
