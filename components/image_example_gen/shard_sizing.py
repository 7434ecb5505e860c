"""Shard files sized for the data (pure: no TensorFlow/Beam imports).

``--shard-size 256MiB`` sets how many files each split is written as, from its bytes; it never
changes which split an image is in. The deal (``assignment.assign``) is unchanged: the splits
are still weighed by their ``--splits`` shard counts (train=8,eval=1,test=1 is 80/10/10), so the
published split membership is the same with and without a shard size. Only the files change:
each split's rows, already dealt, are re-cut into K files, K = ``files_for(split bytes, rows,
target)`` = max(1, ceil(split bytes / target)), never more files than rows.

The re-cut (``resize``) keeps per-file class stratification: a class with m rows in a split of
K files gives each file floor(m/K) or ceil(m/K) (``assignment.class_quotas``: the extras of
successive classes go round a seeded ring, so file sizes differ by at most one too). Which file
a row goes to and its place in the file depend only on the seed and the rows' keys (content
sha256, then image_id: ``assignment``'s keys), never on row order, on the dealt shard a row came
from or on paths; records inside a file are in the seeded hash order ``assign`` writes shards
in. Rows linked by a group or by identical or near-duplicate content stay in one split (the
deal keeps them there) but may be in different files of it: files are cut per row, so that
every file holds floor or ceil of every class.

Split bytes are what the caller says each row weighs (``bytes_of``): the image and mask bytes
the check pass read. Records add the key, the hash and the label (3.5% more on the demo data:
1,050.5 MB written for 1,014.7 MB of PNGs), so files come out near the target, a few percent
over it at most.

The call, in ``ingest.plan_from_checks`` after ``result = assignment.assign(...)`` (with
``target = config.shard_size_bytes``, 0 when ``--shard-size`` is not given)::

    shards = result.shards
    if target:
      # r.file_bytes: whatever the check pass records of the row's image + mask bytes
      sized = shard_sizing.plan(shards, target, bytes_of=lambda r: r.file_bytes)
      shards = shard_sizing.resize_all(shards, sized.files, seed)
      # sized.describe(): one line for the run's first lines; sized.as_dict(): for the summary;
      # sized.files: {split: number of files}: what publishing expects in place of
      # config.splits' num_shards (membership, group_splits and findings are unchanged).
    for chunk in chunk_shards(shards, light=True): ...

``resize(split_shards, k, seed)`` re-cuts one split; ``resize_all`` applies it to every split
and keeps the splits' order.
"""
import collections
import dataclasses
import fractions
import re
from typing import Callable, Dict, List, Mapping, Sequence

from components.errors import ConfigError
from components.image_example_gen import assignment
from components.image_example_gen.index import IndexRow

OPTION = '--shard-size'
# Units of --shard-size, as GNU coreutils (split -C, dd, truncate) reads them: a bare K, M, G, T
# and KiB..TiB are powers of 1024; KB, MB, GB, TB powers of 1000; B or nothing is bytes.
# Written here rather than taken from a library: none in the environment parses sizes.
_UNITS = {'': 1, 'b': 1}
for _power, _letter in enumerate('kmgt', start=1):
  _UNITS.update({_letter: 1024**_power, f'{_letter}ib': 1024**_power,
                 f'{_letter}b': 1000**_power})
_SIZE = re.compile(r'^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$')
_BINARY = (('TiB', 1024**4), ('GiB', 1024**3), ('MiB', 1024**2), ('KiB', 1024))


def parse_size(text: str) -> int:
  """'256MiB', '1GB', '500M', '1.5 GiB', '4096' -> bytes (at least 1); ConfigError naming the
  option on anything else."""
  match = _SIZE.match(str(text))
  unit = _UNITS.get(match.group(2).lower()) if match else None
  if match is None or unit is None:
    raise ConfigError(
        f'shard_size: {text!r} is not a size; give a number and a unit, e.g. 256MiB, 1GB or '
        '500M (K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB powers of '
        f'1000; no unit is bytes) (option {OPTION}).')
  size = int(fractions.Fraction(match.group(1)) * unit)
  if size < 1:
    raise ConfigError(f'shard_size: {text!r} is less than one byte; give a size such as 256MiB '
                      f'(option {OPTION}).')
  return size


def format_size(size: float) -> str:
  """Bytes -> '256 MiB', '47.1 KiB', '812 B' (three significant figures at most)."""
  for name, unit in _BINARY:
    if size >= unit:
      value = size / unit
      return f'{value:.0f} {name}' if value >= 100 or value == int(value) else (
          f'{value:.3g} {name}')
  return f'{size:.0f} B'


