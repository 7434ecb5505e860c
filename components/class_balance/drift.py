"""Drift between spans, and group leakage across spans (pure: plain Python; no TensorFlow, no
I/O).

ImageExampleGen ingests one span of ``index-{SPAN}.csv`` per run. ClassBalance compares this
span with the **baseline**: the newest earlier span it was given (``previous_examples``: the
newest artifact of every span < this one; largest span, then largest version, then largest
artifact id).

- **Class mix** (all splits pooled): TFDV's two measures, L-infinity (with the class that moved
  most) and Jensen-Shannon divergence in bits (``balance.linf``, ``balance.js_divergence``),
  against ``max_drift_linf`` / ``max_drift_js``: an ERROR above either (``DRIFT_L_INFTY``,
  ``DRIFT_JENSEN_SHANNON_DIVERGENCE``). Classes are matched by name, so a span ingested with
  another class mapping is still compared class by class. The counts come from both spans'
  ingest summaries when both have one, else from this span's statistics and the baseline's
  shard files.
- **Image and mask statistics** (``image_stats.ClassStats``, all splits and classes pooled):
  the image size and image mode distributions (L-infinity, vs ``max_drift_linf``), the share of
  records with a mask (absolute difference, vs ``max_drift_linf``) and the sampled
  mask-coverage histogram (JS, vs ``max_drift_js``): WARNINGs above.
- **Group leakage across spans**, from every span's ``group_splits.json`` ({group hash: split};
  the hash is salted, identical across spans with the same salt): a group in this span's
  ``train`` split that was in a non-train split of an earlier span is an ERROR
  (``SPAN_LEAKAGE``: a patient evaluated on before is now trained on); a group whose split
  changed otherwise is a WARNING (``SPAN_SPLIT_CHANGE``); an earlier span grouped by another
  column is a WARNING (``SPAN_GROUPS_NOT_COMPARABLE``) and is not compared.
- **Images re-sent from an earlier span**, from this span's ingest summary (``membership``):
  ImageExampleGen keeps an image's split frozen across spans by the sha256 of its bytes, so an
  image whose bytes an earlier span already had (usually under a new file name) went to the
  split it had there. Not leakage, but the same image ingested twice: a WARNING
  (``RESENT_IMAGE``) counting all of them and quoting the first few. Older summaries (no
  ``membership``) report nothing.

No sampling allowance is added to the thresholds (unlike stratification's rounding allowance):
spans are whole ingestions, typically thousands of records; for small spans raise the
thresholds.
"""
import dataclasses
import json
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components.class_balance import balance
from components.class_balance import image_stats
from components.class_balance.config import BalanceConfig
from components.errors import escape_control
from components.image_example_gen.summary import IngestSummary
from components.image_example_gen.summary import split_class_totals

TRAIN = 'train'  # the split whose groups must not come from an earlier span's eval/test
EXAMPLE_GROUPS = 5  # group hashes quoted in a finding
EXAMPLE_IMAGES = 5  # re-sent images quoted in a finding
HASH_CHARS = 12  # of a group hash, in messages

# Measures of the image/mask statistics (also TFDV's names where TFDV has one).
LINF = balance.LINF
JS = balance.JS
ABSOLUTE_DIFFERENCE = 'ABSOLUTE_DIFFERENCE'

IMAGE_SIZES = 'image sizes'
IMAGE_MODES = 'image modes'
MASK_PRESENCE = 'mask presence'
MASK_COVERAGE = 'mask coverage'

CLASS_MIX_CHECKS = frozenset([balance.DRIFT_LINF, balance.DRIFT_JS])
CHECKS = frozenset([
    balance.DRIFT_LINF, balance.DRIFT_JS, balance.IMAGE_SIZE_DRIFT, balance.IMAGE_MODE_DRIFT,
    balance.MASK_PRESENCE_SPAN_DRIFT, balance.MASK_COVERAGE_DRIFT, balance.SPAN_LEAKAGE,
    balance.SPAN_SPLIT_CHANGE, balance.SPAN_GROUPS_NOT_COMPARABLE, balance.RESENT_IMAGE])

