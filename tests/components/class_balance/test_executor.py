"""ClassBalance on tiny real shard files with real TFDV statistics and real Beam: the two
verdicts, what ImageExampleGen's summary adds, TFDV-format anomalies equal to TFDV's own
numbers, the class weights property, and the fail policy."""
import dataclasses
import json
import os
import shutil

import pytest

from tests.components.class_balance.conftest import LAYOUT
from tests.components.class_balance.conftest import MAPPING
from tests.components.class_balance.conftest import run_balance
from tests.components.class_balance.conftest import SKEWED
from tests.components.class_balance.conftest import SPLITS


def test_only_the_skewed_shard_fails_stratification_and_says_where(balance_run):
  from components.class_balance import balance
  res, _ = balance_run
  strat = res.stratification_findings
  assert {(f.check, f.scope, f.class_name) for f in strat} == {
      (balance.LINF, SKEWED, 'COVID'), (balance.JS, SKEWED, 'COVID')}
  ok_units = {m.unit.name for m in res.measurements if m.ok}
  assert {'split eval', 'split test', 'shard train/data_tfrecord-00000-of-00003.gz',
          'shard train/data_tfrecord-00001-of-00003.gz'} <= ok_units
  assert res.whole_counts == {0: 32, 1: 20, 2: 24, 3: 24}
  assert (res.stratified, res.stratification_verdict) == (False, 'NOT stratified (2 findings)')
  # The dataset's own imbalance is a separate verdict: 32:20 is under max_class_ratio 3.
  assert res.imbalance.ok and res.class_balance_verdict == 'classes balanced (1.60:1 <= 3:1)'
  assert res.verdict.startswith('NOT stratified (2 findings); classes balanced (1.60:1 <= 3:1); ')


def test_integrity_leakage_and_mask_findings_without_a_summary(balance_run):
  import hashlib

  from components.class_balance import balance
  from tests.components.class_balance.conftest import png
  res, _ = balance_run
  by_check = {}
  for f in res.findings:
    by_check.setdefault(f.check, []).append(f)
  # The job grouped the records' image_sha256 itself (no ingest summary to read it from).
  assert res.duplicates_across_splits == [{
      'image_sha256': hashlib.sha256(png(1)).hexdigest(), 'splits': ['test', 'train'],
      'image_ids': ['test/img81.png', 'train/img1.png']}]
  assert [f.severity for f in by_check[balance.DUPLICATE_ACROSS_SPLITS]] == ['error']
  # A label the schema does not know is a finding, not a crash (issue 13's KeyError: 4).
  [unknown] = by_check[balance.UNKNOWN_LABEL]
  assert (unknown.split, unknown.label, unknown.value) == ('test', 7, 1)
  # Masks, from the headers: eval's masks are 16x16 for 24x24 images; test has none.
  [size] = by_check[balance.MASK_SIZE_MISMATCH]
  assert (size.split, size.value, size.severity) == ('eval', 20, 'warning')
  assert sorted(f.split for f in by_check[balance.MASK_PRESENCE_DRIFT]) == ['eval', 'test']
  assert balance.RECORD_COUNT_MISMATCH not in by_check  # nothing to compare with
  assert [f.severity for f in res.findings] == sorted(
      (f.severity for f in res.findings), key=lambda s: s != 'error')  # errors first
  stats = res.image_statistics
  assert stats['all']['COVID']['image_sizes'] == {'24x24': 32}
  assert stats['eval']['Normal']['mask_sizes'] == {'16x16': 5}
  assert stats['test']['7']['examples'] == 1


