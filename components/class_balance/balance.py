"""ClassBalance's checks as pure functions (no TensorFlow/TFX imports): measures, findings, the
two verdicts and the class weights.

Two different questions, two verdicts:

- **Stratification**: do the splits and shard files have the whole dataset's class proportions?
  A *unit* is a split or a shard file; each unit's class distribution is compared with the whole
  dataset's by TFDV's two comparator measures, L-infinity distance and Jensen-Shannon divergence
  (base 2, as TFDV computes them: ``linf`` and ``js_divergence`` give TFDV's numbers, which a test
  checks against TFDV). No false alarms at record granularity: a unit of m records cannot match
  real-valued proportions exactly. With floor/ceil dealing (what ImageExampleGen does without a
  group column) every class proportion is within 2/m of the whole's, so each unit's threshold is
  the configured one plus ``granularity_allowance(m)``: 2/m for L-infinity and, for JS, the bound
  JS <= sum_c d_c^2 / (p_c + q_c) / (2 ln 2) <= sum_c (2/m)^2 / p_c / (2 ln 2) (ln x <= x - 1).
- **Class imbalance** of the dataset itself: largest class / smallest class, against
  ``max_class_ratio``. A stratified dataset can be very imbalanced (the COVID-19 Radiography
  Database is 7.58:1); the remedy is the class weights, not a different split.

Every finding has a kind (stratification, imbalance, masks, leakage, integrity, drift, labels,
quality, shortcut) and a severity: stratification, leakage, integrity and label findings are
errors, imbalance, mask, image-quality and shortcut findings warnings (``warnings_as_errors``
makes them errors). What ImageExampleGen measured on the images' pixels -- near-duplicate
groups, image quality, shortcut risk -- becomes findings in ``image_findings.py``. Drift
between spans (``drift.py``) sets its severities itself: class-mix drift and groups leaking into
train are errors, image/mask drift, other split changes, incomparable groups and images re-sent
from an earlier span (they kept their earlier split) warnings.
"""
import collections
import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components.class_balance.config import BalanceConfig
from components.image_example_gen import mask_check as mask_codes

