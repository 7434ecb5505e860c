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

Which example goes where is a function of the images' content and the seed, never of paths,
row order or the input form: each row carries its image's sha256 (the workers' check pass hashes
every image before the deal; a DICOM image's key is its rendered PNG's hash), each class's
images are ordered by ``rank(seed, sha256)``, then dealt in contiguous runs by their quotas.
Records inside a shard are written in another seeded hash order (content, then key), so the same
images in any order, under any path, with the same seed give the same splits and byte-identical
shards when their keys agree (keys are paths relative to the CSV's folder or the image folder).

Units: rows linked by identical image bytes, a shared group (patient) or a near-duplicate group
(re-encoded, resized, cropped copies: ``near_duplicates.py``) are one unit (``_units``:
connected components), always dealt whole, so neither exact nor near duplicates straddle
splits. Without multi-row units or groups every unit is one image and the guarantees above hold.
Otherwise units are dealt like groups: taken largest first (ties in seeded hash order), each to
the split, then (among the units of that split) to the shard, where it least increases the
distance of the class counts from their proportional targets (ties: the one furthest below its
target size, then a seeded hash); the last are kept for splits/shards that would otherwise stay
empty. floor/ceil can no longer be guaranteed when groups are large, so the achieved deviation
is reported (``max_class_deviation`` per shard, ``max_split_class_deviation`` per split).

``stable=True`` (spans: new data every week) changes the first level only: a group's split is
``stable_group_split(seed, group, splits)``, a seeded hash of the group's key weighted by the
splits' shard counts, so it depends on nothing else in the input.

Published membership (``SplitManifest``; ``assign(..., prior=...)``): every run publishes which
split each image (by content) and group went to, merged with the membership it was given, so a
manifest names everything published so far. With a prior, a unit any of whose images or groups
the manifest names keeps that split (a unit the manifest put in several splits -- leakage
already published -- goes to the most held-out of them, and is reported); new units are dealt
towards proportional class counts given the kept ones (``fill``: a split already above its share
of a class gets none of its new images; groups greedily from the kept counts). Shards within a
split are dealt afresh each run from its members. A prior that names no image of the input
changes nothing: the deal is fresh, with the guarantees above.
"""
import collections
import dataclasses
import fractions
import functools
import hashlib
import json
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen.config import format_splits
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
                          key=functools.partial(preference, c))
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
  """Every row to exactly one shard, without a prior membership -> the shards in global order
  (``assign(...).shards``)."""
  return assign(rows, splits, seed, stable_groups).shards


@dataclasses.dataclass
class Assignment:
  """``assign``'s result: the shards, the membership to publish (the prior's plus this run's),
  and what happened to the membership (``report``: counts, for the summary)."""
  shards: List[Shard]
  manifest: 'SplitManifest'
  report: Dict[str, Any]


def assign(rows: Sequence[IndexRow], splits: Sequence[SplitSpec], seed: int,
           stable_groups: bool = False, prior: Optional['SplitManifest'] = None,
           span: int = 0, group_key: Optional[Callable[[IndexRow], str]] = None,
           group_salt_check: str = '', near_groups: Sequence[Sequence[str]] = ()
           ) -> Assignment:
  """Assigns every row to exactly one shard; see the module doc.

  ``prior``: a published membership; every unit (an image by content, with its identical
  copies and its group) that it names keeps its split there. ``span``: this run's span, recorded
  for new images. ``group_key``: a row -> the key its group has in manifests (the salted
  ``group_hash``; default: the group as given). ``group_salt_check``: ``salt_check`` of the
  salt those keys use; a prior with another one cannot match groups (reported).
  ``near_groups``: near-duplicate groups, each a list of image sha256s (the prior manifest's
  images among them too): a group is one unit with everything its images are linked to, and
  keeps the split of any member the prior names."""
  ids = [r.image_id for r in rows]
  if len(set(ids)) != len(ids):
    dup = next(i for i, c in collections.Counter(ids).items() if c > 1)
    raise AssignmentError(f'duplicate image_id {dup!r}: every row needs a unique key.')
  num_shards = sum(s.num_shards for s in splits)
  if len(rows) < num_shards:
    raise AssignmentError(
        f'{len(rows)} rows cannot fill {num_shards} shards without empty shards; '
        'use fewer shards (option --splits).')
  group_key = group_key or (lambda r: r.group)
  names = [s.name for s in splits]
  report: Dict[str, Any] = dict(rule=RULE, seed=seed, span=span)
  groups_comparable = True
  if prior is not None:
    unknown = sorted(set(prior.split_names()) - set(names))
    if unknown:
      raise AssignmentError(
          f'the split manifest has split(s) {unknown} that --splits {format_splits(splits)!r} '
          f'does not: keep the manifest\'s splits ({prior.split_names()}) with any shard counts '
          '(option --splits), or start over (option --fresh-splits).')
    groups_comparable = not prior.groups or prior.group_salt_check == group_salt_check
    report['prior_seed'] = prior.seed
    if not groups_comparable:
      report['groups_not_compared'] = (
          'the manifest\'s patient groups were hashed with another group salt (option '
          '--group-salt), so they cannot be matched: groups were dealt as new, images kept '
          'their splits by content')
  units, linked = _units(rows, near_groups)
  fixed: Dict[str, str] = {}  # unit key -> split kept from the prior
  conflicts = []
  if prior is not None:
    order = {n: i for i, n in enumerate(names)}
    for key, members in units.items():
      had = {prior.images[r.image_sha256][0] for r in members if r.image_sha256 in prior.images}
      had |= {prior.images[sha][0] for sha in linked.get(key, ()) if sha in prior.images}
      if groups_comparable:
        had |= {prior.groups[group_key(r)] for r in members
                if r.group and group_key(r) in prior.groups}
      if had:
        # Several splits: the prior itself leaked; the most held-out split (last) wins.
        fixed[key] = max(had, key=order.__getitem__)
        if len(had) > 1:
          conflicts.append(dict(image_ids=sorted(r.image_id for r in members),
                                splits=sorted(had, key=order.__getitem__), kept=fixed[key]))
  grouped = any(r.group for r in rows) or any(len(m) > 1 for m in units.values())
  if grouped:
    shard_rows = _deal_groups(units, splits, seed, stable_groups, fixed)
    empty = sum(1 for members in shard_rows if not members)
    if empty:
      how = (' (stable group assignment: each group\'s split is a seeded hash of its key, so a '
             'split gets only the groups that hash to it)' if stable_groups else '')
      raise AssignmentError(
          f'{len(units)} groups cannot fill {num_shards} shards: {empty} would '
          f'be empty{how}; use fewer shards (option --splits).')
  else:
    shard_rows = _deal_rows(rows, splits, seed, {r.image_id: split for u, split in fixed.items()
                                                 for r in units[u]})
    empty = sum(1 for members in shard_rows if not members)
    if empty:
      raise AssignmentError(
          f'{num_shards - empty} of {num_shards} shards would hold images: the images kept from '
          f'the split manifest leave {empty} shard(s) empty; use fewer shards (option --splits) '
          'or start over (option --fresh-splits).')

  shards = []
  k = 0
  for split in splits:
    for i in range(split.num_shards):
      ordered = sorted(shard_rows[k], key=lambda r: rank(seed, 'order', _order_key(r)))
      shards.append(Shard(split.name, i, split.num_shards, tuple(ordered)))
      k += 1
  manifest = _next_manifest(prior, shards, seed, splits, span, group_key, group_salt_check)
  kept = {r.image_id for u in fixed for r in units[u]}
  report.update(_membership_report(rows, shards, prior, kept, conflicts, span))
  return Assignment(shards, manifest, report)


def _unit_key(row: IndexRow) -> str:
  """A row's content key: its image's sha256 (the image_id before any worker hashed it)."""
  return 'i:' + (row.image_sha256 or row.image_id)


def _order_key(row: IndexRow) -> str:
  """Records in a shard: by content, then key (the key alone before any worker hashed it)."""
  return f'{row.image_sha256}\x00{row.image_id}' if row.image_sha256 else row.image_id


def _units(rows: Sequence[IndexRow], near_groups: Sequence[Sequence[str]] = ()
           ) -> Tuple[Dict[str, List[IndexRow]], Dict[str, List[str]]]:
  """The units dealt whole: rows linked by identical image bytes, a shared group (patient) or a
  near-duplicate group (connected components, union-find) -> ({unit key: rows}, {unit key: the
  sha256s of images linked to it that are not rows of this input (a prior span's)}). A unit's
  key is its smallest group ('g:' + group) or, without groups, its smallest content key
  ('i:' + sha256)."""
  parent: Dict[str, str] = {}

  def find(x):
    parent.setdefault(x, x)
    while parent[x] != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  def union(a, b):
    a, b = find(a), find(b)
    if a != b:
      parent[max(a, b)] = min(a, b)  # 'g:' < 'i:': a group names its unit

  for r in rows:
    find(_unit_key(r))
    if r.group:
      union(_unit_key(r), 'g:' + r.group)
  for members in near_groups:
    for sha in members[1:]:
      union('i:' + members[0], 'i:' + sha)
  units: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for r in rows:
    units[find(_unit_key(r))].append(r)
  present = {r.image_sha256 for r in rows}
  linked: Dict[str, List[str]] = collections.defaultdict(list)
  for members in near_groups:
    for sha in members:
      if sha not in present and find('i:' + sha) in units:
        linked[find('i:' + sha)].append(sha)
  return dict(units), dict(linked)


def _deal_rows(rows: Sequence[IndexRow], splits: Sequence[SplitSpec], seed: int,
               fixed: Optional[Dict[str, str]] = None) -> List[List[IndexRow]]:
  """One image per unit. Each class in seeded hash order of content, dealt to splits in
  contiguous runs (fresh: ``split_quotas``; with images kept from a prior, the new ones by
  ``fill``), then within each split to its shards by ``class_quotas``."""
  fixed = fixed or {}
  by_class: Dict[int, List[IndexRow]] = collections.defaultdict(list)
  for row in rows:
    by_class[row.label].append(row)
  for members in by_class.values():
    members.sort(key=lambda r: rank(seed, 'assign', _unit_key(r)[2:]))
  in_split: Dict[str, Dict[int, List[IndexRow]]] = {
      s.name: collections.defaultdict(list) for s in splits}
  if not fixed:
    quotas = split_quotas({c: len(m) for c, m in by_class.items()}, splits, seed)
  for label, members in by_class.items():
    new = [r for r in members if r.image_id not in fixed]
    for r in members:
      if r.image_id in fixed:
        in_split[fixed[r.image_id]][label].append(r)
    if fixed:
      take = fill([len(in_split[s.name][label]) for s in splits], len(new),
                  [s.num_shards for s in splits], seed, str(label))
    else:
      take = [quotas[s.name][label] for s in splits]
    start = 0
    for s, n in zip(splits, take):
      in_split[s.name][label].extend(new[start:start + n])
      start += n
  shard_rows: List[List[IndexRow]] = []
  for s in splits:
    by_label = in_split[s.name]
    for members in by_label.values():
      members.sort(key=lambda r: rank(seed, 'assign', _unit_key(r)[2:]))
    shard_quotas_of_split = class_quotas({c: len(m) for c, m in by_label.items()},
                                         s.num_shards, seed, salt=s.name)
    starts = dict.fromkeys(by_label, 0)
    for quota in shard_quotas_of_split:
      shard = []
      for label, members in by_label.items():
        shard.extend(members[starts[label]:starts[label] + quota[label]])
        starts[label] += quota[label]
      shard_rows.append(shard)
  return shard_rows


def fill(have: Sequence[int], new: int, weights: Sequence[int], seed: int,
         salt: str = '') -> List[int]:
  """How many of ``new`` items each bin gets so that the totals come as close to proportional
  to ``weights`` as they can without taking any away: bins already above their share get none,
  the rest share what is left by largest remainder (ties in seeded hash order). Exact
  (fractions), so it never depends on float rounding."""
  active = list(range(len(have)))
  while True:
    w = sum(weights[b] for b in active)
    total = new + sum(have[b] for b in active)
    ideal = {b: fractions.Fraction(total * weights[b], w) - have[b] for b in active}
    below = [b for b in active if ideal[b] < 0]
    if not below:
      break
    active = [b for b in active if b not in below]
  out = [0] * len(have)
  for b in active:
    out[b] = math.floor(ideal[b])
  left = new - sum(out)
  by_remainder = sorted(active, key=lambda b: (-(ideal[b] - math.floor(ideal[b])),
                                               rank(seed, 'fill', f'{salt}\x00{b}')))
  for b in by_remainder[:left]:
    out[b] += 1
  return out


def _deal_groups(units: Dict[str, List[IndexRow]], splits: Sequence[SplitSpec], seed: int,
                 stable: bool = False, fixed: Optional[Dict[str, str]] = None
                 ) -> List[List[IndexRow]]:
  """Whole units (groups, identical images) to splits -- those in ``fixed`` to theirs, the
  others greedily (or, ``stable``, by stable_group_split) -- then greedily to the shards of
  their split."""
  fixed = fixed or {}
  adds = {u: collections.Counter(r.label for r in members) for u, members in units.items()}

  def canonical(names):
    return sorted(names, key=lambda u: (-len(units[u]), rank(seed, 'group', u[2:])))

  names = [s.name for s in splits]
  kept = [canonical(u for u in units if fixed.get(u) == n) for n in names]
  new = canonical(u for u in units if u not in fixed)
  if stable:
    in_split = [list(k) for k in kept]
    for u in new:
      in_split[stable_group_split(seed, u[2:], splits)].append(u)
  else:
    in_split = _greedy_bins(new, adds, [s.num_shards for s in splits],
                            [s.num_shards for s in splits], seed, 'split', initial=kept)
  shard_rows: List[List[IndexRow]] = []
  for s, members in zip(splits, in_split):
    for shard in _greedy_bins(canonical(members), adds, [1] * s.num_shards, [1] * s.num_shards,
                              seed, f'shard\x00{s.name}'):
      shard_rows.append([r for u in shard for r in sorted(units[u], key=_order_key)])
  return shard_rows


def _greedy_bins(names: Sequence[str], adds: Dict[str, collections.Counter],
                 weights: Sequence[int], min_groups: Sequence[int], seed: int,
                 salt: str, initial: Optional[Sequence[Sequence[str]]] = None
                 ) -> List[List[str]]:
  """Groups (in the given order) to bins with the given weights, closest to proportional;
  ``initial``: groups already in each bin (kept there; they count towards the targets).

  Each group goes to the bin where it least increases sum_b sum_c (count_bc - target_bc)^2 / w_b
  (target_bc = total_c * w_b / W: the squared deviation per shard, summed over shards). Ties: the
  bin furthest below its target size, then a seeded hash. When the groups left are just enough
  for the bins still short of ``min_groups``, they go only to those.
  """
  total_w = sum(weights)
  lcm = 1
  for w in weights:
    lcm = lcm * w // math.gcd(lcm, w)
  initial = initial or [[] for _ in weights]
  totals: collections.Counter = collections.Counter()
  for g in list(names) + [g for b in initial for g in b]:
    totals.update(adds[g])
  size = sum(totals.values())
  counts: List[collections.Counter] = [collections.Counter() for _ in weights]
  sizes = [0] * len(weights)
  bins: List[List[str]] = [list(b) for b in initial]
  for b, members in enumerate(bins):
    for g in members:
      counts[b].update(adds[g])
      sizes[b] += sum(adds[g].values())
  short = sum(max(0, m - len(b)) for m, b in zip(min_groups, bins))
  for left, name in zip(range(len(names), 0, -1), names):
    add = adds[name]
    allowed: Sequence[int] = range(len(weights))
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


# --- Published membership: the split manifest ---------------------------------------------------

MANIFEST_FORMAT = 'cxr-tfx/split-manifest/v1'
RULE = ('an image keeps the split its content (sha256 of the image as written; a DICOM image\'s '
        'rendered PNG) has in the split manifest, and so do identical images and its group; '
        'new images are dealt class-stratified in seeded hash order of their content')
MAX_LISTED = 20  # images listed by name in the report (all are counted)


def salt_check(salt: str) -> str:
  """A short public token of the group salt: manifests compare group hashes only when theirs
  agree (hashes under different salts never match)."""
  return rank(0, 'salt-check', salt).hex()[:16]


@dataclasses.dataclass
class SplitManifest:
  """Which split every image (by content) and group has been published in.

  ``images``: {image sha256: (split, span first seen)}; ``groups``: {group key (the salted
  ``group_hash``): split}. A run's manifest holds its prior's entries and its own, so it is the
  membership of everything published so far, whatever this run's input lacks."""
  seed: int
  splits: Tuple[SplitSpec, ...]
  images: Dict[str, Tuple[str, int]]
  groups: Dict[str, str] = dataclasses.field(default_factory=dict)
  group_salt_check: str = ''

  def split_names(self) -> List[str]:
    return [s.name for s in self.splits]

  def to_json(self) -> str:
    return json.dumps(dict(
        format=MANIFEST_FORMAT, rule=RULE, seed=self.seed,
        splits=[dict(name=s.name, num_shards=s.num_shards) for s in self.splits],
        group_salt_check=self.group_salt_check,
        images={k: list(v) for k, v in sorted(self.images.items())},
        groups=dict(sorted(self.groups.items()))), separators=(',', ':')) + '\n'

  @classmethod
  def from_json(cls, text: str, source: str = 'split manifest') -> 'SplitManifest':
    try:
      data = json.loads(text)
      if data.get('format') != MANIFEST_FORMAT:
        raise ValueError(f'format is {data.get("format")!r}, expected {MANIFEST_FORMAT!r}')
      return cls(int(data['seed']),
                 tuple(SplitSpec(s['name'], int(s['num_shards'])) for s in data['splits']),
                 {k: (v[0], int(v[1])) for k, v in data['images'].items()},
                 dict(data.get('groups', {})), data.get('group_salt_check', ''))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
      raise AssignmentError(f'{source}: not a cxr-tfx split manifest ({e}); give the '
                            f'split_manifest.json an earlier run wrote next to its shards '
                            '(option --split-manifest)') from e

  def digest(self) -> str:
    return hashlib.sha256(self.to_json().encode('utf-8')).hexdigest()


def load_manifest(path: str) -> SplitManifest:
  """Reads a split manifest (a local path, or any tf.io.gfile URI); AssignmentError naming the
  path and the option when it is missing or not a manifest."""
  try:
    if '://' in path:
      import tensorflow as tf  # URIs only
      with tf.io.gfile.GFile(path, 'r') as f:
        text = f.read()
    else:
      with open(path, encoding='utf-8') as f:
        text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise AssignmentError(f'{path}: cannot read the split manifest ({e}) '
                          '(option --split-manifest)') from e
  except Exception as e:  # tf.errors.NotFoundError and friends, without importing TF here
    raise AssignmentError(f'{path}: cannot read the split manifest ({e}) '
                          '(option --split-manifest)') from e
  return SplitManifest.from_json(text, path)


def _next_manifest(prior: Optional[SplitManifest], shards: Sequence[Shard], seed: int,
                   splits: Sequence[SplitSpec], span: int,
                   group_key: Callable[[IndexRow], str], group_salt_check: str
                   ) -> SplitManifest:
  images = dict(prior.images) if prior is not None else {}
  groups = dict(prior.groups) if prior is not None and (
      prior.group_salt_check == group_salt_check) else {}
  for shard in shards:
    for r in shard.rows:
      if r.image_sha256 and r.image_sha256 not in images:
        images[r.image_sha256] = (shard.split, span)
      if r.group:
        groups.setdefault(group_key(r), shard.split)
  return SplitManifest(seed, tuple(splits), images, groups, group_salt_check)


def _membership_report(rows: Sequence[IndexRow], shards: Sequence[Shard],
                       prior: Optional[SplitManifest], kept: set,
                       conflicts: List[Dict[str, Any]], span: int) -> Dict[str, Any]:
  """Counts for the summary: images kept from the prior and new ones (per split), the prior's
  images this input lacks, re-sent images (seen in an earlier span), conflicts, deviation."""
  split_of = {r.image_id: s.split for s in shards for r in s.rows}
  shas = {r.image_sha256 for r in rows if r.image_sha256}
  kept_rows = [r for r in rows if r.image_id in kept]
  new_by_split = collections.Counter(split_of[r.image_id] for r in rows
                                     if r.image_id not in kept)
  out: Dict[str, Any] = dict(
      images=len(shas) or len(rows), rows=len(rows), kept=len(kept_rows),
      new=len(rows) - len(kept_rows),
      new_by_split={s.split: new_by_split.get(s.split, 0) for s in shards},
      max_split_class_deviation=round(max_split_class_deviation(shards), 3),
      max_class_deviation=round(max_class_deviation(shards), 3),
      conflicts=conflicts[:MAX_LISTED], conflicts_count=len(conflicts))
  if prior is not None:
    missing = sorted(k for k in prior.images if k not in shas)
    out.update(prior_images=len(prior.images), missing=len(missing),
               missing_listed=[dict(sha256=k, split=prior.images[k][0],
                                    first_span=prior.images[k][1])
                               for k in missing[:MAX_LISTED]])
    resent = sorted((r for r in rows if r.image_sha256 in prior.images
                     and prior.images[r.image_sha256][1] != span), key=lambda r: r.line)
    out.update(resent_count=len(resent), resent=[
        dict(image_id=r.image_id, line=r.line, class_name=r.class_name,
             split=split_of[r.image_id], first_span=prior.images[r.image_sha256][1],
             sha256=r.image_sha256) for r in resent[:MAX_LISTED]])
  return out