def test_class_weights_come_from_train_and_are_a_property(balance_run):
  from tfx.types import standard_artifacts

  from components.class_balance import executor
  from components.class_balance import spec
  res, paths = balance_run
  train = {0: 22, 1: 10, 2: 14, 3: 14}
  assert res.weights_split == 'train'
  assert res.class_weights == pytest.approx({c: 60 / (4 * n) for c, n in train.items()})
  artifact = standard_artifacts.ExampleAnomalies()
  executor.set_properties(artifact, res, paths)
  weights = json.loads(artifact.get_string_custom_property(spec.CLASS_WEIGHTS_PROPERTY))
  assert sorted(weights) == ['0', '1', '2', '3']  # {"<label>": weight}, what a Trainer reads
  assert sum(weights[str(c)] * n for c, n in train.items()) / 60 == pytest.approx(1, abs=1e-5)
  assert artifact.get_int_custom_property(spec.STRATIFIED_PROPERTY) == 0
  assert artifact.get_int_custom_property(spec.CLASSES_BALANCED_PROPERTY) == 1
  assert artifact.get_string_custom_property(spec.VERDICT_PROPERTY) == res.verdict
  assert artifact.get_int_custom_property(spec.ERRORS_PROPERTY) == len(res.errors)
  assert artifact.get_int_custom_property(spec.WARNINGS_PROPERTY) == len(res.warnings) > 0
  with open(paths['json']) as f:
    report = json.load(f)
  assert report['class_weights']['by_label'] == weights
  assert report['class_weights']['by_class']['Normal'] == weights['1']
  assert report['stratification'] == {'stratified': False,
                                      'verdict': 'NOT stratified (2 findings)'}
  assert report['class_balance']['smallest'] == {'label': 1, 'class': 'Normal',
                                                 'examples': 20, 'share': 0.2}


def _tfdv_measures(counts, whole, schema):
  """TFDV's own drift comparator on class-only statistics: (L-infinity, JS)."""
  import tensorflow_data_validation as tfdv
  from tensorflow_metadata.proto.v0 import schema_pb2
  from tensorflow_metadata.proto.v0 import statistics_pb2

  def stats(c):
    out = statistics_pb2.DatasetFeatureStatisticsList()
    feature = out.datasets.add(num_examples=sum(c.values())).features.add(
        type=statistics_pb2.FeatureNameStatistics.INT)
    feature.path.step.append('class')
    feature.string_stats.common_stats.num_non_missing = sum(c.values())
    ranked = sorted(((n, k) for k, n in c.items() if n), key=lambda x: (-x[0], x[1]))
    for rank, (n, k) in enumerate(ranked):
      feature.string_stats.top_values.add(value=str(k), frequency=n)
      feature.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank,
                                                      label=str(k), sample_count=n)
    return out

  comparator = schema_pb2.Schema()
  label = comparator.feature.add()
  label.CopyFrom(next(f for f in schema.feature if f.name == 'class'))
  for field in ('shape', 'presence', 'value_count'):
    label.ClearField(field)
  label.drift_comparator.infinity_norm.threshold = 1e-9
  label.drift_comparator.jensen_shannon_divergence.threshold = 1e-9
  anomalies = tfdv.validate_statistics(stats(counts), comparator,
                                       previous_statistics=stats(whole))
  measured = {m.type: m.value for info in anomalies.drift_skew_info
              for m in info.drift_measurements}
  return measured.get(1, 0.0), measured.get(2, 0.0)  # L_INFTY, JENSEN_SHANNON_DIVERGENCE


def test_anomalies_are_tfdvs_format_with_tfdvs_numbers(balance_run, balance_inputs):
  import tensorflow_data_validation as tfdv
  from tensorflow_data_validation.utils import anomalies_util
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  res, paths = balance_run
  schema = tfdv.load_schema_text(os.path.join(balance_inputs.schema, 'schema.pbtxt'))
  for m in res.measurements:
    if m.unit.split == 'test':
      continue  # test holds a label outside the domain: TFDV and we count it differently
    assert (m.linf, m.js) == pytest.approx(_tfdv_measures(m.unit.counts, res.whole_counts,
                                                          schema), abs=1e-9), m.unit.name
  out = os.path.dirname(paths['json'])
  train = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-train', 'SchemaDiff.pb'))
  drift = {'/'.join(d.path.step): d for d in train.drift_skew_info}
  assert sorted(drift) == ['class'] + [f'class/data_tfrecord-0000{i}-of-00003.gz'
                                       for i in range(3)]
  skewed = drift['class/data_tfrecord-00002-of-00003.gz'].drift_measurements
  unit = next(m for m in res.measurements if m.unit.name == SKEWED)
  assert [(x.type, x.value, x.threshold) for x in skewed] == [
      (anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, unit.linf, unit.linf_threshold),
      (anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE, unit.js,
       unit.js_threshold)]  # the numbers themselves, not thrown away
  info = train.anomaly_info['class/data_tfrecord-00002-of-00003.gz']
  assert info.severity == anomalies_pb2.AnomalyInfo.ERROR
  assert [r.type for r in info.reason] == [
      anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
      anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH]
  assert 'image_sha256' in train.anomaly_info  # the leaked image is in train (and test)
  eval_ = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-eval', 'SchemaDiff.pb'))
  assert eval_.anomaly_info['mask'].severity == anomalies_pb2.AnomalyInfo.WARNING
  assert 'class' not in eval_.anomaly_info  # eval is stratified
  assert tfdv.get_feature(eval_.baseline, 'class').int_domain.max == 3


