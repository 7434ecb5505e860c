"""Drift between spans and group leakage across spans, as pure functions (drift.py): the
measures' properties, the baseline rule, class-mix and image/mask findings, the leakage check,
and the new options' validation."""
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components.class_balance import balance
from components.class_balance import drift
from components.class_balance import image_stats
from components.class_balance.config import BalanceConfig
from components.class_balance.config import ConfigError

counts = st.dictionaries(st.sampled_from(['COVID', 'Normal', 'Viral', 'Opacity', 'Other']),
                         st.integers(0, 500), min_size=1).filter(lambda c: sum(c.values()) > 0)


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_linf_and_js_are_symmetric_bounded_and_zero_on_identical_mixes(a, b):
  linf_ab, _ = drift.linf_by_key(a, b)
  linf_ba, _ = drift.linf_by_key(b, a)
  assert linf_ab == pytest.approx(linf_ba) and 0 <= linf_ab <= 1
  js_ab, js_ba = drift.js_by_key(a, b), drift.js_by_key(b, a)
  assert js_ab == pytest.approx(js_ba, abs=1e-12) and 0 <= js_ab <= 1 + 1e-12
  assert drift.linf_by_key(a, a)[0] == 0 and drift.js_by_key(a, a) == pytest.approx(0, abs=1e-12)
  scaled = {k: 3 * n for k, n in a.items()}  # proportions, not counts
  assert drift.linf_by_key(a, scaled)[0] == pytest.approx(0, abs=1e-12)
  mix = drift.class_mix(a, b, BalanceConfig(), drift.SOURCE_SUMMARIES)
  assert (mix.linf, mix.js) == (pytest.approx(linf_ab), pytest.approx(js_ab))
  assert set(mix.current) == set(mix.baseline) == set(a) | set(b)  # matched by class name


def test_the_measures_are_balances_on_the_same_numbers():
  now, then = {'a': 10, 'b': 30, 'c': 5}, {'b': 300, 'a': 100, 'd': 250}
  keys = ['a', 'b', 'c', 'd']
  p = balance.distribution({i: now.get(k, 0) for i, k in enumerate(keys)}, range(4))
  q = balance.distribution({i: then.get(k, 0) for i, k in enumerate(keys)}, range(4))
  value, worst = drift.linf_by_key(now, then)
  assert (value, worst) == (pytest.approx(balance.linf(p, q)[0]), 'd')  # d: 0% -> 38.5%
  assert drift.js_by_key(now, then) == pytest.approx(balance.js_divergence(p, q))
  assert drift.js_by_key({'x': 1}, {'y': 1}) == pytest.approx(1.0)  # disjoint: 1 bit


def test_the_baseline_is_the_newest_earlier_span():
  s = drift.SpanExamples
  previous = [s('/a', 1, 0, 7), s('/b', 3, 0, 5), s('/c', 3, 2, 4), s('/d', 3, 2, 9),
              s('/e', 5, 0, 1), s('/f', 2, 9, 99)]
  assert drift.pick_baseline(previous, 4) == s('/d', 3, 2, 9)  # span, version, then id
  assert drift.pick_baseline(previous, 1) is None
  assert [p.uri for p in drift.earlier_spans(previous, 4)] == ['/a', '/f', '/b', '/c', '/d']
  assert drift.pick_baseline([], 0) is None
  assert s.of(('/x', 2)) == s('/x', 2, 0, 0)
  assert s.of(('/x', 2, 1, 8)) == s('/x', 2, 1, 8)
  assert s.of({'uri': '/x', 'span': 2, 'version': 1, 'id': 8}) == s('/x', 2, 1, 8)


def test_class_mix_findings_are_errors_naming_class_measure_and_option():
  config = BalanceConfig()
  small = drift.class_mix({'A': 11, 'B': 10, 'C': 9}, {'A': 10, 'B': 10, 'C': 10}, config,
                          drift.SOURCE_SUMMARIES)
  assert not small.drifted and drift.class_mix_findings(small, 2, 1) == []
  big = drift.class_mix({'A': 70, 'B': 20, 'C': 10}, {'A': 10, 'B': 10, 'C': 10}, config,
                        drift.SOURCE_SUMMARIES)
  findings = drift.class_mix_findings(big, 3, 2)
  assert [(f.check, f.severity, f.kind, f.class_name) for f in findings] == [
      (balance.DRIFT_LINF, 'error', 'drift', 'A'), (balance.DRIFT_JS, 'error', 'drift', 'A')]
  assert findings[0].message == (
      "class mix vs span 2: class 'A' is 70.0% of this span's 100 records vs 33.3% of 30 in "
      'span 2; L-infinity 0.3667 > 0.1 (max_drift_linf; option --max-drift-linf)')
  assert findings[1].message.endswith('> 0.02 (max_drift_js; option --max-drift-js)')
  assert drift.class_mix({'A': 0}, {'A': 3}, config, '') is None  # an empty span