SOURCE_SUMMARIES = 'ingest summaries'
SOURCE_FILES = "this span's statistics and the baseline's shard files"


@dataclasses.dataclass(frozen=True)
class SpanExamples:
  """An Examples artifact of one span: where it is and which span/version it holds."""
  uri: str
  span: int
  version: int = 0
  artifact_id: int = 0

  @classmethod
  def of(cls, value) -> 'SpanExamples':
    """A SpanExamples, a tuple (uri, span[, version[, artifact id]]) or a mapping with those
    keys (``uri``, ``span``, ``version``, ``artifact_id`` or ``id``)."""
    if isinstance(value, SpanExamples):
      return value
    if isinstance(value, Mapping):
      return cls(str(value['uri']), int(value.get('span', 0) or 0),
                 int(value.get('version', 0) or 0),
                 int(value.get('artifact_id', value.get('id', 0)) or 0))
    uri, span, *rest = value
    return cls(str(uri), int(span or 0), *(int(v or 0) for v in rest[:2]))

  def to_dict(self) -> Dict[str, object]:
    return {'span': self.span, 'version': self.version, 'uri': self.uri}


def earlier_spans(previous: Iterable[SpanExamples], current_span: int) -> List[SpanExamples]:
  """The artifacts of spans before ``current_span``, oldest first (others are ignored)."""
  return sorted((p for p in previous if p.span < current_span),
                key=lambda p: (p.span, p.version, p.artifact_id))


def pick_baseline(previous: Iterable[SpanExamples], current_span: int) -> Optional[SpanExamples]:
  """The newest earlier span: largest span < current_span, then version, then artifact id."""
  earlier = earlier_spans(previous, current_span)
  return earlier[-1] if earlier else None


# --- Distributions keyed by anything ----------------------------------------------------------

def _indexed(*counts: Mapping[str, float]) -> Tuple[List[str], List[Dict[int, float]]]:
  """Counts keyed by name -> (the names, in first-seen order; one distribution per input keyed
  by the name's index), so ``balance.linf``/``js_divergence`` (int keys) measure them."""
  keys: List[str] = []
  for c in counts:
    keys.extend(k for k in c if k not in keys)
  return keys, [balance.distribution({i: c.get(k, 0) for i, k in enumerate(keys)},
                                     range(len(keys))) for c in counts]


def linf_by_key(current: Mapping[str, float], baseline: Mapping[str, float]
                ) -> Tuple[float, str]:
  """(L-infinity between the two count tables' distributions, the key that moved most)."""
  keys, (q, p) = _indexed(current, baseline)
  if not keys:
    return 0.0, ''
  value, worst = balance.linf(q, p)
  return value, keys[worst]


def js_by_key(current: Mapping[str, float], baseline: Mapping[str, float]) -> float:
  """Jensen-Shannon divergence (bits) between the two count tables' distributions."""
  _, (q, p) = _indexed(current, baseline)
  return balance.js_divergence(q, p)


def shares(counts: Mapping[str, float]) -> Dict[str, float]:
  total = sum(counts.values())
  return {k: round(n / total, 6) if total else 0.0 for k, n in counts.items()}


# --- Class mix --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClassMix:
  """This span's class mix vs the baseline's, all splits pooled, by class name."""
  current: Dict[str, int]
  baseline: Dict[str, int]
  linf: float
  linf_class: str  # the class whose share moved most
  js: float
  max_linf: float
  max_js: float
  source: str  # SOURCE_SUMMARIES | SOURCE_FILES

  @property
  def linf_drifted(self) -> bool:
    return self.linf > self.max_linf

  @property
  def js_drifted(self) -> bool:
    return self.js > self.max_js

  @property
  def drifted(self) -> bool:
    return self.linf_drifted or self.js_drifted

  def to_dict(self) -> Dict[str, object]:
    return {'source': self.source,
            'current': {'counts': dict(self.current), 'shares': shares(self.current)},
            'baseline': {'counts': dict(self.baseline), 'shares': shares(self.baseline)},
            'linf': round(self.linf, 6), 'linf_class': self.linf_class,
            'js': round(self.js, 8), 'max_drift_linf': self.max_linf,
            'max_drift_js': self.max_js, 'drifted': self.drifted}