# TFDV's measure names (anomalies.proto DriftSkewInfo.Measurement.Type).
LINF = 'L_INFTY'
JS = 'JENSEN_SHANNON_DIVERGENCE'
# Checks of our own.
MIN_COUNT = 'MIN_COUNT_PER_CLASS'
CLASS_IMBALANCE = 'CLASS_IMBALANCE'  # largest / smallest class above max_class_ratio
COUNT_MISMATCH = 'COUNT_MISMATCH'  # split statistics and shard files disagree
RECORD_COUNT_MISMATCH = 'RECORD_COUNT_MISMATCH'  # a shard file vs ImageExampleGen's summary
UNREADABLE_SHARD = 'UNREADABLE_SHARD'  # a shard file stopped reading (corrupt record, ...)
UNKNOWN_LABEL = 'UNKNOWN_LABEL'  # a label outside the schema's class domain
CLASS_NAMES_MISMATCH = 'CLASS_NAMES_MISMATCH'  # schema vs the mapping ImageExampleGen used
DUPLICATE_ACROSS_SPLITS = 'DUPLICATE_ACROSS_SPLITS'  # leakage
MASK_SIZE_MISMATCH = 'MASK_SIZE_MISMATCH'
MASK_NOT_BINARY = 'MASK_NOT_BINARY'
MASK_NOT_SINGLE_CHANNEL = 'MASK_NOT_SINGLE_CHANNEL'
MASK_UNDECODABLE = 'MASK_UNDECODABLE'
MASK_PRESENCE_DRIFT = 'MASK_PRESENCE_DRIFT'  # a split's share of masked records is off
# Between spans (drift.py): this span vs the baseline span (the newest earlier one) ...
DRIFT_LINF = 'DRIFT_L_INFTY'  # class mix, all splits pooled (anomaly: COMPARATOR_L_INFTY_HIGH)
DRIFT_JS = 'DRIFT_JENSEN_SHANNON_DIVERGENCE'  # (COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH)
IMAGE_SIZE_DRIFT = 'IMAGE_SIZE_DRIFT'  # image size distribution, L-infinity
IMAGE_MODE_DRIFT = 'IMAGE_MODE_DRIFT'  # format/colour mode/bit depth distribution, L-infinity
MASK_PRESENCE_SPAN_DRIFT = 'MASK_PRESENCE_SPAN_DRIFT'  # share of records with a mask
MASK_COVERAGE_DRIFT = 'MASK_COVERAGE_DRIFT'  # sampled mask-coverage histogram, JS
# ... and this span's groups vs every earlier span's (group_splits.json).
SPAN_LEAKAGE = 'SPAN_LEAKAGE'  # a group in train now was in a non-train split earlier
SPAN_SPLIT_CHANGE = 'SPAN_SPLIT_CHANGE'  # a group changed split otherwise (warning)
SPAN_GROUPS_NOT_COMPARABLE = 'SPAN_GROUPS_NOT_COMPARABLE'  # other group column (warning)
# ... and this span's images an earlier span already had (the ingest summary's membership).
RESENT_IMAGE = 'RESENT_IMAGE'  # same bytes as an earlier span's image, kept its split (warning)
# What ImageExampleGen measured on the pixels (image_findings.py, from its ingest summary).
NEAR_DUPLICATE_ACROSS_SPLITS = 'NEAR_DUPLICATE_ACROSS_SPLITS'  # leakage: copies in two splits
NEAR_DUPLICATE_LABELS = 'NEAR_DUPLICATE_LABELS'  # one image, two labels
QUALITY_CLASS_RATE = 'QUALITY_CLASS_RATE'  # a class has a quality finding far more often
SHORTCUT_RISK = 'SHORTCUT_RISK'  # non-anatomical properties predict the class

KIND_STRATIFICATION = 'stratification'
KIND_IMBALANCE = 'imbalance'
KIND_MASKS = 'masks'
KIND_LEAKAGE = 'leakage'
KIND_INTEGRITY = 'integrity'
KIND_DRIFT = 'drift'
KIND_LABELS = 'labels'
KIND_QUALITY = 'quality'
KIND_SHORTCUT = 'shortcut'
KIND_OF = {
    LINF: KIND_STRATIFICATION, JS: KIND_STRATIFICATION, MIN_COUNT: KIND_STRATIFICATION,
    CLASS_IMBALANCE: KIND_IMBALANCE,
    MASK_SIZE_MISMATCH: KIND_MASKS, MASK_NOT_BINARY: KIND_MASKS,
    MASK_NOT_SINGLE_CHANNEL: KIND_MASKS, MASK_UNDECODABLE: KIND_MASKS,
    MASK_PRESENCE_DRIFT: KIND_MASKS,
    DUPLICATE_ACROSS_SPLITS: KIND_LEAKAGE,
    SPAN_LEAKAGE: KIND_LEAKAGE, SPAN_SPLIT_CHANGE: KIND_LEAKAGE,
    SPAN_GROUPS_NOT_COMPARABLE: KIND_LEAKAGE, RESENT_IMAGE: KIND_LEAKAGE,
    NEAR_DUPLICATE_ACROSS_SPLITS: KIND_LEAKAGE,
    NEAR_DUPLICATE_LABELS: KIND_LABELS, QUALITY_CLASS_RATE: KIND_QUALITY,
    SHORTCUT_RISK: KIND_SHORTCUT,
    DRIFT_LINF: KIND_DRIFT, DRIFT_JS: KIND_DRIFT, IMAGE_SIZE_DRIFT: KIND_DRIFT,
    IMAGE_MODE_DRIFT: KIND_DRIFT, MASK_PRESENCE_SPAN_DRIFT: KIND_DRIFT,
    MASK_COVERAGE_DRIFT: KIND_DRIFT,
    COUNT_MISMATCH: KIND_INTEGRITY, RECORD_COUNT_MISMATCH: KIND_INTEGRITY,
    UNREADABLE_SHARD: KIND_INTEGRITY, UNKNOWN_LABEL: KIND_INTEGRITY,
    CLASS_NAMES_MISMATCH: KIND_INTEGRITY,
}
KIND_NOUN = {KIND_STRATIFICATION: 'stratification', KIND_IMBALANCE: 'imbalance',
             KIND_MASKS: 'mask', KIND_LEAKAGE: 'leakage', KIND_INTEGRITY: 'integrity',
             KIND_DRIFT: 'drift', KIND_LABELS: 'label', KIND_QUALITY: 'image-quality',
             KIND_SHORTCUT: 'shortcut-risk'}