def _stats(records, size='24x24', mode='png L 8-bit', masks=0, coverages=()):
  acc = image_stats.ClassStats()
  for i in range(records):
    mask = '24x24' if i < masks else ''
    coverage = coverages[i] if mask and i < len(coverages) else image_stats.NOT_SAMPLED
    acc.add(image_stats.RecordFacts(size, mode, mask, False, coverage), 0.95)
  return acc


def test_image_and_mask_statistics_drift_are_warnings():
  config = BalanceConfig()
  same = drift.stats_drift(_stats(40, masks=20, coverages=[0.3] * 20),
                           _stats(40, masks=20, coverages=[0.3] * 20), config)
  assert [(s.name, s.value) for s in same] == [
      ('image sizes', 0), ('image modes', 0), ('mask presence', 0), ('mask coverage', 0)]
  assert drift.stats_findings(same, 2, 1) == []
  now = drift.pooled([_stats(20, '32x32', masks=2, coverages=[0.9, 0.9]),
                      _stats(20, mode='png RGB 8-bit')])
  moved = drift.stats_drift(now, _stats(40, masks=20, coverages=[0.3] * 20), config)
  by_name = {s.name: s for s in moved}
  assert by_name['image sizes'].value == pytest.approx(0.5)
  assert by_name['image sizes'].worst in ('24x24', '32x32')
  assert by_name['mask presence'].value == pytest.approx(0.5 - 0.05)
  assert by_name['mask coverage'].value == pytest.approx(1.0)  # bins 0.3 vs 0.9: disjoint
  findings = drift.stats_findings(moved, 3, 2)
  assert {f.check for f in findings} == {
      balance.IMAGE_SIZE_DRIFT, balance.IMAGE_MODE_DRIFT, balance.MASK_PRESENCE_SPAN_DRIFT,
      balance.MASK_COVERAGE_DRIFT}
  assert {f.severity for f in findings} == {'warning'} and {f.kind for f in findings} == {
      'drift'}
  presence = next(f for f in findings if f.check == balance.MASK_PRESENCE_SPAN_DRIFT)
  assert presence.message == (
      "mask presence vs span 2: 5.0% of this span's records have a mask vs 50.0% in span 2; "
      'difference 0.450 > 0.1 (max_drift_linf; option --max-drift-linf)')
  # No mask decoded on one side: coverage is not compared (and says so), not a finding.
  unmasked = drift.stats_drift(_stats(10), _stats(10, masks=5, coverages=[0.5] * 5), config)
  coverage = next(s for s in unmasked if s.name == 'mask coverage')
  assert coverage.value is None and coverage.ok and 'no mask decoded' in coverage.note


def _groups(column, **groups):
  return drift.GroupSplits(column, groups)


def test_groups_moving_into_train_leak_across_spans():
  now = _groups('patient', g1='train', g2='train', g3='test', g4='train', g5='eval', g9='train')
  span1 = _groups('patient', g1='eval', g2='test', g3='train', g4='train', g6='test')
  span2 = _groups('patient', g1='train', g5='test')
  leak, findings = drift.group_leakage(now, [(1, span1), (2, span2)], has_train=True)
  assert (leak.into_train, leak.into_train_spans, leak.into_train_examples) == (
      2, (1,), ('g1', 'g2'))
  assert leak.split_changed == 2  # g3 train -> test, g5 test -> eval: warnings
  assert (leak.groups, leak.train_groups, leak.spans_compared) == (6, 4, (1, 2))
  by_check = {f.check: f for f in findings}
  error = by_check[balance.SPAN_LEAKAGE]
  assert (error.severity, error.kind, error.split, error.value) == ('error', 'leakage', 'train',
                                                                    2)
  assert error.message.startswith(
      "leakage across spans: 2 groups (patient) in this span's train split were in a non-train "
      'split of earlier span 1 ')
  assert 'first group hashes: g1, g2;' in error.message
  assert '--group-assignment stable' in error.message
  warning = by_check[balance.SPAN_SPLIT_CHANGE]
  assert warning.severity == 'warning' and 'g3: train (span 1) -> test' in warning.message
  assert 'g5: test (span 2) -> eval' in warning.message