def class_mix(current: Mapping[str, int], baseline: Mapping[str, int], config: BalanceConfig,
              source: str) -> Optional[ClassMix]:
  """Both spans' class counts by name -> the measures; None when either span is empty."""
  if not sum(current.values()) or not sum(baseline.values()):
    return None
  names = list(current) + [n for n in baseline if n not in current]
  current = {n: int(current.get(n, 0)) for n in names}
  baseline = {n: int(baseline.get(n, 0)) for n in names}
  value, worst = linf_by_key(current, baseline)
  return ClassMix(current, baseline, value, worst, js_by_key(current, baseline),
                  config.max_drift_linf, config.max_drift_js, source)


def class_mix_findings(mix: Optional[ClassMix], current_span: int, baseline_span: int
                       ) -> List[balance.Finding]:
  """An ERROR per measure above its threshold."""
  if mix is None or not mix.drifted:
    return []
  scope = f'span {current_span} vs span {baseline_span}'
  now, then = shares(mix.current), shares(mix.baseline)
  where = (f'class mix vs span {baseline_span}: class {mix.linf_class!r} is '
           f'{now.get(mix.linf_class, 0.0):.1%} of this span\'s {sum(mix.current.values()):,} '
           f'records vs {then.get(mix.linf_class, 0.0):.1%} of {sum(mix.baseline.values()):,} '
           f'in span {baseline_span}')
  findings = []
  if mix.linf_drifted:
    findings.append(balance.Finding(
        balance.DRIFT_LINF, scope, '', '', None, mix.linf_class, mix.linf, mix.max_linf,
        f'{where}; L-infinity {mix.linf:.4f} > {mix.max_linf:g} (max_drift_linf; option '
        '--max-drift-linf)', severity=balance.ERROR))
  if mix.js_drifted:
    findings.append(balance.Finding(
        balance.DRIFT_JS, scope, '', '', None, mix.linf_class, mix.js, mix.max_js,
        f'{where}; Jensen-Shannon divergence {mix.js:.5f} > {mix.max_js:g} (max_drift_js; '
        'option --max-drift-js)', severity=balance.ERROR))
  return findings


# --- Image and mask statistics ----------------------------------------------------------------

def pooled(stats: Iterable[image_stats.ClassStats]) -> image_stats.ClassStats:
  """One ClassStats of them all (the inputs are not modified)."""
  out = image_stats.ClassStats()
  for s in stats:
    out.merge(s)  # merge adds ``s`` into ``out``; ``s`` is left as it was
  return out


@dataclasses.dataclass(frozen=True)
class StatDrift:
  """One image/mask statistic of this span vs the baseline's."""
  name: str  # IMAGE_SIZES | IMAGE_MODES | MASK_PRESENCE | MASK_COVERAGE
  check: str  # the finding's check when above the threshold
  measure: str  # LINF | JS | ABSOLUTE_DIFFERENCE
  option: str  # the threshold's BalanceConfig field
  value: Optional[float]  # None: not compared (``note`` says why)
  threshold: float
  worst: str  # the size/mode/coverage bin that moved most ('' when not applicable)
  current: object  # {key: share} | rate | histogram
  baseline: object
  note: str = ''

  @property
  def ok(self) -> bool:
    return self.value is None or self.value <= self.threshold

  def to_dict(self) -> Dict[str, object]:
    return {'name': self.name, 'check': self.check, 'measure': self.measure,
            'value': None if self.value is None else round(self.value, 8),
            'threshold': self.threshold, 'option': self.option, 'ok': self.ok,
            'worst': self.worst, 'current': self.current, 'baseline': self.baseline,
            'note': self.note}


