"""Class-balance and leakage checks as pure functions (no TensorFlow/TFX imports).

A *unit* is a split or a shard file. Each unit's class distribution is compared with the whole
dataset's by TFDV's two comparator measures, L-infinity distance and Jensen-Shannon divergence
(base 2, as TFDV computes them: ``linf`` and ``js_divergence`` here give TFDV's numbers, which a
test checks). The executor takes the measured values from TFDV; this module decides thresholds
and turns measurements into findings.

No false alarms at record granularity: a unit of m records cannot match real-valued proportions
exactly. With floor/ceil dealing (what ImageExampleGen does without a group column) every class
proportion is within 2/m of the whole's (count off by < 1, unit size off by < 1), so each unit's
threshold is the configured one plus ``granularity_allowance(m)``: 2/m for L-infinity and, for
Jensen-Shannon, the bound JS <= sum_c d_c^2 / (p_c + q_c) / (2 ln 2) <= sum_c (2/m)^2 / p_c /
(2 ln 2) (from ln x <= x - 1).
"""
import collections
import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components.class_balance.config import BalanceConfig

# TFDV's measure names (anomalies.proto DriftSkewInfo.Measurement.Type).
LINF = 'L_INFTY'
JS = 'JENSEN_SHANNON_DIVERGENCE'
# Checks of our own.
MIN_COUNT = 'MIN_COUNT_PER_CLASS'
COUNT_MISMATCH = 'COUNT_MISMATCH'  # split statistics and shard files disagree
DUPLICATE_ACROSS_SPLITS = 'DUPLICATE_ACROSS_SPLITS'  # leakage
SHA256_MISMATCH = 'SHA256_MISMATCH'  # image bytes no longer match their image_sha256

# Which checks fail_on_imbalance stops on; leakage and integrity findings are always anomalies.
KIND_BALANCE = 'balance'
KIND_LEAKAGE = 'leakage'
KIND_INTEGRITY = 'integrity'
KIND_OF = {LINF: KIND_BALANCE, JS: KIND_BALANCE, MIN_COUNT: KIND_BALANCE,
           COUNT_MISMATCH: KIND_INTEGRITY, SHA256_MISMATCH: KIND_INTEGRITY,
           DUPLICATE_ACROSS_SPLITS: KIND_LEAKAGE}

SPLIT = 'split'
SHARD = 'shard'
DATASET = 'dataset'

Counts = Mapping[int, int]  # class label -> number of examples


@dataclasses.dataclass(frozen=True)
class Unit:
  """A split, or one shard file of a split, with its class counts."""
  kind: str  # SPLIT | SHARD
  split: str
  shard: str  # shard file name; '' for a split
  counts: Dict[int, int]

  @property
  def size(self) -> int:
    return sum(self.counts.values())

  @property
  def name(self) -> str:
    return f'split {self.split}' if self.kind == SPLIT else f'shard {self.split}/{self.shard}'


@dataclasses.dataclass(frozen=True)
class Measurement:
  """One unit compared with the whole dataset."""
  unit: Unit
  linf: float
  linf_threshold: float
  js: float
  js_threshold: float
  worst_label: int  # the class with the largest proportion difference

  @property
  def ok(self) -> bool:
    return self.linf <= self.linf_threshold and self.js <= self.js_threshold


@dataclasses.dataclass(frozen=True)
class Finding:
  """A failed check: where, which class, which measure, by how much."""
  check: str  # LINF | JS | MIN_COUNT | COUNT_MISMATCH | DUPLICATE_ACROSS_SPLITS | SHA256_MISMATCH
  scope: str  # 'split eval', 'shard train/data_tfrecord-00003-of-00008.gz', 'dataset'
  split: str
  shard: str
  label: Optional[int]
  class_name: str
  value: float
  threshold: float
  message: str

  @property
  def kind(self) -> str:
    return KIND_OF[self.check]

  def to_dict(self) -> Dict[str, object]:
    return dict(dataclasses.asdict(self), kind=self.kind)