ERROR = 'error'
WARNING = 'warning'
WARNING_KINDS = frozenset([KIND_IMBALANCE, KIND_MASKS, KIND_QUALITY, KIND_SHORTCUT])

# ImageExampleGen's mask-check codes (summary.mask_checks) -> our checks, and what they mean.
MASK_CHECKS = {
    mask_codes.SIZE_MISMATCH: (MASK_SIZE_MISMATCH, 'differ in size from their image'),
    mask_codes.NOT_BINARY: (MASK_NOT_BINARY, 'are not binary (more than 0 and one foreground '
                                             'value)'),
    mask_codes.NOT_SINGLE_CHANNEL: (MASK_NOT_SINGLE_CHANNEL, 'have several differing channels'),
    mask_codes.UNDECODABLE: (MASK_UNDECODABLE, 'do not decode'),
}

SPLIT = 'split'
SHARD = 'shard'
DATASET = 'dataset'
WEIGHTS_SPLIT = 'train'  # class weights come from this split, else from the first one

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
  """A failed check: where, which class, which measure, by how much, how serious."""
  check: str
  scope: str  # 'split eval', 'shard train/data_tfrecord-00003-of-00008.gz', 'dataset'
  split: str  # '' for the whole dataset; 'a/b' for a finding spanning splits
  shard: str
  label: Optional[int]
  class_name: str
  value: float
  threshold: float
  message: str
  severity: str = ''  # ERROR | WARNING; '' takes the check's default

  def __post_init__(self):
    if not self.severity:
      object.__setattr__(self, 'severity', WARNING if self.kind in WARNING_KINDS else ERROR)

  @property
  def kind(self) -> str:
    return KIND_OF[self.check]

  def to_dict(self) -> Dict[str, object]:
    return dict(dataclasses.asdict(self), kind=self.kind)

  @classmethod
  def from_dict(cls, data: Mapping[str, object]) -> 'Finding':
    return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def finalize(findings: Iterable[Finding], config: BalanceConfig) -> List[Finding]:
  """Applies ``warnings_as_errors`` and orders errors before warnings (stable otherwise)."""
  out = [dataclasses.replace(f, severity=ERROR) if config.warnings_as_errors else f
         for f in findings]
  return sorted(out, key=lambda f: f.severity != ERROR)


# --- Stratification ------------------------------------------------------------------------

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


def measure(unit: Unit, whole: Counts, config: BalanceConfig) -> Measurement:
  """Compares one unit with the whole: TFDV's two measures and the unit's thresholds."""
  p = distribution(whole, whole)
  q = distribution(unit.counts, whole)
  value, worst = linf(q, p)
  linf_thr, js_thr = thresholds(unit.size, whole, config)
  return Measurement(unit, value, linf_thr, js_divergence(q, p), js_thr, worst)


def stratification_findings(measurements: Sequence[Measurement], whole: Counts,
                            class_names: Mapping[int, str],
                            config: BalanceConfig) -> List[Finding]:
  """L-infinity / JS above threshold for any unit; a class under the minimum in any split."""
  findings = []
  p = distribution(whole, whole)
  for m in measurements:
    u = m.unit
    q = distribution(u.counts, whole)
    name = class_names.get(m.worst_label, str(m.worst_label))
    where = (f'{u.name}: class {name!r} is {q.get(m.worst_label, 0.0):.1%} of {u.size} records '
             f'vs {p.get(m.worst_label, 0.0):.1%} overall')
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