def _bin(i: int) -> str:
  width = 1 / image_stats.COVERAGE_BINS
  return f'{i * width:.1f}-{(i + 1) * width:.1f}'


def stats_drift(current: image_stats.ClassStats, baseline: image_stats.ClassStats,
                config: BalanceConfig) -> List[StatDrift]:
  """Image sizes and modes (L-infinity), mask presence (|difference|), mask coverage (JS)."""
  out = []
  for name, check, field in ((IMAGE_SIZES, balance.IMAGE_SIZE_DRIFT, 'image_sizes'),
                             (IMAGE_MODES, balance.IMAGE_MODE_DRIFT, 'image_modes')):
    now, then = getattr(current, field), getattr(baseline, field)
    if sum(now.values()) and sum(then.values()):
      value, worst = linf_by_key(now, then)
      out.append(StatDrift(name, check, LINF, 'max_drift_linf', value, config.max_drift_linf,
                           worst, shares(now), shares(then)))
    else:
      out.append(StatDrift(name, check, LINF, 'max_drift_linf', None, config.max_drift_linf,
                           '', shares(now), shares(then), 'no records in one of the spans'))
  if current.records and baseline.records:
    now, then = current.masks / current.records, baseline.masks / baseline.records
    out.append(StatDrift(MASK_PRESENCE, balance.MASK_PRESENCE_SPAN_DRIFT, ABSOLUTE_DIFFERENCE,
                         'max_drift_linf', abs(now - then), config.max_drift_linf, '',
                         round(now, 6), round(then, 6)))
  else:
    out.append(StatDrift(MASK_PRESENCE, balance.MASK_PRESENCE_SPAN_DRIFT, ABSOLUTE_DIFFERENCE,
                         'max_drift_linf', None, config.max_drift_linf, '', None, None,
                         'no records in one of the spans'))
  now = {_bin(i): n for i, n in enumerate(current.coverage_histogram)}
  then = {_bin(i): n for i, n in enumerate(baseline.coverage_histogram)}
  if current.coverage_sampled and baseline.coverage_sampled:
    _, worst = linf_by_key(now, then)
    out.append(StatDrift(MASK_COVERAGE, balance.MASK_COVERAGE_DRIFT, JS, 'max_drift_js',
                         js_by_key(now, then), config.max_drift_js, worst,
                         list(current.coverage_histogram), list(baseline.coverage_histogram)))
  else:
    out.append(StatDrift(MASK_COVERAGE, balance.MASK_COVERAGE_DRIFT, JS, 'max_drift_js', None,
                         config.max_drift_js, '', list(current.coverage_histogram),
                         list(baseline.coverage_histogram),
                         'no mask decoded in one of the spans'))
  return out


_OPTION = {'max_drift_linf': '--max-drift-linf', 'max_drift_js': '--max-drift-js'}


def stats_findings(measured: Sequence[StatDrift], current_span: int, baseline_span: int
                   ) -> List[balance.Finding]:
  """A WARNING per statistic above its threshold."""
  findings = []
  scope = f'span {current_span} vs span {baseline_span}'
  for s in measured:
    if s.ok:
      continue
    limit = f'{s.threshold:g} ({s.option}; option {_OPTION[s.option]})'
    if s.measure == LINF:
      what = (f'{s.name} vs span {baseline_span}: {s.worst!r} is '
              f'{s.current.get(s.worst, 0.0):.1%} of this span\'s images vs '
              f'{s.baseline.get(s.worst, 0.0):.1%} in span {baseline_span}; L-infinity '
              f'{s.value:.4f} > {limit}')
    elif s.measure == ABSOLUTE_DIFFERENCE:
      what = (f'{s.name} vs span {baseline_span}: {s.current:.1%} of this span\'s records have a '
              f'mask vs {s.baseline:.1%} in span {baseline_span}; difference {s.value:.3f} > '
              f'{limit}')
    else:
      what = (f'{s.name} vs span {baseline_span}: the sampled masks\' foreground-share '
              f'histogram moved most in bin {s.worst}; Jensen-Shannon divergence '
              f'{s.value:.5f} > {limit}')
    findings.append(balance.Finding(s.check, scope, '', '', None, '', s.value, s.threshold,
                                    what, severity=balance.WARNING))
  return findings