@pytest.fixture(scope='module')
def with_summary(balance_inputs):
  """The same files plus ImageExampleGen's summary: one shard's count off by one, its mask
  checks, its duplicate groups, and a class it named differently."""
  from components.image_example_gen.summary import IngestSummary
  from components.image_example_gen.summary import SUMMARY_FILE
  examples = str(balance_inputs.base / 'examples_with_summary')
  shutil.copytree(balance_inputs.examples, examples)
  shards = []
  for (split, name, _), (key, records) in zip(LAYOUT, balance_inputs.records.items()):
    counts = {}
    for _, label in records:
      counts[label] = counts.get(label, 0) + 1
    shards.append(dict(split=split, index=len(shards), file=name, count=len(records),
                       class_counts=counts))
  shards[1]['count'] += 1  # ImageExampleGen says it wrote 21 records there
  names = {label: name for name, label in MAPPING.items()}
  checks = {s: {n: {'masks': 0, 'empty': 0, 'not_binary': 0, 'not_single_channel': 0,
                    'size_mismatch': 0, 'undecodable': 0} for n in MAPPING} for s in SPLITS}
  checks['train']['COVID'].update(masks=11, not_binary=2, empty=3)
  summary = IngestSummary(
      csv_path='/data/index.csv', seed=0, splits=[], rows_in=101, examples_written=101,
      shards=shards, class_names={**names, 2: 'Pneumonia'},
      duplicate_images=[{'sha256': 'ab' * 32, 'crosses_splits': True, 'members': [
          {'image_id': 'x.png', 'line': 2, 'class_name': 'COVID', 'split': 'train'},
          {'image_id': 'y.png', 'line': 3, 'class_name': 'COVID', 'split': 'eval'}]}],
      mask_check='warn', mask_size='', mask_checks=checks)
  with open(os.path.join(examples, SUMMARY_FILE), 'w') as f:
    f.write(summary.to_json())
  return run_balance(balance_inputs, 'out_summary', examples=examples), summary


def test_what_imagegens_summary_adds(with_summary):
  from components.class_balance import balance
  (res, paths), _ = with_summary
  checks = {f.check: f for f in res.findings}
  record = checks[balance.RECORD_COUNT_MISMATCH]
  assert record.message == ('shard train/data_tfrecord-00001-of-00003.gz: 20 records read, but '
                            'ImageExampleGen wrote 21 (ingest summary)')
  assert "label 2: 'Pneumonia' when ingested, 'Viral Pneumonia' in the schema" in (
      checks[balance.CLASS_NAMES_MISMATCH].message)
  # Duplicates come from the summary's groups (this job grouped nothing itself) ...
  assert [d['image_ids'] for d in res.duplicates_across_splits] == [['x.png', 'y.png']]
  # ... and mask findings from its mask checks, not from the headers: eval's 16x16 masks were
  # accepted there (say, a declared mask size), so only train's two non-binary masks warn.
  assert checks[balance.MASK_NOT_BINARY].message == (
      "split train: 2 of 11 masks are not binary (more than 0 and one foreground value): "
      "'COVID' 2")
  assert balance.MASK_SIZE_MISMATCH not in checks
  assert res.mask_checks['train']['COVID']['empty'] == 3  # empty masks: in the report
  with open(paths['html']) as f:
    page = f.read()
  assert "mask checks (mode warn)" in page


