"""Drift between spans on tiny real spans: shard files, TFDV statistics, ingest summaries and
group_splits.json files, ClassBalance run through ``executor.run`` and ``Executor.Do`` (real
Beam, real TFDV, no mocks).

Spans (train + eval, 40 records each, one shard file per split):
  1: classes 10/10/10/10; 24x24 gray PNGs, a mask on every record; summary; groups by patient.
  2: 11/10/10/9 (a small shift) and the same images and masks; summary; groups by *study*.
  3: 25/5/5/5 (a big shift); 32x32 images, masks on half the records, all full; no summary;
     groups by patient: four of span 1's eval patients are in train, one train patient in eval.
"""
import collections
import hashlib
import io
import json
import os

import numpy as np
from PIL import Image
import pytest

from tests.components.class_balance.conftest import example
from tests.components.class_balance.conftest import generated_schema
from tests.components.class_balance.conftest import MAPPING
from tests.components.class_balance.conftest import png

SPLITS = ('train', 'eval')
# span -> {split: {label: count}}
MIXES = {
    1: {'train': {0: 8, 1: 8, 2: 8, 3: 8}, 'eval': {0: 2, 1: 2, 2: 2, 3: 2}},
    2: {'train': {0: 9, 1: 8, 2: 8, 3: 7}, 'eval': {0: 2, 1: 2, 2: 2, 3: 2}},
    3: {'train': {0: 20, 1: 4, 2: 4, 3: 4}, 'eval': {0: 5, 1: 1, 2: 1, 3: 1}},
}
VERSION = {1: 0, 2: 3, 3: 0}
LEAKED = ['P32', 'P33', 'P34', 'P35']  # span 1 eval -> span 3 train
MOVED = 'P0'  # span 1 train -> span 3 eval


def group_hash(patient):
  return hashlib.sha256(patient.encode()).hexdigest()


def _mask(size, i, full=False):
  pixels = np.zeros((size, size), np.uint8)
  pixels[:, : size if full else (i % 8) + 1] = 255  # coverage (i % 8 + 1) / 24: bins 0-0.3
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format='PNG')
  return buf.getvalue()


def _patients(span):
  """Every record's patient, in the order records are written: train first, then eval."""
  n_train = sum(MIXES[span]['train'].values())
  n_eval = sum(MIXES[span]['eval'].values())
  if span != 3:
    return [f'P{i}' for i in range(n_train + n_eval)]  # span 1: P32..P39 in eval
  train = LEAKED + [f'Q{i}' for i in range(n_train - len(LEAKED))]
  return train + [MOVED] + [f'R{i}' for i in range(n_eval - 1)]


def _write_span(base, span, schema):
  import tensorflow as tf
  import tensorflow_data_validation as tfdv

  from components.class_balance import executor
  from components.image_example_gen.summary import IngestSummary
  examples, stats = os.path.join(base, f'examples-{span}'), os.path.join(base, f'stats-{span}')
  patients, groups, shards, i = _patients(span), {}, [], 0
  size = 32 if span == 3 else 24
  for split in SPLITS:
    name = 'data_tfrecord-00000-of-00001.gz'
    os.makedirs(os.path.join(examples, f'Split-{split}'))
    counts = collections.Counter()
    with tf.io.TFRecordWriter(os.path.join(examples, f'Split-{split}', name), 'GZIP') as w:
      for label, n in MIXES[span][split].items():
        for _ in range(n):
          mask = (b'' if span == 3 and i % 2 else _mask(size, i, full=span == 3))
          w.write(example(f'{span}/img{i}.png', label, png(span * 1000 + i, (size, size)), mask))
          groups[group_hash(patients[i])] = split
          counts[label] += 1
          i += 1
    shards.append(dict(split=split, index=len(shards), file=name, count=sum(counts.values()),
                       class_counts=dict(counts)))
    if span != 1:  # span 1 is only ever a baseline: no statistics needed
      s = tfdv.generate_statistics_from_tfrecord(
          os.path.join(examples, f'Split-{split}', '*'),
          stats_options=tfdv.StatsOptions(schema=schema))
      os.makedirs(os.path.join(stats, f'Split-{split}'))
      with open(os.path.join(stats, f'Split-{split}', executor.STATS_FILE), 'wb') as f:
        f.write(s.SerializeToString())
  if span != 3:
    summary = IngestSummary(
        csv_path=f'/data/index-{span}.csv', seed=0, splits=[], rows_in=i, examples_written=i,
        shards=shards, class_names={label: name for name, label in MAPPING.items()},
        group_column='patient')
    with open(os.path.join(examples, 'ingest_summary.json'), 'w') as f:
      f.write(summary.to_json())
  with open(os.path.join(examples, 'group_splits.json'), 'w') as f:
    json.dump({'group_column': 'study' if span == 2 else 'patient', 'groups': groups}, f)
  return examples, stats


