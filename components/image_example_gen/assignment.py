"""Class-stratified, deterministic shard assignment (pure: no TensorFlow/TFX imports).

Shards are numbered across the splits in order (train=8,eval=1,test=1 -> shards 0-7 are train,
8 eval, 9 test). K is the number of shards of all splits, k_s those of split s. Examples are
dealt in two levels, both class-stratified:

1. Splits (``split_quotas``): a class with n examples gives split s floor or ceil of n*k_s/K.
   The splits that get the ceil are chosen by largest remainder, ties in seeded hash order,
   subject to one more guarantee: each split's total is also floor or ceil of N*k_s/K (N all
   examples), so rounding never piles up in one split across classes. Such a rounding always
   exists (a matrix can be rounded keeping every entry and every row and column sum within
   floor/ceil); it is found by augmenting paths, first up to each split's floor, then its ceil.
2. Shards within a split (``class_quotas``): a class with m examples in a split of k shards
   gives each shard floor(m/k) or ceil(m/k); the m mod k "extra" examples of successive classes
   go to successive shards round a ring (seeded offset), so shard sizes within a split differ
   by at most one. Since floor(floor(x)/k) = floor(x/k) (and so for ceil), every shard also
   holds floor or ceil of n/K of each class and every shard size is floor or ceil of N/K.

Which example goes where is a function of (seed, image_id) only, never of the CSV's row order:
each class's examples are ordered by ``rank(seed, image_id)`` (sha256), then dealt in contiguous
runs to the shards by their quotas. Records inside a shard are written in another seeded hash
order, so the same rows in any order with the same seed give byte-identical shards, and another
seed gives another assignment.

With a group column (rows sharing a patient id), a group is the unit instead, with the same two
levels: groups are taken largest first (ties in seeded hash order) and each goes to the split,
then (among the groups of that split) to the shard, where it least increases the distance of the
class counts from their proportional targets (ties: the one furthest below its target size,
then a seeded hash); the last groups are kept for splits/shards that would otherwise stay empty.
A whole group lands in one shard, so in one split; floor/ceil can no longer be guaranteed when
groups are large, so the achieved deviation is reported (``max_class_deviation`` per shard,
``max_split_class_deviation`` per split).

``stable=True`` (spans: new data every week) changes the first level only: a group's split is
``stable_group_split(seed, group, splits)``, a seeded hash of the group's key weighted by the
splits' shard counts, so it depends on nothing else in the input. A patient seen in span 1's
test split is in the test split of every later span, never in a train split (leakage across
time). Class proportions per split are then only as close as chance makes them (reported as
above); shards within a split are still dealt greedily.
"""
import collections
import dataclasses
import hashlib
import math
from typing import Dict, List, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.index import IndexRow

SHARD_FILE_PREFIX = 'data_tfrecord'
SHARD_FILE_SUFFIX = '.gz'


class AssignmentError(CxrError, ValueError):
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