def test_mask_check_off_silences_mask_content_findings(with_summary, balance_inputs):
  from components.class_balance import balance
  from components.class_balance import executor
  from components.class_balance import measure
  from components.class_balance.config import BalanceConfig
  from components.class_balance.scan_result import ScanResult
  (res, _), summary = with_summary
  stats, schema = executor.load_inputs(balance_inputs.stats, SPLITS, balance_inputs.schema)
  off = dataclasses.replace(summary, mask_check='off')
  # measure.evaluate is pure: evaluate the same scan again with another summary.
  scan = ScanResult(
      shards=[(s, n) for s, n, _ in LAYOUT], class_stats=_class_stats(res, balance_inputs),
      samples=[], errors=[], duplicates=None)
  again = measure.evaluate(stats, scan, schema, BalanceConfig(), off)
  kinds = {f.check for f in again.findings if f.kind == balance.KIND_MASKS}
  assert kinds == {balance.MASK_PRESENCE_DRIFT}  # rows with/without masks: always checked


def _class_stats(res, inputs):
  """Per (split, shard, label) counts rebuilt from the layout (enough for evaluate)."""
  from components.class_balance import image_stats
  out = {}
  for (split, name), records in inputs.records.items():
    for _, label in records:
      acc = out.setdefault((split, name, label), image_stats.ClassStats())
      acc.add(image_stats.RecordFacts('24x24', 'png L 8-bit',
                                      '24x24' if split != 'test' else '', False, -1.0), 0.95)
  return out


def test_a_truncated_shard_is_an_integrity_error_not_a_crash(balance_inputs):
  from components.class_balance import balance
  examples = str(balance_inputs.base / 'examples_truncated')
  shutil.copytree(balance_inputs.examples, examples)
  path = os.path.join(examples, 'Split-eval', 'data_tfrecord-00000-of-00001.gz')
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[: len(data) * 2 // 3])
  res, _ = run_balance(balance_inputs, 'out_truncated', examples=examples)
  by_check = {f.check: f for f in res.findings}
  unreadable = by_check[balance.UNREADABLE_SHARD]
  assert unreadable.scope == 'shard eval/data_tfrecord-00000-of-00001.gz'
  assert 'reading stopped' in unreadable.message and unreadable.severity == 'error'
  assert by_check[balance.COUNT_MISMATCH].split == 'eval'  # fewer records than the statistics


def test_fail_on_imbalance_stops_after_writing_the_reports(balance_inputs, balance_run):
  from components.class_balance import report
  res, paths = balance_run
  strict = dataclasses.replace(res, config=dataclasses.replace(res.config,
                                                               fail_on_imbalance=True))
  with pytest.raises(report.ImbalanceError) as e:
    report.raise_if_imbalanced(strict, paths['html'])
  message = str(e.value)
  assert message.startswith('class balance check failed: NOT stratified (2 findings)')
  assert SKEWED in message and "'COVID'" in message and 'L-infinity' in message
  assert 'leakage' not in message and 'mask' not in message  # only stratification stops it
  report.raise_if_imbalanced(res, paths['html'])  # fail_on_imbalance=False: returns


def test_config_round_trips_through_exec_properties():
  from components.class_balance import executor
  from components.class_balance import spec
  from components.class_balance.config import BalanceConfig
  config = BalanceConfig(max_linf=0.1, max_class_ratio=5, coverage_sample=0,
                         warnings_as_errors=True, fail_on_imbalance=True)
  props = executor.exec_properties_from_config(config)
  assert props[spec.WARNINGS_AS_ERRORS_KEY] == 1 and props[spec.MAX_CLASS_RATIO_KEY] == 5.0
  assert executor.config_from_exec_properties(props) == config
  # An older execution (fewer properties, read back by `cxr-tfx report`) gets the defaults.
  assert executor.config_from_exec_properties({spec.MAX_LINF_KEY: 0.1}) == BalanceConfig(
      max_linf=0.1)