@pytest.fixture(scope='module')
def spans(tmp_path_factory):
  import tensorflow_data_validation as tfdv
  base = str(tmp_path_factory.mktemp('spans'))
  schema = generated_schema(MAPPING)
  schema_dir = os.path.join(base, 'schema')
  os.makedirs(schema_dir)
  tfdv.write_schema_text(schema, os.path.join(schema_dir, 'schema.pbtxt'))
  written = {span: _write_span(base, span, schema) for span in MIXES}
  return base, schema_dir, written


@pytest.fixture(scope='module')
def small_shift(spans):
  """Span 2 vs span 1 through executor.run (what `cxr-tfx report` calls)."""
  import apache_beam as beam

  from components.class_balance import executor
  from components.class_balance.config import BalanceConfig
  base, schema_dir, written = spans
  (examples, stats), (span1, _) = written[2], written[1]
  out = os.path.join(base, 'out-2')
  return executor.run(stats, SPLITS, examples, schema_dir, out, BalanceConfig(fail_on_drift=True),
                      beam.Pipeline, previous_examples=[(span1, 1, VERSION[1])], current_span=2)


@pytest.fixture(scope='module')
def big_shift(spans):
  """Span 3 vs spans 1 and 2 through the TFX executor, fail_on_drift=True: -> (the DriftError,
  the output artifact, its folder)."""
  from tfx.types import standard_artifacts

  from components.class_balance import executor
  from components.class_balance import report
  from components.class_balance import spec
  from components.class_balance.config import BalanceConfig
  base, schema_dir, written = spans

  def artifact(kind, uri, span=None, version=0, artifact_id=0):
    a = kind()
    a.uri = uri
    if span is not None:
      a.span, a.version, a.id = span, version, artifact_id
    return a

  stats = artifact(standard_artifacts.ExampleStatistics, written[3][1])
  stats.split_names = json.dumps(list(SPLITS))
  out = os.path.join(base, 'out-3')
  os.makedirs(out)
  anomalies = artifact(standard_artifacts.ExampleAnomalies, out)
  inputs = {
      spec.STATISTICS_KEY: [stats],
      spec.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, written[3][0], 3)],
      spec.SCHEMA_KEY: [artifact(standard_artifacts.Schema, schema_dir)],
      spec.PREVIOUS_EXAMPLES_KEY: [
          artifact(standard_artifacts.Examples, written[2][0], 2, VERSION[2], 12),
          artifact(standard_artifacts.Examples, written[1][0], 1, VERSION[1], 11)],
  }
  props = executor.exec_properties_from_config(BalanceConfig(fail_on_drift=True))
  with pytest.raises(report.DriftError) as e:
    executor.Executor().Do(inputs, {spec.ANOMALIES_KEY: [anomalies]}, props)
  return e.value, anomalies, out


def test_no_earlier_span_no_drift(balance_run):
  from tfx.types import standard_artifacts

  from components.class_balance import executor
  from components.class_balance import spec
  res, paths = balance_run  # executor.run without previous_examples
  assert res.drift.baseline is None and res.drift_findings == []
  with open(paths['json']) as f:
    section = json.load(f)['drift']
  assert (section['status'], section['baseline'], section['class_mix'], section['findings']) == (
      'no earlier span', None, None, [])
  artifact = standard_artifacts.ExampleAnomalies()
  executor.set_properties(artifact, res, paths)
  assert artifact.get_int_custom_property(spec.DRIFT_BASELINE_SPAN_PROPERTY) == -1
  assert artifact.get_int_custom_property(spec.DRIFTED_PROPERTY) == 0
  assert artifact.get_int_custom_property(spec.SPAN_LEAKAGE_PROPERTY) == 0
  with open(paths['html']) as f:
    assert 'No earlier span: nothing to compare span 0 with' in f.read()


def test_a_small_shift_is_measured_and_passes(small_shift):
  from components.class_balance import balance
  from components.class_balance import drift
  res, paths = small_shift  # fail_on_drift=True, yet nothing to stop on
  d = res.drift
  assert (d.current_span, d.baseline.span, d.baseline.version) == (2, 1, 0)
  assert d.class_mix.source == drift.SOURCE_SUMMARIES  # both spans have one
  assert d.class_mix.current == {'COVID': 11, 'Normal': 10, 'Viral Pneumonia': 10,
                                 'Lung_Opacity': 9}
  assert d.class_mix.linf == pytest.approx(0.025)
  assert d.class_mix.linf_class in ('COVID', 'Lung_Opacity')  # both moved 2.5 points
  assert 0 < d.class_mix.js < 0.02 and not d.drifted
  assert {s.name: s.value for s in d.stats} == {  # the same images and masks
      'image sizes': 0, 'image modes': 0, 'mask presence': 0, 'mask coverage': 0}
  assert not [f for f in res.findings if f.kind == balance.KIND_DRIFT]
  # Span 2 was grouped by study, span 1 by patient: not comparable, a warning.
  [f] = res.drift_findings
  assert (f.check, f.severity) == (balance.SPAN_GROUPS_NOT_COMPARABLE, 'warning')
  assert d.leakage.spans_not_comparable == ((1, 'patient'),) and not d.leakage.checked
  assert not os.path.exists(os.path.join(os.path.dirname(paths['json']), '.baseline_scan'))


