"""ClassBalance's checks as pure functions: measures, rounding allowance (no false alarms), the two
verdicts, class weights, integrity, leakage and mask findings."""
import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components.class_balance import balance
from components.class_balance.config import BalanceConfig
from components.class_balance.config import ConfigError
from components.image_example_gen.assignment import class_quotas

NAMES = {0: 'COVID', 1: 'Normal', 2: 'Viral Pneumonia', 3: 'Lung_Opacity'}
REAL = {0: 3616, 1: 10192, 2: 1345, 3: 6012}  # the COVID-19 Radiography Database
STRICT = BalanceConfig(max_linf=0.0, max_js=0.0)


def _kl(a, b):
  return sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)


def test_measures_follow_their_definitions():
  p = balance.distribution({0: 10, 1: 30, 2: 5, 3: 20}, range(4))
  q = balance.distribution({0: 100, 1: 300, 2: 50, 3: 250}, range(4))
  value, worst = balance.linf(p, q)
  assert value == pytest.approx(250 / 700 - 20 / 65) and worst == 3
  m = [(p[c] + q[c]) / 2 for c in range(4)]
  expected = (_kl([p[c] for c in range(4)], m) + _kl([q[c] for c in range(4)], m)) / 2
  assert balance.js_divergence(p, q) == pytest.approx(expected)
  # TFDV's number for these counts (test_executor checks more units against TFDV itself).
  assert balance.js_divergence(p, q) == pytest.approx(0.001988560296407982)
  assert balance.js_divergence(p, p) == 0.0
  assert balance.js_divergence({0: 1.0, 1: 0.0}, {0: 0.0, 1: 1.0}) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=2, max_size=6).filter(lambda c: sum(c) >= 20),
       st.integers(1, 20), st.integers(0, 2**31))
def test_floor_ceil_dealing_never_raises_a_false_alarm(class_totals, num_shards, seed):
  """Every shard ImageExampleGen can deal (floor/ceil per class) passes even at threshold 0."""
  whole = dict(enumerate(class_totals))
  if sum(whole.values()) < num_shards:
    return
  for quota in class_quotas(whole, num_shards, seed):
    unit = balance.Unit(balance.SHARD, 'train', 'x', quota)
    if unit.size == 0:
      continue
    m = balance.measure(unit, whole, STRICT)
    assert m.ok, (quota, m)


def test_a_skewed_shard_is_found_with_split_shard_class_and_measure():
  whole = {0: 400, 1: 1000, 2: 100, 3: 500}
  fair = {0: 40, 1: 100, 2: 10, 3: 50}
  skewed = {0: 10, 1: 130, 2: 10, 3: 50}  # COVID moved to Normal
  units = balance.units({'train': whole}, {'train': [('f0', fair), ('f1', skewed)]})
  measured = [balance.measure(u, whole, BalanceConfig()) for u in units]
  findings = balance.stratification_findings(measured, whole, NAMES, BalanceConfig())
  assert {(f.check, f.scope, f.class_name, f.severity, f.kind) for f in findings} == {
      (balance.LINF, 'shard train/f1', 'COVID', 'error', 'stratification'),
      (balance.JS, 'shard train/f1', 'COVID', 'error', 'stratification')}
  linf_finding = next(f for f in findings if f.check == balance.LINF)
  assert linf_finding.value == pytest.approx(0.15)
  assert "class 'COVID' is 5.0% of 200 records vs 20.0% overall" in linf_finding.message
  assert balance.stratification_verdict(findings) == (False, 'NOT stratified (2 findings)')
  assert balance.stratification_verdict([]) == (True, 'stratified')


def test_missing_class_in_a_split_and_min_count():
  whole = {0: 50, 1: 50, 2: 2}
  split_counts = {'train': {0: 40, 1: 40, 2: 2}, 'test': {0: 10, 1: 10}}
  loose = BalanceConfig(max_linf=1, max_js=1)
  measured = [balance.measure(u, whole, loose) for u in balance.units(split_counts, {})]
  findings = balance.stratification_findings(measured, whole, NAMES, loose)
  assert [(f.check, f.split, f.class_name, f.value) for f in findings] == [
      (balance.MIN_COUNT, 'test', 'Viral Pneumonia', 0)]
  five = BalanceConfig(max_linf=1, max_js=1, min_count_per_class=5)
  assert [(f.split, f.value) for f in balance.stratification_findings(
      measured, whole, NAMES, five)] == [('train', 2), ('test', 0)]