def stratification_verdict(findings: Sequence[Finding]) -> Tuple[bool, str]:
  bad = [f for f in findings if f.kind == KIND_STRATIFICATION]
  if not bad:
    return True, 'stratified'
  return False, f'NOT stratified ({len(bad)} finding{"s" * (len(bad) != 1)})'


# --- Class imbalance and weights -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClassImbalance:
  """The whole dataset's class imbalance against max_class_ratio."""
  ratio: float  # largest / smallest class count; inf when a class has no example
  largest: int  # label
  smallest: int  # label
  counts: Dict[int, int]
  max_class_ratio: float

  @property
  def ok(self) -> bool:
    return self.ratio <= self.max_class_ratio

  @property
  def smallest_share(self) -> float:
    total = sum(self.counts.values())
    return self.counts.get(self.smallest, 0) / total if total else 0.0

  def to_dict(self, class_names: Mapping[int, str]) -> Dict[str, object]:
    return {'balanced': self.ok, 'ratio': _json_ratio(self.ratio),
            'max_class_ratio': self.max_class_ratio,
            'largest': {'label': self.largest, 'class': class_names.get(self.largest, ''),
                        'examples': self.counts.get(self.largest, 0)},
            'smallest': {'label': self.smallest, 'class': class_names.get(self.smallest, ''),
                         'examples': self.counts.get(self.smallest, 0),
                         'share': round(self.smallest_share, 6)}}


def _json_ratio(ratio: float):
  return round(ratio, 4) if math.isfinite(ratio) else 'inf'


def imbalance_ratio(whole: Counts) -> float:
  """Largest class count / smallest (inf when a class of the mapping has none)."""
  values = list(whole.values())
  if not values:
    return float('nan')
  return max(values) / min(values) if min(values) else float('inf')


def class_imbalance(whole: Counts, config: BalanceConfig) -> ClassImbalance:
  labels = sorted(whole)
  largest = max(labels, key=lambda c: (whole[c], -c)) if labels else -1
  smallest = min(labels, key=lambda c: (whole[c], c)) if labels else -1
  return ClassImbalance(imbalance_ratio(whole) if labels else 1.0, largest, smallest,
                        dict(whole), config.max_class_ratio)


def imbalance_findings(imbalance: ClassImbalance, class_names: Mapping[int, str]
                       ) -> List[Finding]:
  if imbalance.ok:
    return []
  big = class_names.get(imbalance.largest, str(imbalance.largest))
  small = class_names.get(imbalance.smallest, str(imbalance.smallest))
  n_big, n_small = imbalance.counts[imbalance.largest], imbalance.counts[imbalance.smallest]
  ratio = f'{imbalance.ratio:.2f}:1' if math.isfinite(imbalance.ratio) else 'unbounded'
  return [Finding(
      CLASS_IMBALANCE, DATASET, '', '', imbalance.smallest, small,
      imbalance.ratio if math.isfinite(imbalance.ratio) else 1e9, imbalance.max_class_ratio,
      f'dataset: classes imbalanced {ratio} (largest {big!r} {n_big} examples, smallest '
      f'{small!r} {n_small} = {imbalance.smallest_share:.1%}) > max_class_ratio '
      f'{imbalance.max_class_ratio:g}:1; weight the loss with the class weights '
      '(artifact property class_weights) or resample')]


def class_balance_verdict(imbalance: ClassImbalance, class_names: Mapping[int, str]) -> str:
  small = class_names.get(imbalance.smallest, str(imbalance.smallest))
  if not math.isfinite(imbalance.ratio):
    return f'classes imbalanced (class {small!r} has no examples)'
  ratio = f'{imbalance.ratio:.2f}:1'
  if imbalance.ok:
    return f'classes balanced ({ratio} <= {imbalance.max_class_ratio:g}:1)'
  return (f'classes imbalanced ({ratio}, smallest {small!r} {imbalance.smallest_share:.1%}; '
          'use the class weights)')