def test_a_big_shift_is_an_error_that_stops_the_run_after_the_reports(big_shift, spans):
  from components.class_balance import spec
  error, artifact, out = big_shift
  message = str(error)
  assert message.startswith('drift check failed: span 3 vs span 2 (fail_on_drift=True; ')
  assert "class mix vs span 2: class 'COVID' is 62.5% of this span's 40 records vs 27.5%" in message
  # The message names the copy kept beside the output folder, which cleanup removes after a
  # failed execution (report.failed_reports_dir).
  kept = os.path.join(os.path.dirname(out), 'failed-' + os.path.basename(out))
  assert message.endswith(f'report: {os.path.join(kept, "balance_report.html")}')
  assert sorted(os.listdir(kept)) == ['balance_report.html', 'balance_report.json']
  for name in ('balance_report.json', 'balance_report.html', 'Split-train/SchemaDiff.pb',
               'Split-eval/SchemaDiff.pb'):
    assert os.path.exists(os.path.join(out, name)), name  # written before it stopped
  assert not [n for n in os.listdir(out) if n.startswith('.')]  # scratch folders removed
  props = {name: artifact.get_custom_property(name) for name in (
      spec.DRIFT_BASELINE_SPAN_PROPERTY, spec.DRIFTED_PROPERTY, spec.SPAN_LEAKAGE_PROPERTY)}
  assert props == {spec.DRIFT_BASELINE_SPAN_PROPERTY: 2, spec.DRIFTED_PROPERTY: 1,
                   spec.SPAN_LEAKAGE_PROPERTY: len(['P32', 'P33', 'P34', 'P35'])}
  assert artifact.get_float_custom_property(spec.DRIFT_LINF_PROPERTY) == pytest.approx(
      25 / 40 - 11 / 40)


def test_the_report_has_the_drift_section(big_shift):
  from components.class_balance import balance
  from components.class_balance import drift
  _, _, out = big_shift
  with open(os.path.join(out, 'balance_report.json')) as f:
    report = json.load(f)
  d = report['drift']
  assert d['current_span'] == 3
  assert d['baseline'] == {'span': 2, 'version': 3, 'uri': d['baseline']['uri']}
  assert [s['span'] for s in d['earlier_spans']] == [1, 2]
  mix = d['class_mix']
  assert mix['source'] == drift.SOURCE_FILES  # span 3 has no ingest summary
  assert mix['current']['counts'] == {'COVID': 25, 'Normal': 5, 'Viral Pneumonia': 5,
                                      'Lung_Opacity': 5}
  assert mix['baseline']['counts'] == {'COVID': 11, 'Normal': 10, 'Viral Pneumonia': 10,
                                       'Lung_Opacity': 9}  # from span 2's shard files
  assert (mix['max_drift_linf'], mix['max_drift_js'], mix['drifted']) == (0.1, 0.02, True)
  stats = {s['name']: s for s in d['image_stats']}
  assert stats['image sizes']['value'] == 1 and stats['image sizes']['current'] == {
      '32x32': 1.0}
  assert stats['mask presence']['value'] == pytest.approx(0.5)
  assert stats['mask coverage']['value'] > 0.02 and not stats['mask coverage']['ok']
  assert stats['image modes']['ok']
  leak = d['group_leakage']
  assert (leak['into_train'], leak['into_train_spans'], leak['split_changed']) == (4, [1], 1)
  assert sorted(leak['into_train_examples']) == sorted(group_hash(p) for p in LEAKED)
  assert leak['spans_compared'] == [1]
  assert leak['spans_not_comparable'] == [{'span': 2, 'group_column': 'study'}]
  checks = {f['check']: f for f in d['findings']}
  assert {c: f['severity'] for c, f in checks.items()} == {
      balance.DRIFT_LINF: 'error', balance.DRIFT_JS: 'error', balance.SPAN_LEAKAGE: 'error',
      balance.IMAGE_SIZE_DRIFT: 'warning', balance.MASK_PRESENCE_SPAN_DRIFT: 'warning',
      balance.MASK_COVERAGE_DRIFT: 'warning', balance.SPAN_SPLIT_CHANGE: 'warning',
      balance.SPAN_GROUPS_NOT_COMPARABLE: 'warning'}
  assert 'earlier span 1 ' in checks[balance.SPAN_LEAKAGE]['message']
  general = {f['check'] for f in report['findings']}
  assert set(checks) <= general  # also in the general list
  assert 'drift error' in report['verdict'] and report['stratification']['stratified']
  with open(os.path.join(out, 'balance_report.html')) as f:
    page = f.read()
  section = page.split('<section id="drift">', 1)[1].split('</section>', 1)[0]
  assert '<h2>Drift from span 2</h2>' in section and section.count('FAIL') == 5
  assert 'Groups across spans' in section and '<svg' in section