# --- Group leakage across spans ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GroupSplits:
  """One span's ``group_splits.json``: the group column, {group hash: split} and a public
  token of the salt the hashes were made with ('' in files written before it was recorded)."""
  group_column: str
  groups: Dict[str, str]
  salt_check: str = ''

  @classmethod
  def from_json(cls, text: str) -> 'GroupSplits':
    data = json.loads(text)
    return cls(str(data.get('group_column') or ''),
               {str(k): str(v) for k, v in (data.get('groups') or {}).items()},
               str(data.get('group_salt_check') or ''))


@dataclasses.dataclass(frozen=True)
class SpanLeakage:
  """This span's groups vs every earlier span's."""
  checked: bool
  note: str
  group_column: str = ''
  groups: int = 0  # this span's groups
  train_groups: int = 0  # of which in its train split
  spans_compared: Tuple[int, ...] = ()
  spans_not_comparable: Tuple[Tuple[int, str], ...] = ()  # (span, its group column)
  spans_without_groups: Tuple[int, ...] = ()  # no group_splits.json, or no groups in it
  into_train: int = 0  # groups in this span's train split, in a non-train split earlier
  into_train_spans: Tuple[int, ...] = ()
  into_train_examples: Tuple[str, ...] = ()  # the first few group hashes
  split_changed: int = 0  # groups in another split than earlier, not into train
  split_changed_examples: Tuple[str, ...] = ()  # 'hash: eval (span 1) -> test'

  def to_dict(self) -> Dict[str, object]:
    return {'checked': self.checked, 'note': self.note, 'group_column': self.group_column,
            'groups': self.groups, 'train_groups': self.train_groups,
            'spans_compared': list(self.spans_compared),
            'spans_not_comparable': [{'span': s, 'group_column': c}
                                     for s, c in self.spans_not_comparable],
            'spans_without_groups': list(self.spans_without_groups),
            'into_train': self.into_train, 'into_train_spans': list(self.into_train_spans),
            'into_train_examples': list(self.into_train_examples),
            'split_changed': self.split_changed,
            'split_changed_examples': list(self.split_changed_examples)}


def _spans(spans: Iterable[int]) -> str:
  spans = sorted(set(spans))
  return ('span ' if len(spans) == 1 else 'spans ') + ', '.join(str(s) for s in spans)