def files_for(split_bytes: int, rows: int, target: int) -> int:
  """How many files a split of ``rows`` rows and ``split_bytes`` bytes is written as:
  max(1, ceil(split_bytes / target)), never more than ``rows``."""
  if target < 1:
    raise ValueError(f'the target shard size must be at least 1 byte, got {target!r}')
  return max(1, min(rows, -(-split_bytes // target)))


def resize(shards: Sequence[assignment.Shard], k: int, seed: int) -> List[assignment.Shard]:
  """One split's dealt shards -> its rows re-cut into ``k`` files (Shard(split, j, k, rows),
  j = 0..k-1), every class spread over them by floor/ceil quotas, in an order that depends only
  on the seed and the rows' keys."""
  names = {s.split for s in shards}
  if len(names) != 1:
    raise ValueError(f'resize takes the shards of one split, got splits {sorted(names)}')
  split = names.pop()
  rows = [r for s in shards for r in s.rows]
  if not rows and k == 1:  # an empty split is one empty file, as without a shard size
    return [assignment.Shard(split, 0, 1, ())]
  if not 1 <= k <= len(rows):
    raise ValueError(f'split {split!r}: {len(rows)} rows cannot make {k} non-empty files')
  by_class: Dict[int, List[IndexRow]] = collections.defaultdict(list)
  for r in rows:
    by_class[r.label].append(r)
  for members in by_class.values():
    members.sort(key=_deal_key(seed))
  quotas = assignment.class_quotas({c: len(m) for c, m in by_class.items()}, k, seed,
                                   salt=f'files\x00{split}')
  starts = dict.fromkeys(by_class, 0)
  out = []
  for j, quota in enumerate(quotas):
    members = []
    for label in sorted(by_class):
      members.extend(by_class[label][starts[label]:starts[label] + quota[label]])
      starts[label] += quota[label]
    members.sort(key=_write_key(seed))
    out.append(assignment.Shard(split, j, k, tuple(members)))
  return out


# assignment's own keys (content, then record), so files and shards rank rows alike.
_unit_key = assignment._unit_key  # pylint: disable=protected-access
_order_key = assignment._order_key  # pylint: disable=protected-access


def _deal_key(seed: int) -> Callable[[IndexRow], tuple]:
  # The content key first (as the deal ranks rows), then the record key, for identical images.
  return lambda r: (assignment.rank(seed, 'files', _unit_key(r)), _order_key(r))


def _write_key(seed: int) -> Callable[[IndexRow], bytes]:
  # The order assign() writes a shard's records in.
  return lambda r: assignment.rank(seed, 'order', _order_key(r))


def by_split(shards: Sequence[assignment.Shard]) -> Dict[str, List[assignment.Shard]]:
  """{split: its shards}, the splits in the order they come."""
  out: Dict[str, List[assignment.Shard]] = collections.OrderedDict()
  for s in shards:
    out.setdefault(s.split, []).append(s)
  return out


@dataclasses.dataclass(frozen=True)
class FilePlan:
  """How many files each split is written as for a target size, and the figures behind it.

  ``files``, ``rows``, ``bytes`` and ``dealt`` (the split's shard count in the deal, its
  weight) are {split: int}, splits in the deal's order."""
  target: int
  files: Dict[str, int]
  rows: Dict[str, int]
  bytes: Dict[str, int]
  dealt: Dict[str, int]

  @property
  def mean_record_bytes(self) -> float:
    return sum(self.bytes.values()) / max(1, sum(self.rows.values()))

  def capped(self) -> List[str]:
    """The splits that would need more files than they have rows (one row per file instead)."""
    return [n for n, k in self.files.items() if k == self.rows[n] and self.bytes[n] > (
        k * self.target)]

  def as_dict(self) -> Dict[str, object]:
    """For the run's summary: the target and, per split, files, rows and bytes."""
    return dict(target_bytes=self.target, files=dict(self.files), rows=dict(self.rows),
                bytes=dict(self.bytes), weights=dict(self.dealt))

  def describe(self, source: str = 'the check pass') -> str:
    """One line, e.g. 'shard size 256 MiB: train 3 files, eval 1, test 1 (the splits keep their
    --splits weights 8/1/1); 47.1 KiB per record on average, from the check pass'."""
    counts = ', '.join(f'{name} {k} file{"s" * (k != 1)}' if i == 0 else f'{name} {k}'
                       for i, (name, k) in enumerate(self.files.items()))
    weights = '/'.join(str(w) for w in self.dealt.values())
    capped = self.capped()
    note = (f'; {", ".join(capped)}: one record per file, the most there can be (records are '
            f'larger than {OPTION} {format_size(self.target)})' if capped else '')
    return (f'shard size {format_size(self.target)}: {counts} (the splits keep their --splits '
            f'weights {weights}); {format_size(self.mean_record_bytes)} per record on average, '
            f'from {source}{note}')


def plan(shards: Sequence[assignment.Shard], target: int,
         bytes_of: Callable[[IndexRow], int]) -> FilePlan:
  """The dealt shards (all splits) and what each row weighs -> each split's file count."""
  rows: Dict[str, int] = {}
  sizes: Dict[str, int] = {}
  dealt: Dict[str, int] = {}
  files: Dict[str, int] = {}
  for split, members in by_split(shards).items():
    rows[split] = sum(len(s.rows) for s in members)
    sizes[split] = sum(bytes_of(r) for s in members for r in s.rows)
    dealt[split] = members[0].num_shards
    files[split] = files_for(sizes[split], rows[split], target)
  return FilePlan(target, files, rows, sizes, dealt)


def resize_all(shards: Sequence[assignment.Shard], files: Mapping[str, int],
               seed: int) -> List[assignment.Shard]:
  """Every split's shards re-cut into ``files[split]`` files (``resize``), splits in order."""
  return [f for split, members in by_split(shards).items()
          for f in resize(members, files[split], seed)]