def weights_split(splits: Sequence[str]) -> str:
  return WEIGHTS_SPLIT if WEIGHTS_SPLIT in splits else (list(splits) or [''])[0]


def class_weights(counts: Counts, labels: Iterable[int]) -> Dict[int, float]:
  """Inverse class frequency, normalized so that the weighted mean over the examples is 1:
  w_c = N / (K' * n_c) with N examples and K' classes present; 0.0 for an absent class."""
  labels = sorted(labels)
  present = [c for c in labels if counts.get(c, 0) > 0]
  total = sum(counts[c] for c in present)
  return {c: (round(total / (len(present) * counts[c]), 6) if counts.get(c, 0) > 0 else 0.0)
          for c in labels}


# --- Integrity -------------------------------------------------------------------------------

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


def record_count_findings(read: Mapping[Tuple[str, str], int],
                          written: Mapping[Tuple[str, str], int]) -> List[Finding]:
  """Records read from each shard file vs what ImageExampleGen's summary says it wrote there."""
  findings = []
  for split, shard in sorted(set(read) | set(written)):
    n_read, n_written = read.get((split, shard), 0), written.get((split, shard), 0)
    if n_read != n_written:
      findings.append(Finding(
          RECORD_COUNT_MISMATCH, f'shard {split}/{shard}', split, shard, None, '', n_read,
          n_written, f'shard {split}/{shard}: {n_read} records read, but ImageExampleGen wrote '
          f'{n_written} (ingest summary)'))
  return findings


def unreadable_findings(errors: Sequence[Tuple[str, str, str]]) -> List[Finding]:
  return [Finding(UNREADABLE_SHARD, f'shard {split}/{shard}', split, shard, None, '', 1, 0,
                  f'shard {split}/{shard}: reading stopped: {message}')
          for split, shard, message in errors]


def unknown_label_findings(seen: Mapping[str, Counts], class_names: Mapping[int, str]
                           ) -> List[Finding]:
  """Labels found in a split (statistics or files) that the schema's class domain lacks."""
  findings = []
  for split, counts in seen.items():
    for c, n in sorted(counts.items()):
      if c not in class_names and n:
        findings.append(Finding(
            UNKNOWN_LABEL, f'split {split}', split, '', c, str(c), n, 0,
            f'split {split}: {n} examples have label {c}, which the schema\'s class domain '
            f'(0..{max(class_names) if class_names else -1}) does not have'))
  return findings


def class_names_findings(schema_names: Mapping[int, str], ingest_names: Mapping[int, str]
                         ) -> List[Finding]:
  """The schema's class names vs the class mapping ImageExampleGen used (its summary)."""
  if not ingest_names or dict(schema_names) == dict(ingest_names):
    return []
  diffs = [f'label {c}: {ingest_names.get(c)!r} when ingested, {schema_names.get(c)!r} in the '
           'schema' for c in sorted(set(schema_names) | set(ingest_names))
           if schema_names.get(c) != ingest_names.get(c)]
  return [Finding(CLASS_NAMES_MISMATCH, DATASET, '', '', None, '', len(diffs), 0,
                  'dataset: the schema\'s classes are not the class mapping ImageExampleGen used '
                  f'({"; ".join(diffs)}); generate the schema from the mapping (CuratedSchemaGen)')]


# --- Leakage ---------------------------------------------------------------------------------

def cross_split_duplicates(groups: Mapping[str, Sequence[Tuple[str, str]]]
                           ) -> List[Dict[str, object]]:
  """{sha256: [(split, image_id), ...]} -> the images present in more than one split."""
  out = []
  for sha, where in sorted(groups.items()):
    splits = sorted({s for s, _ in where if s})
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


# --- Masks -----------------------------------------------------------------------------------