def group_leakage(current: Optional[GroupSplits],
                  earlier: Sequence[Tuple[int, Optional[GroupSplits]]],
                  has_train: bool) -> Tuple[SpanLeakage, List[balance.Finding]]:
  """This span's {group: split} vs each earlier span's ((span, GroupSplits or None), oldest
  first) -> the counts and the findings. ``has_train``: this span has a 'train' split (else
  only split changes are reported)."""
  if current is None or not current.groups:
    return SpanLeakage(False, 'no group column in this span (group_splits.json absent or '
                              'empty): leakage across spans not checked'), []
  base = dict(group_column=current.group_column, groups=len(current.groups),
              train_groups=sum(s == TRAIN for s in current.groups.values()))
  if not earlier:
    return SpanLeakage(False, 'no earlier span', **base), []
  findings = []
  compared, not_comparable, without = [], [], []
  leaked: Dict[str, set] = {}  # group -> earlier spans where it was not in train
  moved: Dict[str, List[Tuple[int, str, str]]] = {}  # group -> [(span, then, now)]
  for span, theirs in earlier:
    if theirs is None or not theirs.groups:
      without.append(span)
      continue
    other_salt = (theirs.salt_check and current.salt_check
                  and theirs.salt_check != current.salt_check)
    if theirs.group_column != current.group_column or other_salt:
      not_comparable.append((span, theirs.group_column))
      why = (f'its group hashes were made with another salt (option --group-salt), so no '
             f'hash of span {span} can match one of this span' if other_salt else
             f'span {span} was grouped by {theirs.group_column!r}, this span by '
             f'{current.group_column!r}')
      findings.append(balance.Finding(
          balance.SPAN_GROUPS_NOT_COMPARABLE, f'span {span}', '', '', None, '',
          len(theirs.groups), 0,
          f'{why}: their groups are not comparable, so leakage across spans was not checked '
          f'against span {span} (ingest every span with the same group column and salt: '
          'options --group-column, --group-salt)',
          severity=balance.WARNING))
      continue
    compared.append(span)
    for group, now in current.groups.items():
      then = theirs.groups.get(group)
      if then is None or then == now:
        continue
      if has_train and now == TRAIN and then != TRAIN:
        leaked.setdefault(group, set()).add(span)
      else:
        moved.setdefault(group, []).append((span, then, now))
  moved = {g: v for g, v in moved.items() if g not in leaked}
  leaked_spans = sorted(set().union(*leaked.values())) if leaked else []
  first = sorted(leaked)[:EXAMPLE_GROUPS]
  moves = [f'{g[:HASH_CHARS]}: {then} ({_spans([span])}) -> {now}'
           for g in sorted(moved)[:EXAMPLE_GROUPS] for span, then, now in moved[g][:1]]
  if leaked:
    n = len(leaked)
    findings.append(balance.Finding(
        balance.SPAN_LEAKAGE, f'split {TRAIN}', TRAIN, '', None, '', n, 0,
        f'leakage across spans: {n} group{"s" * (n != 1)} ({current.group_column}) in this '
        f'span\'s {TRAIN} split {"were" if n != 1 else "was"} in a non-train split of earlier '
        f'{_spans(leaked_spans)} (a model trained on this span learns patients it was '
        f'evaluated on before); first group hashes: '
        f'{", ".join(g[:HASH_CHARS] for g in first)}{", ..." if n > len(first) else ""}; '
        'ingest every span with a stable group assignment (option --group-assignment stable) '
        'and the same salt (option --group-salt)'))
  if moved:
    n = len(moved)
    findings.append(balance.Finding(
        balance.SPAN_SPLIT_CHANGE, 'dataset', '', '', None, '', n, 0,
        f'{n} group{"s" * (n != 1)} ({current.group_column}) changed split since earlier '
        f'{_spans(s for v in moved.values() for s, _, _ in v)} (not into {TRAIN}): '
        f'{"; ".join(moves)}{"; ..." if n > len(moves) else ""}',
        severity=balance.WARNING))
  note = (f'compared with {_spans(compared)}' if compared
          else 'no earlier span with comparable groups')
  if not has_train:
    note += f'; this span has no {TRAIN!r} split: only split changes are reported'
  return SpanLeakage(
      bool(compared), note, **base, spans_compared=tuple(compared),
      spans_not_comparable=tuple(not_comparable), spans_without_groups=tuple(without),
      into_train=len(leaked), into_train_spans=tuple(leaked_spans),
      into_train_examples=tuple(first), split_changed=len(moved),
      split_changed_examples=tuple(moves)), findings


# --- Images re-sent from an earlier span -------------------------------------------------------

RESENT_KEYS = (('image_id', str), ('line', int), ('class_name', str), ('split', str),
               ('first_span', int), ('sha256', str))  # of a listed image, and their types


@dataclasses.dataclass(frozen=True)
class ResentImages:
  """This span's images whose bytes an earlier span already had (the ingest summary's
  ``membership``); each went to the split it had there."""
  known: bool  # False: no summary, one from before frozen splits, or no earlier membership
  span: int = 0  # this span, as the summary says
  count: int = 0  # all of them
  listed: Tuple[Dict[str, object], ...] = ()  # the first ones ({image_id, line, ...})

  def to_dict(self) -> Dict[str, object]:
    return {'known': self.known, 'span': self.span, 'count': self.count,
            'listed': [dict(r) for r in self.listed]}


