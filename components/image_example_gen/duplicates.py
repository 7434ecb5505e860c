"""Duplicate images (same bytes under different rows) and the drop policy (pure module).

The content hash comes from the workers' check pass (``duplicates=drop`` needs it before rows
are assigned): ``drop`` keeps the first row by key and quarantines the others. ``report`` and
``fail`` need no check pass: the ingest job groups the written rows by sha256, and the launcher
lists the groups (cross-split ones are leakage anomalies downstream) or stops.
"""
import collections
import dataclasses
from typing import Any, Dict, List, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen.config import DUPLICATES_DROP
from components.image_example_gen.index import IndexRow
from components.image_example_gen.index import Problem


class DuplicateImagesError(CxrError, ValueError):
  """Duplicates were found and the policy is 'fail'."""


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
  """Rows whose image files have identical bytes; ``rows`` sorted by image_id."""
  sha256: str
  rows: Tuple[IndexRow, ...]


def find_duplicates(rows: Sequence[IndexRow]) -> List[DuplicateGroup]:
  by_hash: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    if row.image_sha256:
      by_hash[row.image_sha256].append(row)
  return sorted((DuplicateGroup(h, tuple(sorted(rs, key=lambda r: r.image_id)))
                 for h, rs in by_hash.items() if len(rs) > 1), key=lambda g: g.rows[0].image_id)


def apply_policy(rows: Sequence[IndexRow], policy: str
                 ) -> Tuple[List[IndexRow], List[Problem], List[DuplicateGroup]]:
  """-> (rows to write, rows dropped as problems, duplicate groups found). 'drop' drops; any
  other policy keeps every row ('fail' is applied to the job's results: ``fail_error``)."""
  groups = find_duplicates(rows)
  if not groups or policy != DUPLICATES_DROP:
    return list(rows), [], groups
  dropped = {}
  for g in groups:
    keep = g.rows[0]
    for r in g.rows[1:]:
      dropped[r.image_id] = Problem(
          r.line, r.as_written(r.image_path),
          f'duplicate image: same bytes as {keep.image_id!r} (line {keep.line})')
  return [r for r in rows if r.image_id not in dropped], list(dropped.values()), groups


def fail_error(groups: Sequence[Dict[str, Any]]) -> DuplicateImagesError:
  """The 'fail' policy's error for duplicate groups {sha256, members: [{image_id, line,
  class_name, split}]}, as the ingest job reports them."""
  listed = '\n'.join(f"  sha256 {g['sha256'][:12]}…: " + ', '.join(
      f"line {m['line']} {m['image_id']!r} ({m['class_name']})" for m in g['members'])
                     for g in groups[:20])
  return DuplicateImagesError(
      f'{len(groups)} image(s) appear under more than one row, and nothing was written:\n'
      f'{listed}\nRemove them, or pass --duplicates drop (keep the first by image_id, '
      'quarantine the rest) or --duplicates report.')