def distribution(counts: Counts, labels: Iterable[int]) -> Dict[int, float]:
  total = sum(counts.values())
  return {c: (counts.get(c, 0) / total if total else 0.0) for c in labels}


def linf(p: Mapping[int, float], q: Mapping[int, float]) -> Tuple[float, int]:
  """(max_c |p_c - q_c|, the class c where it is reached; ties: the smallest label)."""
  labels = sorted(set(p) | set(q))
  diffs = [(abs(p.get(c, 0.0) - q.get(c, 0.0)), -c) for c in labels]
  value, neg_label = max(diffs)
  return value, -neg_label


def js_divergence(p: Mapping[int, float], q: Mapping[int, float]) -> float:
  """Jensen-Shannon divergence in bits (0..1), TFDV's definition."""
  total = 0.0
  for c in set(p) | set(q):
    a, b = p.get(c, 0.0), q.get(c, 0.0)
    m = (a + b) / 2
    if a > 0:
      total += a * math.log2(a / m) / 2
    if b > 0:
      total += b * math.log2(b / m) / 2
  return max(total, 0.0)


def granularity_allowance(size: int, whole: Counts) -> Tuple[float, float]:
  """(L-infinity, JS) a floor/ceil-dealt unit of ``size`` records can reach by rounding alone."""
  if size <= 0:
    return 1.0, 1.0
  total = sum(whole.values())
  d = 2.0 / size
  js = sum(d * d / (n / total) for n in whole.values() if n) / (2 * math.log(2))
  return min(1.0, d), min(1.0, js)


def thresholds(size: int, whole: Counts, config: BalanceConfig) -> Tuple[float, float]:
  """The unit's effective (L-infinity, JS) thresholds: configured + rounding allowance."""
  linf_allow, js_allow = granularity_allowance(size, whole)
  return min(1.0, config.max_linf + linf_allow), min(1.0, config.max_js + js_allow)


def imbalance_ratio(whole: Counts) -> float:
  """Largest class count / smallest (inf when a class of the mapping has none)."""
  values = list(whole.values())
  if not values:
    return float('nan')
  return max(values) / min(values) if min(values) else float('inf')


def units(split_counts: Mapping[str, Counts],
          shard_counts: Mapping[str, Sequence[Tuple[str, Counts]]]) -> List[Unit]:
  """Splits in order, each followed by its shards."""
  out = []
  for split, counts in split_counts.items():
    out.append(Unit(SPLIT, split, '', dict(counts)))
    out.extend(Unit(SHARD, split, name, dict(c)) for name, c in shard_counts.get(split, ()))
  return out


def whole_counts(split_counts: Mapping[str, Counts], labels: Iterable[int]) -> Dict[int, int]:
  total = dict.fromkeys(labels, 0)
  for counts in split_counts.values():
    for c, n in counts.items():
      total[c] = total.get(c, 0) + n
  return dict(sorted(total.items()))


def measure(unit: Unit, whole: Counts, config: BalanceConfig,
            linf_value: Optional[float] = None, js_value: Optional[float] = None) -> Measurement:
  """Compares one unit with the whole; pass TFDV's measured values to use them."""
  p = distribution(whole, whole)
  q = distribution(unit.counts, whole)
  own_linf, worst = linf(q, p)
  linf_thr, js_thr = thresholds(unit.size, whole, config)
  return Measurement(unit, own_linf if linf_value is None else linf_value, linf_thr,
                     js_divergence(q, p) if js_value is None else js_value, js_thr, worst)