def _resent_entry(entry: Mapping[str, object]) -> Dict[str, object]:
  out = {}
  for key, kind in RESENT_KEYS:
    value = entry.get(key)
    out[key] = kind(value) if value is not None else kind()
  return out


def resent_images(summary: Optional[IngestSummary]
                  ) -> Tuple[ResentImages, List[balance.Finding]]:
  """The summary's ``membership`` (``{}`` or absent in older summaries; without
  ``resent_count`` when there was no earlier membership to keep) -> the counts and a WARNING
  when an image of this span was ingested in an earlier span."""
  membership = getattr(summary, 'membership', None) or {}
  span = int(membership.get('span') or 0)
  if 'resent_count' not in membership and 'resent' not in membership:
    return ResentImages(False, span), []
  listed = tuple(_resent_entry(r) for r in membership.get('resent') or [])
  count = max(int(membership.get('resent_count') or 0), len(listed))
  if not count:
    return ResentImages(True, span), []
  quoted = '; '.join(
      f'line {r["line"]} {r["image_id"]!r} ({escape_control(r["class_name"])}) first in span '
      f'{r["first_span"]}, split {escape_control(r["split"])}'
      for r in listed[:EXAMPLE_IMAGES])
  more = '; ...' if count > min(len(listed), EXAMPLE_IMAGES) else ''
  finding = balance.Finding(
      balance.RESENT_IMAGE, balance.DATASET, '', '', None, '', count, 0,
      f'{count} image{"s" * (count != 1)} of span {span} {"were" if count != 1 else "was"} '
      f'already ingested in an earlier span (same bytes); '
      f'{"each" if count != 1 else "it"} kept its earlier split'
      + (f': {quoted}{more}' if quoted else ''), severity=balance.WARNING)
  return ResentImages(True, span, count, listed), [finding]


# --- Everything -------------------------------------------------------------------------------

@dataclasses.dataclass
class DriftInputs:
  """What the executor read for the comparison (``executor.load_drift_inputs``)."""
  current_span: int = 0
  previous: List[SpanExamples] = dataclasses.field(default_factory=list)
  baseline_summary: Optional[IngestSummary] = None
  # The baseline's scan, {(split, shard, label): ClassStats}; None when there is no baseline.
  baseline_class_stats: Optional[Dict[Tuple[str, str, int], image_stats.ClassStats]] = None
  baseline_errors: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)
  current_groups: Optional[GroupSplits] = None
  earlier_groups: Dict[SpanExamples, Optional[GroupSplits]] = dataclasses.field(
      default_factory=dict)


@dataclasses.dataclass
class DriftResult:
  """This span vs the baseline span, and its groups vs earlier spans'."""
  current_span: int
  baseline: Optional[SpanExamples]
  earlier: List[SpanExamples]
  class_mix: Optional[ClassMix]
  stats: List[StatDrift]
  leakage: SpanLeakage
  findings: List[balance.Finding]
  notes: List[str]  # why something was not compared, baseline shards that did not read, ...
  ignored: List[SpanExamples] = dataclasses.field(default_factory=list)  # span >= this one
  # this span's images an earlier span already had (the ingest summary's membership)
  resent: ResentImages = dataclasses.field(default_factory=lambda: ResentImages(False))

  @classmethod
  def nothing(cls, current_span: int = 0) -> 'DriftResult':
    return cls(current_span, None, [], None, [], SpanLeakage(False, 'no earlier span'), [],
               [])

  @property
  def drifted(self) -> bool:
    """The class mix drifted beyond a threshold (the ERROR findings; ``fail_on_drift``)."""
    return self.class_mix is not None and self.class_mix.drifted

  @property
  def status(self) -> str:
    if self.baseline is None:
      return 'no earlier span'
    return f'compared with span {self.baseline.span} (version {self.baseline.version})'

  @property
  def path_step(self) -> str:
    """The anomalies' path step under class/image/mask: 'drift_from_span_<N>'."""
    return f'drift_from_span_{self.baseline.span if self.baseline else -1}'

  def to_dict(self, findings: Sequence[balance.Finding]) -> Dict[str, object]:
    """The JSON report's ``drift`` section; ``findings``: the drift findings as finalized."""
    return {'current_span': self.current_span, 'status': self.status,
            'baseline': self.baseline.to_dict() if self.baseline else None,
            'earlier_spans': [p.to_dict() for p in self.earlier],
            'ignored_previous': [p.to_dict() for p in self.ignored],
            'class_mix': self.class_mix.to_dict() if self.class_mix else None,
            'drifted': self.drifted,
            'image_stats': [s.to_dict() for s in self.stats],
            'group_leakage': self.leakage.to_dict(),
            'resent_images': self.resent.to_dict(),
            'notes': list(self.notes),
            'findings': [f.to_dict() for f in findings]}


