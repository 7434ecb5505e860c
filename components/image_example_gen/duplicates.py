"""Duplicate images (same bytes under different rows): find them, apply the policy, and see
which ones cross splits, the leakage that matters most in medical imaging (pure module).

The content hash comes from the header check, so duplicates are known before anything is
written: ``fail`` stops, ``drop`` keeps the first row by key and quarantines the others,
``report`` keeps all and lists them (cross-split ones are leakage anomalies downstream).
"""
import collections
import dataclasses
from typing import Dict, List, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen.config import DUPLICATES_FAIL, DUPLICATES_REPORT
from components.image_example_gen.index import IndexRow, Problem


class DuplicateImagesError(CxrError, ValueError):
  """Duplicates were found and the policy is 'fail'."""


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
  """Rows whose image files have identical bytes; ``rows`` sorted by image_id."""
  sha256: str
  rows: Tuple[IndexRow, ...]

  def describe(self) -> str:
    return f'sha256 {self.sha256[:12]}…: ' + ', '.join(
        f'line {r.line} {r.image_id!r} ({r.class_name})' for r in self.rows)


def find_duplicates(rows: Sequence[IndexRow]) -> List[DuplicateGroup]:
  by_hash: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    if row.image_sha256:
      by_hash[row.image_sha256].append(row)
  return sorted((DuplicateGroup(h, tuple(sorted(rs, key=lambda r: r.image_id)))
                 for h, rs in by_hash.items() if len(rs) > 1), key=lambda g: g.rows[0].image_id)


def apply_policy(rows: Sequence[IndexRow], policy: str
                 ) -> Tuple[List[IndexRow], List[Problem], List[DuplicateGroup]]:
  """-> (rows to write, rows dropped as problems, duplicate groups found)."""
  groups = find_duplicates(rows)
  if not groups or policy == DUPLICATES_REPORT:
    return list(rows), [], groups
  if policy == DUPLICATES_FAIL:
    listed = '\n'.join(f'  {g.describe()}' for g in groups[:20])
    raise DuplicateImagesError(
        f'{len(groups)} image(s) appear under more than one row, and nothing was written:\n'
        f'{listed}\nRemove them, or pass --duplicates drop (keep the first by image_id, '
        'quarantine the rest) or --duplicates report.')
  dropped = {}
  for g in groups:
    keep = g.rows[0]
    for r in g.rows[1:]:
      dropped[r.image_id] = Problem(
          r.line, r.as_written(r.image_path),
          f'duplicate image: same bytes as {keep.image_id!r} (line {keep.line})')
  return [r for r in rows if r.image_id not in dropped], list(dropped.values()), groups


def cross_split(groups: Sequence[DuplicateGroup],
                split_of: Dict[str, str]) -> List[Dict[str, object]]:
  """Each duplicate group as a report entry: its members, their splits, and whether it leaks."""
  out = []
  for g in groups:
    members = [dict(image_id=r.image_id, line=r.line, class_name=r.class_name,
                    split=split_of.get(r.image_id, '')) for r in g.rows]
    kept = {m['split'] for m in members if m['split']}
    out.append(dict(sha256=g.sha256, members=members, crosses_splits=len(kept) > 1))
  return out