def balance_findings(measurements: Sequence[Measurement], whole: Counts,
                     class_names: Mapping[int, str], config: BalanceConfig) -> List[Finding]:
  """L-infinity / JS above threshold for any unit; a class under the minimum in any split."""
  findings = []
  p = distribution(whole, whole)
  for m in measurements:
    u = m.unit
    q = distribution(u.counts, whole)
    name = class_names.get(m.worst_label, str(m.worst_label))
    where = (f'{u.name}: class {name!r} is {q[m.worst_label]:.1%} of {u.size} records vs '
             f'{p[m.worst_label]:.1%} overall')
    if m.linf > m.linf_threshold:
      findings.append(Finding(LINF, u.name, u.split, u.shard, m.worst_label, name, m.linf,
                              m.linf_threshold, f'{where}; L-infinity {m.linf:.4f} > '
                              f'{m.linf_threshold:.4f} (max_linf {config.max_linf} + rounding '
                              f'allowance)'))
    if m.js > m.js_threshold:
      findings.append(Finding(JS, u.name, u.split, u.shard, m.worst_label, name, m.js,
                              m.js_threshold, f'{where}; Jensen-Shannon divergence {m.js:.5f} > '
                              f'{m.js_threshold:.5f} (max_js {config.max_js} + rounding '
                              f'allowance)'))
    if u.kind == SPLIT:
      for c in sorted(whole):
        n = u.counts.get(c, 0)
        if n < config.min_count_per_class:
          cname = class_names.get(c, str(c))
          findings.append(Finding(
              MIN_COUNT, u.name, u.split, '', c, cname, n, config.min_count_per_class,
              f'{u.name}: class {cname!r} has {n} examples, fewer than min_count_per_class='
              f'{config.min_count_per_class}'))
  return findings


def count_findings(split_counts: Mapping[str, Counts],
                   shard_counts: Mapping[str, Sequence[Tuple[str, Counts]]],
                   class_names: Mapping[int, str]) -> List[Finding]:
  """The statistics' per-split class counts must equal the sum over the split's shard files."""
  findings = []
  for split, counts in split_counts.items():
    from_files = collections.Counter()
    for _, c in shard_counts.get(split, ()):
      from_files.update(c)
    for c in sorted(set(counts) | set(from_files)):
      if counts.get(c, 0) != from_files.get(c, 0):
        cname = class_names.get(c, str(c))
        findings.append(Finding(
            COUNT_MISMATCH, f'split {split}', split, '', c, cname, from_files.get(c, 0),
            counts.get(c, 0), f'split {split}: class {cname!r} has {counts.get(c, 0)} examples '
            f'in the statistics but {from_files.get(c, 0)} in the shard files'))
  return findings


def cross_split_duplicates(
    hashes: Mapping[str, Sequence[Tuple[str, str]]]) -> List[Dict[str, object]]:
  """{sha256: [(split, image_id), ...]} -> the images present in more than one split."""
  out = []
  for sha, where in sorted(hashes.items()):
    splits = sorted({s for s, _ in where})
    if len(splits) > 1:
      out.append({'image_sha256': sha, 'splits': splits,
                  'image_ids': sorted(i for _, i in where)})
  return out


def duplicate_findings(duplicates: Sequence[Mapping[str, object]]) -> List[Finding]:
  return [Finding(DUPLICATE_ACROSS_SPLITS, DATASET, '/'.join(d['splits']), '', None, '',
                  len(d['image_ids']), 1,
                  f'the same image bytes (sha256 {str(d["image_sha256"])[:12]}...) are in splits '
                  f'{", ".join(d["splits"])}: {", ".join(d["image_ids"])}')
          for d in duplicates]


def sha_findings(mismatches: Sequence[Tuple[str, str, str]]) -> List[Finding]:
  """[(split, shard file, image_id)] whose image bytes do not hash to their image_sha256."""
  return [Finding(SHA256_MISMATCH, f'shard {split}/{shard}', split, shard, None, '', 1, 0,
                  f'shard {split}/{shard}: image {image_id!r} does not match its image_sha256')
          for split, shard, image_id in mismatches]


def verdict(findings: Sequence[Finding]) -> str:
  """'balanced', or 'NOT balanced', then the number of findings by kind if any."""
  kinds = collections.Counter(f.kind for f in findings)
  head = 'NOT balanced' if kinds[KIND_BALANCE] else 'balanced'
  if not findings:
    return head
  return head + ' (' + ', '.join(f'{n} {k} finding{"s" * (n != 1)}'
                                 for k, n in sorted(kinds.items())) + ')'