def _summary_counts(summary: IngestSummary, names: Mapping[int, str]) -> Dict[str, int]:
  """All splits pooled, by the summary's own class names (every class, zeros too)."""
  own = {**names, **summary.class_names}
  out = {own[c]: 0 for c in sorted(own)}
  for totals in split_class_totals(summary).values():
    for c, n in totals.items():
      name = own.get(c, str(c))
      out[name] = out.get(name, 0) + n
  return out


def evaluate(inputs: DriftInputs, splits: Sequence[str], class_names: Mapping[int, str],
             whole: Mapping[int, int], summary: Optional[IngestSummary],
             class_stats: Mapping[Tuple[str, str, int], image_stats.ClassStats],
             config: BalanceConfig) -> DriftResult:
  """This span (its split statistics ``whole``, summary and scan) vs ``inputs``; the images
  the summary says an earlier span already had."""
  span = inputs.current_span
  earlier = earlier_spans(inputs.previous, span)
  ignored = [p for p in inputs.previous if p.span >= span]
  baseline = earlier[-1] if earlier else None
  notes = [f'ignored previous_examples of span {p.span} (version {p.version}, {p.uri}): not '
           f'before this span {span}' for p in ignored]
  mix, measured, findings = None, [], []
  if baseline is not None:
    base_stats = inputs.baseline_class_stats or {}
    if summary is not None and inputs.baseline_summary is not None:
      mix = class_mix(_summary_counts(summary, class_names),
                      _summary_counts(inputs.baseline_summary, class_names), config,
                      SOURCE_SUMMARIES)
    else:
      base_names = {**class_names, **(getattr(inputs.baseline_summary, 'class_names', {}))}
      counts = {base_names[c]: 0 for c in sorted(base_names)}
      for (_, _, label), acc in base_stats.items():
        if label in base_names:  # as ``whole``: the classes of the domain (no unknown label)
          counts[base_names[label]] += acc.records
      mix = class_mix({class_names.get(c, str(c)): n for c, n in whole.items()}, counts, config,
                      SOURCE_FILES)
    if mix is None:
      notes.append(f'class mix not compared: no records in this span or in span '
                   f'{baseline.span} ({baseline.uri})')
    for split, shard, message in inputs.baseline_errors:
      notes.append(f'span {baseline.span}: shard {split}/{shard} stopped reading ({message}); '
                   'its image statistics are partial')
    measured = stats_drift(pooled(class_stats.values()), pooled(base_stats.values()), config)
    findings += class_mix_findings(mix, span, baseline.span)
    findings += stats_findings(measured, span, baseline.span)
  leakage, leak_findings = group_leakage(
      inputs.current_groups, [(p.span, inputs.earlier_groups.get(p)) for p in earlier],
      TRAIN in splits)
  resent, resent_findings = resent_images(summary)
  return DriftResult(span, baseline, earlier, mix, measured, leakage,
                     findings + leak_findings + resent_findings, notes, ignored, resent)
