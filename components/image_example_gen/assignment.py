"""Class-stratified, deterministic shard assignment (pure: no TensorFlow/TFX imports).

Shards are numbered across the splits in order (train=8,eval=1,test=1 -> shards 0-7 are train,
8 eval, 9 test). For every class with n examples over S shards, each shard gets floor(n/S) or
ceil(n/S) of them; the n mod S "extra" examples of successive classes go to successive shards
round a ring, so shard sizes also differ by at most one and each split's size is proportional to
its shard count.

Which example goes where is a function of (seed, image_id) only, never of the CSV's row order:
each class's examples are ordered by ``rank(seed, image_id)`` (sha256), then dealt in contiguous
runs to the shards by their quotas. Records inside a shard are written in another seeded hash
order, so the same rows in any order with the same seed give byte-identical shards, and another
seed gives another assignment.

With a group column (rows sharing a patient id), a group is the unit instead: groups are taken
largest first (ties in seeded hash order) and each goes to the shard where it least increases
the squared distance between the shard's class counts and its proportional target (ties: the
smaller shard, then a seeded hash). A whole group lands in one shard, so in one split; the
achieved deviation from proportional is reported (``max_class_deviation``), since floor/ceil
can no longer be guaranteed when groups are large.
"""
import collections
import dataclasses
import hashlib
from typing import Dict, List, Sequence, Tuple

from components.image_example_gen.config import SplitSpec
from components.image_example_gen.index import IndexRow

SHARD_FILE_PREFIX = 'data_tfrecord'
SHARD_FILE_SUFFIX = '.gz'


class AssignmentError(ValueError):
  """The rows cannot be assigned to the requested shards."""


@dataclasses.dataclass(frozen=True)
class Shard:
  """One output file: its split, its number within the split, and its rows in write order."""
  split: str
  index: int
  num_shards: int
  rows: Tuple[IndexRow, ...]

  @property
  def file_name(self) -> str:
    return (f'{SHARD_FILE_PREFIX}-{self.index:05d}-of-{self.num_shards:05d}'
            f'{SHARD_FILE_SUFFIX}')

  def class_counts(self) -> Dict[int, int]:
    return dict(sorted(collections.Counter(r.label for r in self.rows).items()))


def rank(seed: int, salt: str, key: str) -> bytes:
  """A stable pseudo-random sort key: the same in every process and on every platform."""
  return hashlib.sha256(f'{seed}\x00{salt}\x00{key}'.encode('utf-8')).digest()


def class_quotas(class_totals: Dict[int, int], num_shards: int,
                 seed: int) -> List[Dict[int, int]]:
  """Per shard, per class: how many examples it gets (floor or ceil of total / num_shards)."""
  quotas = [dict.fromkeys(class_totals, 0) for _ in range(num_shards)]
  offset = int.from_bytes(rank(seed, 'extras-offset', ''), 'big') % num_shards
  for label in sorted(class_totals):
    base, extra = divmod(class_totals[label], num_shards)
    for k in range(num_shards):
      quotas[k][label] = base
    for j in range(extra):
      quotas[(offset + j) % num_shards][label] += 1
    offset = (offset + extra) % num_shards
  return quotas


def assign_shards(rows: Sequence[IndexRow], splits: Sequence[SplitSpec],
                  seed: int) -> List[Shard]:
  """Assigns every row to exactly one shard. Returns the shards in global order."""
  ids = [r.image_id for r in rows]
  if len(set(ids)) != len(ids):
    dup = next(i for i, c in collections.Counter(ids).items() if c > 1)
    raise AssignmentError(f'duplicate image_id {dup!r}: every row needs a unique key.')
  num_shards = sum(s.num_shards for s in splits)
  if len(rows) < num_shards:
    raise AssignmentError(
        f'{len(rows)} rows cannot fill {num_shards} shards without empty shards; '
        'use fewer shards (option --splits).')

  if any(r.group for r in rows):
    shard_rows = _deal_groups(rows, num_shards, seed)
    empty = sum(1 for members in shard_rows if not members)
    if empty:
      raise AssignmentError(
          f'{len({r.group for r in rows})} groups cannot fill {num_shards} shards: {empty} would '
          'be empty; use fewer shards (option --splits).')
  else:
    shard_rows = _deal_rows(rows, num_shards, seed)

  shards = []
  k = 0
  for split in splits:
    for i in range(split.num_shards):
      ordered = sorted(shard_rows[k], key=lambda r: rank(seed, 'order', r.image_id))
      shards.append(Shard(split.name, i, split.num_shards, tuple(ordered)))
      k += 1
  return shards


def _deal_rows(rows: Sequence[IndexRow], num_shards: int, seed: int) -> List[List[IndexRow]]:
  """Each class in seeded hash order, dealt to shards in contiguous runs by quota."""
  by_class: Dict[int, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    by_class[row.label].append(row)
  for members in by_class.values():
    members.sort(key=lambda r: rank(seed, 'assign', r.image_id))
  quotas = class_quotas({c: len(m) for c, m in by_class.items()}, num_shards, seed)
  shard_rows: List[List[IndexRow]] = [[] for _ in range(num_shards)]
  for label, members in by_class.items():
    start = 0
    for k in range(num_shards):
      take = quotas[k][label]
      shard_rows[k].extend(members[start:start + take])
      start += take
  return shard_rows


def _deal_groups(rows: Sequence[IndexRow], num_shards: int, seed: int) -> List[List[IndexRow]]:
  """Greedy stratified group assignment: whole groups, closest to proportional per class."""
  groups: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    groups[row.group].append(row)
  totals = collections.Counter(r.label for r in rows)
  counts = [collections.Counter() for _ in range(num_shards)]
  shard_rows: List[List[IndexRow]] = [[] for _ in range(num_shards)]
  for name in sorted(groups, key=lambda g: (-len(groups[g]), rank(seed, 'group', g))):
    members = groups[name]
    add = collections.Counter(r.label for r in members)

    def cost(k, add=add, name=name):
      # Increase of sum_c (count_c - total_c / S)^2, times S so it stays an exact integer: a
      # float sum would depend on the order of add's items (so on CSV row order) in its last bit.
      increase = sum((2 * (counts[k][c] * num_shards - totals[c]) + n * num_shards) * n
                     for c, n in add.items())
      return increase, len(shard_rows[k]), rank(seed, 'group-tie', f'{name}\x00{k}')

    best = min(range(num_shards), key=cost)
    counts[best].update(add)
    shard_rows[best].extend(members)
  return shard_rows


def max_class_deviation(shards: Sequence[Shard]) -> float:
  """Largest |count - class total / number of shards| over shards and classes (in records).

  Below 1 means every shard holds floor or ceil of proportional for every class.
  """
  totals = collections.Counter(r.label for s in shards for r in s.rows)
  return max((abs(s.class_counts().get(c, 0) - n / len(shards))
              for s in shards for c, n in totals.items()), default=0.0)


def shard_class_counts(shards: Sequence[Shard]) -> Dict[str, List[Dict[int, int]]]:
  """{split: [per-shard {label: count}, ...]} for reports and artifact properties."""
  out: Dict[str, List[Dict[int, int]]] = collections.OrderedDict()
  for shard in shards:
    out.setdefault(shard.split, []).append(shard.class_counts())
  return out