def test_class_imbalance_is_its_own_verdict_and_a_warning():
  real = balance.class_imbalance(REAL, BalanceConfig())
  assert real.ratio == pytest.approx(10192 / 1345) and not real.ok
  assert (real.largest, real.smallest) == (1, 2)
  assert real.smallest_share == pytest.approx(1345 / 21165)
  [finding] = balance.imbalance_findings(real, NAMES)
  assert (finding.kind, finding.severity, finding.class_name) == ('imbalance', 'warning',
                                                                  'Viral Pneumonia')
  assert finding.message.startswith("dataset: classes imbalanced 7.58:1 (largest 'Normal' 10192 "
                                    "examples, smallest 'Viral Pneumonia' 1345 = 6.4%) > "
                                    'max_class_ratio 3:1')
  assert balance.class_balance_verdict(real, NAMES) == (
      "classes imbalanced (7.58:1, smallest 'Viral Pneumonia' 6.4%; use the class weights)")
  # The threshold is configurable; a stratified dataset can be either.
  loose = balance.class_imbalance(REAL, BalanceConfig(max_class_ratio=8))
  assert loose.ok and not balance.imbalance_findings(loose, NAMES)
  assert balance.class_balance_verdict(loose, NAMES) == 'classes balanced (7.58:1 <= 8:1)'
  empty = balance.class_imbalance({0: 5, 1: 0}, BalanceConfig())
  assert empty.ratio == float('inf') and not empty.ok
  assert balance.class_balance_verdict(empty, {0: 'a', 1: 'b'}) == (
      "classes imbalanced (class 'b' has no examples)")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=2, max_size=12).filter(lambda c: sum(c) > 0))
def test_class_weights_are_inverse_frequency_with_weighted_mean_one(counts):
  counts = dict(enumerate(counts))
  weights = balance.class_weights(counts, counts)
  assert sorted(weights) == sorted(counts)
  total = sum(counts.values())
  assert sum(weights[c] * n for c, n in counts.items()) / total == pytest.approx(1, abs=1e-5)
  present = [c for c, n in counts.items() if n]
  for a in present:
    assert weights[a] * counts[a] == pytest.approx(weights[present[0]] * counts[present[0]],
                                                   rel=1e-5)  # each class weighs the same
  assert all(weights[c] == 0.0 for c, n in counts.items() if not n)


def test_class_weights_of_the_real_dataset_and_the_weights_split():
  weights = balance.class_weights(REAL, REAL)
  assert weights[2] == pytest.approx(21165 / (4 * 1345), rel=1e-6)
  assert balance.weights_split(['s0', 'train', 'test']) == 'train'
  assert balance.weights_split(['s0', 's1']) == 's0'


def test_integrity_checks():
  findings = balance.count_findings({'train': {0: 5, 1: 5}},
                                    {'train': [('f0', {0: 3, 1: 5}), ('f1', {0: 1})]}, NAMES)
  assert [(f.check, f.class_name, f.value, f.threshold, f.severity) for f in findings] == [
      (balance.COUNT_MISMATCH, 'COVID', 4, 5, 'error')]
  [record] = balance.record_count_findings({('train', 'f0'): 9, ('train', 'f1'): 10},
                                           {('train', 'f0'): 10, ('train', 'f1'): 10})
  assert record.message == ('shard train/f0: 9 records read, but ImageExampleGen wrote 10 '
                            '(ingest summary)')
  [unknown] = balance.unknown_label_findings({'train': {0: 3, 4: 2}}, NAMES)
  assert unknown.label == 4 and 'label 4, which the schema\'s class domain (0..3)' in unknown.message
  assert not balance.class_names_findings(NAMES, dict(NAMES))
  [names] = balance.class_names_findings(NAMES, {**NAMES, 2: 'Pneumonia'})
  assert "label 2: 'Pneumonia' when ingested, 'Viral Pneumonia' in the schema" in names.message


def test_duplicates_across_splits_are_leakage_errors():
  dups = balance.cross_split_duplicates({
      'aa': [('train', 'x.png'), ('test', 'y.png')],
      'bb': [('train', 'p.png'), ('train', 'q.png')],  # within one split: not leakage
  })
  assert dups == [{'image_sha256': 'aa', 'splits': ['test', 'train'],
                   'image_ids': ['x.png', 'y.png']}]
  [finding] = balance.duplicate_findings(dups)
  assert (finding.kind, finding.severity, finding.split) == ('leakage', 'error', 'test/train')


