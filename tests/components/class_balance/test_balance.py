"""Balance checks as pure functions: measures, rounding allowance (no false alarms), findings."""
import math

from hypothesis import given, settings, strategies as st
import pytest

from components.class_balance import balance
from components.class_balance.config import BalanceConfig, ConfigError
from components.image_example_gen.assignment import class_quotas

NAMES = {0: 'COVID', 1: 'Normal', 2: 'Viral Pneumonia', 3: 'Lung_Opacity'}
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
  # The number TFDV 1.16 printed for these counts (checked against TFDV in test_report.py).
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
  findings = balance.balance_findings(measured, whole, NAMES, BalanceConfig())
  assert {(f.check, f.scope, f.class_name) for f in findings} == {
      (balance.LINF, 'shard train/f1', 'COVID'), (balance.JS, 'shard train/f1', 'COVID')}
  linf_finding = next(f for f in findings if f.check == balance.LINF)
  assert linf_finding.value == pytest.approx(0.15)
  assert "class 'COVID' is 5.0% of 200 records vs 20.0% overall" in linf_finding.message
  assert balance.verdict(findings) == 'NOT balanced (2 balance findings)'


def test_missing_class_in_a_split_and_min_count():
  whole = {0: 50, 1: 50, 2: 2}
  split_counts = {'train': {0: 40, 1: 40, 2: 2}, 'test': {0: 10, 1: 10}}
  measured = [balance.measure(u, whole, BalanceConfig(max_linf=1, max_js=1))
              for u in balance.units(split_counts, {})]
  findings = balance.balance_findings(measured, whole, NAMES, BalanceConfig(max_linf=1, max_js=1))
  assert [(f.check, f.split, f.class_name, f.value) for f in findings] == [
      (balance.MIN_COUNT, 'test', 'Viral Pneumonia', 0)]
  five = BalanceConfig(max_linf=1, max_js=1, min_count_per_class=5)
  assert [(f.split, f.value) for f in balance.balance_findings(measured, whole, NAMES, five)] == [
      ("train", 2), ("test", 0)]


def test_imbalance_ratio_and_whole_counts():
  assert balance.imbalance_ratio({0: 3616, 1: 10192, 2: 1345, 3: 6012}) == pytest.approx(
      10192 / 1345)
  assert balance.imbalance_ratio({0: 5, 1: 0}) == float('inf')
  assert balance.whole_counts({'a': {0: 1}, 'b': {0: 2, 1: 3}}, range(3)) == {0: 3, 1: 3, 2: 0}


def test_count_mismatch_between_statistics_and_files():
  findings = balance.count_findings({'train': {0: 5, 1: 5}},
                                    {'train': [('f0', {0: 3, 1: 5}), ('f1', {0: 1})]}, NAMES)
  assert [(f.check, f.class_name, f.value, f.threshold) for f in findings] == [
      (balance.COUNT_MISMATCH, 'COVID', 4, 5)]


def test_duplicates_across_splits_are_leakage_not_imbalance():
  dups = balance.cross_split_duplicates({
      'aa': [('train', 'x.png'), ('test', 'y.png')],
      'bb': [('train', 'p.png'), ('train', 'q.png')],  # within one split: not leakage
  })
  assert dups == [{'image_sha256': 'aa', 'splits': ['test', 'train'],
                   'image_ids': ['x.png', 'y.png']}]
  findings = balance.duplicate_findings(dups)
  assert findings[0].kind == balance.KIND_LEAKAGE
  assert balance.verdict(findings) == 'balanced (1 leakage finding)'


def test_config_errors_name_the_option():
  with pytest.raises(ConfigError, match='--max-linf'):
    BalanceConfig(max_linf=1.5)
  with pytest.raises(ConfigError, match='--min-count-per-class'):
    BalanceConfig(min_count_per_class=-1)
  with pytest.raises(ConfigError, match='--fail-on-imbalance'):
    BalanceConfig(fail_on_imbalance='yes')
  assert BalanceConfig(max_js=0).max_js == 0.0


def test_allowance_shrinks_with_unit_size():
  whole = {0: 3616, 1: 10192, 2: 1345, 3: 6012}
  small, large = balance.granularity_allowance(200, whole), balance.granularity_allowance(2000, whole)
  assert small[0] == pytest.approx(0.01) and large[0] == pytest.approx(0.001)
  assert large[1] == pytest.approx(small[1] / 100)