def _per_class(counts: Mapping[str, int]) -> str:
  return ', '.join(f'{name!r} {n}' for name, n in counts.items() if n)


def mask_check_findings(mask_checks: Mapping[str, Mapping[str, Mapping[str, int]]],
                        declared_size: str) -> List[Finding]:
  """ImageExampleGen's per-split, per-class mask-check counts -> one warning per split and
  problem (empty masks are reported, not findings)."""
  findings = []
  for split, by_class in mask_checks.items():
    masks = sum(c.get(mask_codes.MASKS, 0) for c in by_class.values())
    for code, (check, meaning) in MASK_CHECKS.items():
      per_class = {name: c.get(code, 0) for name, c in by_class.items()}
      n = sum(per_class.values())
      if not n:
        continue
      hint = ''
      if code == mask_codes.SIZE_MISMATCH:
        hint = (f' (nor the declared mask size {declared_size})' if declared_size else
                '; if every mask has one size by design, declare it (ImageExampleGen '
                '--mask-size WxH) and train at one size (Transform --image-size)')
      findings.append(Finding(
          check, f'split {split}', split, '', None, '', n, 0,
          f'split {split}: {n} of {masks} masks {meaning}{hint}: {_per_class(per_class)}'))
  return findings


def header_size_findings(mismatch: Mapping[str, Mapping[str, int]],
                         masks: Mapping[str, int]) -> List[Finding]:
  """Without ImageExampleGen's mask checks (older summary, or none): size mismatches from the
  file headers ClassBalance read, {split: {class name: n}}."""
  findings = []
  for split, per_class in mismatch.items():
    n = sum(per_class.values())
    if n:
      check, meaning = MASK_CHECKS[mask_codes.SIZE_MISMATCH]
      findings.append(Finding(
          check, f'split {split}', split, '', None, '', n, 0,
          f'split {split}: {n} of {masks.get(split, 0)} masks {meaning} (file headers): '
          f'{_per_class(per_class)}'))
  return findings


def presence_threshold(rate: float, records: int, config: BalanceConfig) -> float:
  """max_mask_presence_gap plus 3 standard deviations of a split's rate from sampling alone."""
  if records <= 0:
    return 1.0
  return config.max_mask_presence_gap + 3 * math.sqrt(rate * (1 - rate) / records)


def mask_presence_findings(presence: Mapping[str, Tuple[int, int]], config: BalanceConfig
                           ) -> List[Finding]:
  """{split: (records with a mask, records)} -> a warning for every split whose share of masked
  records differs from the whole dataset's by more than its threshold."""
  masks = sum(m for m, _ in presence.values())
  records = sum(n for _, n in presence.values())
  if not records:
    return []
  rate = masks / records
  findings = []
  for split, (m, n) in presence.items():
    if not n:
      continue
    threshold = presence_threshold(rate, n, config)
    gap = abs(m / n - rate)
    if gap > threshold:
      findings.append(Finding(
          MASK_PRESENCE_DRIFT, f'split {split}', split, '', None, '', gap, threshold,
          f'split {split}: {m / n:.1%} of its {n} records have a mask vs {rate:.1%} overall; '
          f'difference {gap:.3f} > {threshold:.3f} (max_mask_presence_gap '
          f'{config.max_mask_presence_gap} + 3-sigma sampling allowance)'))
  return findings


# --- The one-line verdict ---------------------------------------------------------------------

def verdict(stratification: str, class_balance: str, findings: Sequence[Finding]) -> str:
  """'<stratification>; <class balance>[; n <kind> errors/warnings ...]' (the other kinds)."""
  others = collections.Counter((f.kind, f.severity) for f in findings
                               if f.kind not in (KIND_STRATIFICATION, KIND_IMBALANCE))
  tail = ', '.join(f'{n} {KIND_NOUN[kind]} {severity}{"s" * (n != 1)}'
                   for (kind, severity), n in sorted(others.items()))
  return f'{stratification}; {class_balance}' + (f'; {tail}' if tail else '')