def test_mask_checks_from_the_ingest_summary_are_warnings_per_split():
  checks = {'train': {'COVID': {'masks': 10, 'empty': 2, 'size_mismatch': 10, 'not_binary': 1},
                      'Normal': {'masks': 5, 'size_mismatch': 5}},
            'test': {'COVID': {'masks': 4, 'empty': 1}}}
  findings = balance.mask_check_findings(checks, '')
  assert [(f.check, f.split, f.value, f.severity) for f in findings] == [
      (balance.MASK_SIZE_MISMATCH, 'train', 15, 'warning'),
      (balance.MASK_NOT_BINARY, 'train', 1, 'warning')]  # empty masks: report only
  assert findings[0].message.startswith('split train: 15 of 15 masks differ in size from their '
                                        'image; if every mask has one size by design, declare it')
  assert findings[0].message.endswith("'COVID' 10, 'Normal' 5")
  declared = balance.mask_check_findings(checks, '256x256')[0]
  assert '(nor the declared mask size 256x256)' in declared.message


def test_mask_presence_drift_allows_for_sampling():
  config = BalanceConfig()
  # 90% masked overall; a 20-record split at 80% is within 0.05 + 3 sigma, one at 0% is not.
  findings = balance.mask_presence_findings(
      {'train': (900, 1000), 'eval': (16, 20), 'test': (0, 20)}, config)
  assert [(f.check, f.split) for f in findings] == [(balance.MASK_PRESENCE_DRIFT, 'test')]
  rate = 916 / 1040
  assert findings[0].threshold == pytest.approx(0.05 + 3 * math.sqrt(rate * (1 - rate) / 20))
  assert not balance.mask_presence_findings({'a': (50, 100), 'b': (50, 100)}, config)


def test_warnings_as_errors_and_the_order_of_findings():
  warning = balance.imbalance_findings(balance.class_imbalance(REAL, BalanceConfig()), NAMES)
  error = balance.duplicate_findings([{'image_sha256': 'a', 'splits': ['a', 'b'],
                                       'image_ids': ['1', '2']}])
  ordered = balance.finalize(warning + error, BalanceConfig())
  assert [f.severity for f in ordered] == ['error', 'warning']
  strict = balance.finalize(warning + error, BalanceConfig(warnings_as_errors=True))
  assert [f.severity for f in strict] == ['error', 'error']


def test_one_line_verdict_lists_the_other_kinds():
  dup = balance.duplicate_findings([{'image_sha256': 'a', 'splits': ['a', 'b'],
                                     'image_ids': ['1', '2']}])
  masks = balance.mask_check_findings({'t': {'c': {'masks': 1, 'size_mismatch': 1}},
                                       'u': {'c': {'masks': 1, 'size_mismatch': 1}}}, '')
  assert balance.verdict('stratified', 'classes balanced (1.00:1 <= 3:1)', dup + masks) == (
      'stratified; classes balanced (1.00:1 <= 3:1); 1 leakage error, 2 mask warnings')


@pytest.mark.parametrize('values, flag', [
    ({'max_linf': 1.5}, '--max-linf'), ({'min_count_per_class': -1}, '--min-count-per-class'),
    ({'fail_on_imbalance': 'yes'}, '--fail-on-imbalance'),
    ({'max_class_ratio': 0.5}, '--max-class-ratio'),
    ({'max_mask_presence_gap': 2}, '--max-mask-presence-gap'),
    ({'coverage_sample': -3}, '--coverage-sample'),
    ({'warnings_as_errors': 1}, '--warnings-as-errors'),
])
def test_config_errors_name_the_option(values, flag):
  with pytest.raises(ConfigError, match=flag):
    BalanceConfig(**values)


def test_config_numbers_are_floats():
  assert BalanceConfig(max_js=0).max_js == 0.0
  assert BalanceConfig(max_class_ratio=5).max_class_ratio == 5.0


def test_allowance_shrinks_with_unit_size():
  small, large = balance.granularity_allowance(200, REAL), balance.granularity_allowance(2000, REAL)
  assert small[0] == pytest.approx(0.01) and large[0] == pytest.approx(0.001)
  assert large[1] == pytest.approx(small[1] / 100)