def test_leakage_check_needs_comparable_groups_and_a_train_split():
  now = _groups('patient', g1='train')
  leak, findings = drift.group_leakage(now, [(1, _groups('study', g1='test')), (2, None),
                                             (3, _groups('', ))], has_train=True)
  assert not leak.checked and leak.into_train == 0
  assert leak.spans_not_comparable == ((1, 'study'),) and leak.spans_without_groups == (2, 3)
  [f] = findings
  assert (f.check, f.severity) == (balance.SPAN_GROUPS_NOT_COMPARABLE, 'warning')
  assert "span 1 was grouped by 'study', this span by 'patient'" in f.message
  # Without a train split, a group moving from test is a split change, not leakage.
  leak, findings = drift.group_leakage(_groups('patient', g1='a'),
                                       [(1, _groups('patient', g1='test'))], has_train=False)
  assert (leak.into_train, leak.split_changed) == (0, 1)
  assert [f.check for f in findings] == [balance.SPAN_SPLIT_CHANGE]
  assert "no 'train' split" in leak.note
  # No group column in this span, or no earlier span: nothing checked, nothing found.
  assert drift.group_leakage(None, [(1, now)], True) == (drift.group_leakage(
      _groups('', ), [(1, now)], True)[0], [])
  assert drift.group_leakage(now, [], True)[0].note == 'no earlier span'


def test_group_hashes_under_another_salt_are_not_compared():
  """Issue #29 defect 4: span 2 ingested with another --group-salt moved patients into train,
  and the report said checked, 0 into train: hashes under different salts never match. Now
  those spans are not comparable (a warning naming --group-salt) and nothing claims a check."""
  now = drift.GroupSplits('patient', {'h2': 'train'}, salt_check='b' * 16)
  before = drift.GroupSplits('patient', {'h1': 'test'}, salt_check='a' * 16)
  leak, [finding] = drift.group_leakage(now, [(1, before)], has_train=True)
  assert not leak.checked and leak.spans_not_comparable == ((1, 'patient'),)
  assert leak.to_dict()['checked'] is False
  assert (finding.check, finding.severity) == (balance.SPAN_GROUPS_NOT_COMPARABLE, 'warning')
  assert 'another salt (option --group-salt)' in finding.message
  # Files written before the salt was recorded ('' check) compare as they always did.
  old = drift.GroupSplits('patient', {'h2': 'test'})
  leak, _ = drift.group_leakage(now, [(1, old)], has_train=True)
  assert leak.checked and leak.into_train == 1
  same = drift.GroupSplits('patient', {'h2': 'test'}, salt_check='b' * 16)
  assert drift.group_leakage(now, [(1, same)], has_train=True)[0].into_train == 1


def test_many_leaked_groups_are_counted_and_only_a_few_quoted():
  now = drift.GroupSplits('patient', {f'{i:064x}': 'train' for i in range(40)})
  then = drift.GroupSplits('patient', {f'{i:064x}': 'test' for i in range(40)})
  leak, [f] = drift.group_leakage(now, [(0, then)], True)
  assert leak.into_train == 40 and len(leak.into_train_examples) == drift.EXAMPLE_GROUPS
  assert f.message.count('0000000') == drift.EXAMPLE_GROUPS and ', ...;' in f.message


def test_evaluate_without_an_earlier_span_finds_nothing():
  result = drift.evaluate(drift.DriftInputs(current_span=4), ['train'], {0: 'A'}, {0: 3}, None,
                          {}, BalanceConfig())
  assert (result.baseline, result.class_mix, result.findings, result.status) == (
      None, None, [], 'no earlier span')
  # A previous artifact of this span or a later one is ignored, and the report says so.
  later = drift.SpanExamples('/later', 4, 1, 3)
  result = drift.evaluate(drift.DriftInputs(current_span=4, previous=[later]), ['train'],
                          {0: 'A'}, {0: 3}, None, {}, BalanceConfig())
  assert result.baseline is None and result.ignored == [later]
  assert 'ignored previous_examples of span 4' in result.notes[0]
  assert result.to_dict([])['baseline'] is None


def test_drift_options_are_validated_and_name_the_option():
  config = BalanceConfig()
  assert (config.max_drift_linf, config.max_drift_js, config.fail_on_drift) == (0.1, 0.02, False)
  for values, flag in (({'max_drift_linf': 1.5}, '--max-drift-linf'),
                       ({'max_drift_js': -0.1}, '--max-drift-js'),
                       ({'fail_on_drift': 1}, '--fail-on-drift')):
    with pytest.raises(ConfigError, match=flag):
      BalanceConfig(**values)
  assert BalanceConfig(max_drift_js=0).max_drift_js == 0.0