def split_quotas(class_totals: Dict[int, int], splits: Sequence[SplitSpec],
                 seed: int) -> Dict[str, Dict[int, int]]:
  """Per split, per class: how many examples it gets (floor or ceil of n * k_s / K).

  Each split's total is also floor or ceil of N * k_s / K. Among such roundings, the ceils go to
  the largest remainders first (ties in seeded hash order) as far as the totals allow.
  """
  num_shards = sum(s.num_shards for s in splits)
  labels = sorted(class_totals)
  quotas = {s.name: {c: class_totals[c] * s.num_shards // num_shards for c in labels}
            for s in splits}
  # extras[c]: how many splits give class c the ceil. candidates[c]: the splits where its share
  # is not whole, largest remainder first, ties in seeded hash order.
  extras = {c: class_totals[c] - sum(q[c] for q in quotas.values()) for c in labels}

  def preference(c, j):
    remainder = class_totals[c] * splits[j].num_shards % num_shards
    return -remainder, rank(seed, 'split-extra', f'{c}\x00{splits[j].name}')

  candidates = {c: sorted((j for j, s in enumerate(splits)
                           if class_totals[c] * s.num_shards % num_shards),
                          key=lambda j, c=c: preference(c, j))
                for c in labels}
  total = sum(class_totals.values())
  floor_cap, ceil_cap = [], []
  for s in splits:
    room = total * s.num_shards // num_shards - sum(quotas[s.name].values())
    floor_cap.append(room)
    ceil_cap.append(room + (1 if total * s.num_shards % num_shards else 0))
  holders: List[List[int]] = [[] for _ in splits]  # the classes split j gives an extra
  given: Dict[int, set] = {c: set() for c in labels}  # the splits giving class c an extra
  order = sorted(labels, key=lambda c: rank(seed, 'split-class', str(c)))

  def move(c, old, caps, seen):
    # Gives class c an extra in one more split (taking it from split `old` unless None); a full
    # split makes room by moving one of its classes' extra on, recursively: an augmenting path
    # of a bipartite flow, splits visited at most once.
    for j in candidates[c]:
      if j in given[c] or j in seen:
        continue
      seen.add(j)
      if len(holders[j]) < caps[j] or any(move(o, j, caps, seen) for o in list(holders[j])):
        if old is not None:
          holders[old].remove(c)
          given[c].discard(old)
        holders[j].append(c)
        given[c].add(j)
        return True
    return False

  # Up to every split's floor first, then to its ceil: augmenting never lowers a split's count,
  # so the floors reached in the first phase are kept.
  for caps in (floor_cap, ceil_cap):
    progress = True
    while progress:
      progress = False
      for c in order:
        while len(given[c]) < extras[c] and move(c, None, caps, set()):
          progress = True
  if any(len(given[c]) != extras[c] for c in labels):  # cannot happen: a rounding always exists
    raise AssertionError(f'no proportional split rounding found for {class_totals}')
  for j, s in enumerate(splits):
    for c in holders[j]:
      quotas[s.name][c] += 1
  return quotas


def class_quotas(class_totals: Dict[int, int], num_shards: int, seed: int,
                 salt: str = '') -> List[Dict[int, int]]:
  """Per shard, per class: how many examples it gets (floor or ceil of total / num_shards).

  The extras of successive classes go round a ring from a seeded offset, so shard totals differ
  by at most one. ``salt`` varies the offset (one per split).
  """
  quotas = [dict.fromkeys(class_totals, 0) for _ in range(num_shards)]
  offset = int.from_bytes(rank(seed, 'extras-offset', salt), 'big') % num_shards
  for label in sorted(class_totals):
    base, extra = divmod(class_totals[label], num_shards)
    for k in range(num_shards):
      quotas[k][label] = base
    for j in range(extra):
      quotas[(offset + j) % num_shards][label] += 1
    offset = (offset + extra) % num_shards
  return quotas


def shard_quotas(class_totals: Dict[int, int], splits: Sequence[SplitSpec],
                 seed: int) -> List[Dict[int, int]]:
  """Per shard in global order, per class: both levels (splits, then shards within a split)."""
  per_split = split_quotas(class_totals, splits, seed)
  out: List[Dict[int, int]] = []
  for s in splits:
    out.extend(class_quotas(per_split[s.name], s.num_shards, seed, salt=s.name))
  return out


def stable_group_split(seed: int, group: str, splits: Sequence[SplitSpec]) -> int:
  """The index of the split a group goes to under stable assignment: a function of (seed,
  group) and the splits' shard counts only (split s with probability k_s / K)."""
  total = sum(s.num_shards for s in splits)
  point = int.from_bytes(rank(seed, 'group-split', group)[:8], 'big') * total >> 64
  for i, split in enumerate(splits):
    if point < split.num_shards:
      return i
    point -= split.num_shards
  raise AssertionError('unreachable: point < total')


def assign_shards(rows: Sequence[IndexRow], splits: Sequence[SplitSpec],
                  seed: int, stable_groups: bool = False) -> List[Shard]:
  """Assigns every row to exactly one shard. Returns the shards in global order.

  ``stable_groups``: with groups, each group's split is ``stable_group_split`` (see the module
  doc); without groups it changes nothing."""
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
    shard_rows = _deal_groups(rows, splits, seed, stable_groups)
    empty = sum(1 for members in shard_rows if not members)
    if empty:
      how = (' (stable group assignment: each group\'s split is a seeded hash of its key, so a '
             'split gets only the groups that hash to it)' if stable_groups else '')
      raise AssignmentError(
          f'{len({r.group for r in rows})} groups cannot fill {num_shards} shards: {empty} would '
          f'be empty{how}; use fewer shards (option --splits).')
  else:
    shard_rows = _deal_rows(rows, splits, seed)

  shards = []
  k = 0
  for split in splits:
    for i in range(split.num_shards):
      ordered = sorted(shard_rows[k], key=lambda r: rank(seed, 'order', r.image_id))
      shards.append(Shard(split.name, i, split.num_shards, tuple(ordered)))
      k += 1
  return shards


def _deal_rows(rows: Sequence[IndexRow], splits: Sequence[SplitSpec],
               seed: int) -> List[List[IndexRow]]:
  """Each class in seeded hash order, dealt to shards in contiguous runs by quota."""
  by_class: Dict[int, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    by_class[row.label].append(row)
  for members in by_class.values():
    members.sort(key=lambda r: rank(seed, 'assign', r.image_id))
  quotas = shard_quotas({c: len(m) for c, m in by_class.items()}, splits, seed)
  shard_rows: List[List[IndexRow]] = [[] for _ in quotas]
  for label, members in by_class.items():
    start = 0
    for k, quota in enumerate(quotas):
      take = quota[label]
      shard_rows[k].extend(members[start:start + take])
      start += take
  return shard_rows


def _deal_groups(rows: Sequence[IndexRow], splits: Sequence[SplitSpec],
                 seed: int, stable: bool = False) -> List[List[IndexRow]]:
  """Whole groups, greedily (or, ``stable``, by stable_group_split) to splits, then greedily
  to the shards of their split."""
  groups: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    groups[row.group].append(row)
  adds = {g: collections.Counter(r.label for r in members) for g, members in groups.items()}
  order = sorted(groups, key=lambda g: (-len(groups[g]), rank(seed, 'group', g)))
  if stable:
    in_split = [[] for _ in splits]
    for g in order:
      in_split[stable_group_split(seed, g, splits)].append(g)
  else:
    in_split = _greedy_bins(order, adds, [s.num_shards for s in splits],
                            [s.num_shards for s in splits], seed, 'split')
  shard_rows: List[List[IndexRow]] = []
  for s, names in zip(splits, in_split):
    for members in _greedy_bins(names, adds, [1] * s.num_shards, [1] * s.num_shards, seed,
                                f'shard\x00{s.name}'):
      shard_rows.append([r for g in members for r in groups[g]])
  return shard_rows


def _greedy_bins(names: Sequence[str], adds: Dict[str, collections.Counter],
                 weights: Sequence[int], min_groups: Sequence[int], seed: int,
                 salt: str) -> List[List[str]]:
  """Groups (in the given order) to bins with the given weights, closest to proportional.

  Each group goes to the bin where it least increases sum_b sum_c (count_bc - target_bc)^2 / w_b
  (target_bc = total_c * w_b / W: the squared deviation per shard, summed over shards). Ties: the
  bin furthest below its target size, then a seeded hash. When the groups left are just enough
  for the bins still short of ``min_groups``, they go only to those.
  """
  total_w = sum(weights)
  lcm = 1
  for w in weights:
    lcm = lcm * w // math.gcd(lcm, w)
  totals = collections.Counter()
  for g in names:
    totals.update(adds[g])
  size = sum(totals.values())
  counts = [collections.Counter() for _ in weights]
  sizes = [0] * len(weights)
  bins: List[List[str]] = [[] for _ in weights]
  short = sum(min_groups)
  for left, name in zip(range(len(names), 0, -1), names):
    add = adds[name]
    allowed = range(len(weights))
    if left <= short:
      allowed = [b for b in allowed if len(bins[b]) < min_groups[b]] or allowed

    def cost(b, add=add, name=name):
      # Scaled by W * lcm(w) so it stays an exact integer: a float sum would depend on the order
      # of add's items (so on CSV row order) in its last bit.
      increase = sum((2 * (counts[b][c] * total_w - totals[c] * weights[b]) + n * total_w) * n
                     for c, n in add.items()) * (lcm // weights[b])
      below = (sizes[b] * total_w - size * weights[b]) * (lcm // weights[b])
      return increase, below, rank(seed, f'group-tie\x00{salt}', f'{name}\x00{b}')

    best = min(allowed, key=cost)
    if len(bins[best]) < min_groups[best]:
      short -= 1
    counts[best].update(add)
    sizes[best] += sum(add.values())
    bins[best].append(name)
  return bins


def max_class_deviation(shards: Sequence[Shard]) -> float:
  """Largest |count - class total / number of shards| over shards and classes (in records).

  Below 1 means every shard holds floor or ceil of proportional for every class.
  """
  totals = collections.Counter(r.label for s in shards for r in s.rows)
  return max((abs(s.class_counts().get(c, 0) - n / len(shards))
              for s in shards for c, n in totals.items()), default=0.0)


def split_class_counts(shards: Sequence[Shard]) -> Dict[str, Dict[int, int]]:
  """{split: {label: count}} summed over the split's shards."""
  out: Dict[str, collections.Counter] = collections.OrderedDict()
  for shard in shards:
    out.setdefault(shard.split, collections.Counter()).update(r.label for r in shard.rows)
  return collections.OrderedDict((s, dict(sorted(c.items()))) for s, c in out.items())


def max_split_class_deviation(shards: Sequence[Shard]) -> float:
  """Largest |split count - class total * split shards / all shards| over splits and classes.

  Below 1 means every split holds floor or ceil of proportional for every class.
  """
  totals = collections.Counter(r.label for s in shards for r in s.rows)
  per_split = split_class_counts(shards)
  weight = collections.Counter(s.split for s in shards)
  return max((abs(per_split[name].get(c, 0) - n * weight[name] / len(shards))
              for name in per_split for c, n in totals.items()), default=0.0)