def test_the_anomalies_carry_the_drift_measurement(big_shift):
  from tensorflow_data_validation.utils import anomalies_util
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  _, _, out = big_shift
  measurement = anomalies_pb2.DriftSkewInfo.Measurement
  info = anomalies_pb2.AnomalyInfo
  for split in SPLITS:
    anomalies = anomalies_util.load_anomalies_binary(
        os.path.join(out, f'Split-{split}', 'SchemaDiff.pb'))
    drift = {'/'.join(d.path.step): d for d in anomalies.drift_skew_info}
    assert 'class' in drift  # the split's stratification measurement is still there
    [linf, js] = drift['class/drift_from_span_2'].drift_measurements
    assert (linf.type, linf.value, linf.threshold) == (measurement.L_INFTY,
                                                       pytest.approx(0.35), 0.1)
    assert (js.type, js.threshold) == (measurement.JENSEN_SHANNON_DIVERGENCE, 0.02)
    assert js.value > 0.02
    mix = anomalies.anomaly_info['class/drift_from_span_2']
    assert list(mix.path.step) == ['class', 'drift_from_span_2']
    assert mix.severity == info.ERROR and [r.type for r in mix.reason] == [
        info.COMPARATOR_L_INFTY_HIGH, info.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH]
    assert anomalies.anomaly_info['image/drift_from_span_2'].severity == info.WARNING
    assert anomalies.anomaly_info['mask/drift_from_span_2'].severity == info.WARNING
  train = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-train', 'SchemaDiff.pb'))
  assert train.anomaly_info['group_hash'].severity == info.ERROR  # groups leaked into train


def test_the_drift_section_renders_offline_in_chromium(big_shift, tmp_path):
  from components.class_balance import html_report
  from tests.components.class_balance import chromium
  browser = chromium.find()
  if not browser:
    pytest.skip('chromium is not installed (.ci/run installs Debian\'s package)')
  _, _, out = big_shift
  measured = chromium.measure(browser, os.path.join(out, 'balance_report.html'), str(tmp_path))
  assert [s['id'] for s in measured['sections']] == list(html_report.SECTIONS)
  section = next(s for s in measured['sections'] if s['id'] == 'drift')
  assert section['heading'] == 'Drift from span 2' and section['height'] > 300
  assert measured['resources'] == [] and measured['scripts'] == 0


def test_the_component_takes_earlier_spans_and_the_drift_options():
  from tfx import types
  from tfx.types import standard_artifacts

  from components.class_balance import executor
  from components.class_balance import spec
  from components.class_balance.component import ClassBalance
  from components.class_balance.config import BalanceConfig
  channels = dict(statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
                  examples=types.Channel(type=standard_artifacts.Examples),
                  schema=types.Channel(type=standard_artifacts.Schema))
  config = BalanceConfig(max_drift_linf=0.2, max_drift_js=0.05, fail_on_drift=True)
  wired = ClassBalance(**channels, config=config,
                       previous_examples=types.Channel(type=standard_artifacts.Examples))
  assert spec.PREVIOUS_EXAMPLES_KEY in wired.inputs
  assert (wired.exec_properties[spec.MAX_DRIFT_LINF_KEY], wired.exec_properties[
      spec.MAX_DRIFT_JS_KEY], wired.exec_properties[spec.FAIL_ON_DRIFT_KEY]) == (0.2, 0.05, 1)
  assert spec.PREVIOUS_EXAMPLES_KEY not in ClassBalance(**channels).inputs  # optional
  assert executor.config_from_exec_properties(wired.exec_properties) == config
  # An execution from before spans (no drift keys, read back by `cxr-tfx report`): defaults.
  older = {k: v for k, v in wired.exec_properties.items()
           if k not in (spec.MAX_DRIFT_LINF_KEY, spec.MAX_DRIFT_JS_KEY, spec.FAIL_ON_DRIFT_KEY)}
  assert executor.config_from_exec_properties(older) == BalanceConfig(
      max_linf=config.max_linf)
