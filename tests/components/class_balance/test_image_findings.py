"""What ImageExampleGen measured on the pixels, as ClassBalance's findings (image_findings.py):
near-duplicate groups carrying two labels or straddling splits, image-quality rates that stand
out in one class, the shortcut-risk warning; in the anomalies, the JSON and the HTML report.
Pure: a hand-made IngestSummary, hand-made TFDV statistics and scan (no TensorFlow, no Beam)."""
import json
import re

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components.class_balance import anomalies
from components.class_balance import balance
from components.class_balance import html_report
from components.class_balance import image_findings
from components.class_balance import image_stats
from components.class_balance import measure
from components.class_balance.config import BalanceConfig
from components.class_balance.scan_result import ScanResult
from components.image_example_gen.summary import IngestSummary
from tests.components.class_balance.conftest import generated_schema
from tests.components.class_balance.conftest import MAPPING

SPLIT_COUNTS = {'train': 40, 'eval': 10, 'test': 10}  # per class: 60 images of each class
HOSTILE = 'ct/<b>n\u202e</b>.png'  # an image id with markup and a bidirectional override


def _m(image_id, line, class_name, split, span=3):
  return dict(image_id=image_id, line=line, class_name=class_name, split=split, span=span,
              sha256=f'{line:02d}' * 32)


def _g(*members):
  classes = sorted({m['class_name'] for m in members if 'class_name' in m})
  splits = sorted({m['split'] for m in members})
  return dict(members=list(members), classes=classes, splits=splits,
              crosses_classes=len(classes) > 1, crosses_splits=len(splits) > 1)


TWO_LABELS = _g(_m('covid/a.png', 2, 'COVID', 'train'), _m(HOSTILE, 3, 'Normal', 'train'))
ACROSS = _g(_m('covid/x.png', 4, 'COVID', 'train'), _m('covid/y.png', 5, 'COVID', 'eval'))
BENIGN = _g(_m('normal/p.png', 6, 'Normal', 'test'), _m('normal/q.png', 7, 'Normal', 'test'))
PRIOR = _g(_m('covid/z.png', 8, 'COVID', 'train'), dict(sha256='ee' * 32, split='eval', span=1))
SHORTCUT = {'balanced_accuracy': 0.81, 'chance': 0.25, 'threshold': 0.6, 'warning': True,
            'message': 'Image width alone tells COVID from the rest: <resize> every class alike.',
            'top_properties': [['width', 0.52], ['mode<i>', 0.21]], 'folds': 5,
            'per_class': {'COVID': 0.9}}
# dark: COVID 20 of 60 vs 1 of 60 in each other class (a warning); blurry: 3 in every class
# (no); odd_size: 4 COVID images (fewer than QUALITY_MIN_FLAGGED: no).
QUALITY = {
    'images': 240, 'near_duplicate_groups': 250, 'thresholds': {'dark': 0.1, 'blurry': 0.3},
    'counts': {
        'train': {'COVID': {'dark': 14, 'blurry': 2, 'odd_size': 4},
                  'Normal': {'dark': 1, 'blurry': 2}, 'Viral Pneumonia': {'blurry': 3},
                  'Lung_Opacity': {'blurry': 3, 'dark': 1}},
        'eval': {'COVID': {'dark': 3, 'blurry': 1}, 'Normal': {'blurry': 1},
                 'Viral Pneumonia': {'dark': 1}},
        'test': {'COVID': {'dark': 3}}},
    'examples': {'dark': [dict(image_id='covid/d1.png', line=20, class_name='COVID',
                               split='train'),
                          dict(image_id=HOSTILE, line=3, class_name='Normal', split='train')],
                 'blurry': [dict(image_id='normal/b.png', line=30, class_name='Normal',
                                 split='eval')]}}


def summary(**fields):
  names = {label: name for name, label in MAPPING.items()}
  shards = [dict(split=s, index=i, file='data_tfrecord-00000-of-00001.gz', count=4 * n,
                 class_counts={c: n for c in names}) for i, (s, n) in enumerate(
                     SPLIT_COUNTS.items())]
  base = dict(near_duplicates='report', near_duplicate_groups=[TWO_LABELS, ACROSS, BENIGN, PRIOR],
              quality=QUALITY, shortcut=SHORTCUT)
  return IngestSummary(csv_path='/data/index.csv', seed=0, splits=[], class_names=names,
                       rows_in=240, examples_written=240, shards=shards, **dict(base, **fields))


def statistics(counts):
  from tensorflow_metadata.proto.v0 import statistics_pb2
  out = statistics_pb2.DatasetFeatureStatisticsList()
  feature = out.datasets.add(num_examples=sum(counts.values())).features.add(
      type=statistics_pb2.FeatureNameStatistics.INT)
  feature.path.step.append('class')
  for rank, (label, n) in enumerate(sorted(counts.items())):
    feature.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank,
                                                    label=str(label), sample_count=n)
  return out


def evaluate(ingest, listed_images=None, config=BalanceConfig()):
  """measure.evaluate on hand-made statistics and scan that agree with ``ingest``'s shards."""
  stats, class_stats = {}, {}
  for split, n in SPLIT_COUNTS.items():
    stats[split] = statistics({label: n for label in MAPPING.values()})
    for label in MAPPING.values():
      acc = class_stats.setdefault((split, 'data_tfrecord-00000-of-00001.gz', label),
                                   image_stats.ClassStats())
      for _ in range(n):
        acc.add(image_stats.RecordFacts('24x24', 'png L 8-bit', '', False, -1.0), 0.95)
  scan = ScanResult([(s, 'data_tfrecord-00000-of-00001.gz') for s in SPLIT_COUNTS],
                    class_stats, [], [], None, dict(listed_images or {}))
  return measure.evaluate(stats, scan, generated_schema(MAPPING), config, ingest)


@pytest.fixture(scope='module')
def result():
  uris = {m['image_id']: {'split': m['split'], 'shard': 'x', 'uri': f'data:image/jpeg;base64,'
                                                                     f'QUFB{i:04d}'}
          for i, m in enumerate(m for g in (TWO_LABELS, ACROSS, BENIGN, PRIOR)
                                for m in g['members'] if 'image_id' in m)}
  uris['covid/d1.png'] = {'split': 'train', 'shard': 'x', 'uri': 'data:image/jpeg;base64,RDE='}
  return evaluate(summary(), uris)


def _by_check(res, check):
  return [f for f in res.findings if f.check == check]


def test_a_group_with_two_labels_is_an_error_naming_its_members(result):
  [f] = _by_check(result, balance.NEAR_DUPLICATE_LABELS)
  assert (f.severity, f.kind, f.split, f.value) == ('error', balance.KIND_LABELS, 'train', 2)
  assert f.message.startswith("one image, two labels: near-duplicate images (copies of one "
                              "image re-encoded, resized, cropped or re-exposed) carry the "
                              "classes 'COVID', 'Normal': line 2 'covid/a.png' (COVID, train), "
                              "line 3 'ct/<b>n\\u202e</b>.png' (Normal, train); correct")
  assert '\u202e' not in f.message  # terminal-safe: the override is shown, not applied


def test_groups_across_splits_are_leakage_errors_like_identical_bytes(result):
  across, prior = _by_check(result, balance.NEAR_DUPLICATE_ACROSS_SPLITS)
  for f in (across, prior):
    assert (f.severity, f.kind, f.scope, f.split) == ('error', 'leakage', 'dataset', 'eval/train')
  assert across.value == 2 and "'covid/x.png' (COVID, train), line 5 'covid/y.png'" in (
      across.message)
  assert '(--near-duplicates report): --near-duplicates group deals' in across.message
  assert ("line 8 'covid/z.png' (COVID, train), an image of span 1 (sha256 eeeeeeeeeeee, split "
          'eval)') in prior.message
  grouped = evaluate(summary(near_duplicates='group', near_duplicate_groups=[PRIOR]))
  [f] = _by_check(grouped, balance.NEAR_DUPLICATE_ACROSS_SPLITS)
  assert 'images an earlier span published keep their split' in f.message
  assert '--fresh-splits' in f.message
  # A group in one split with one class is reported, not a finding.
  benign = evaluate(summary(near_duplicate_groups=[BENIGN]))
  assert not [f for f in benign.findings if f.check.startswith('NEAR_DUPLICATE')]
  assert len(benign.pixels.groups) == 1


def test_the_shortcut_warning_carries_the_sentence_and_the_top_properties(result):
  [f] = _by_check(result, balance.SHORTCUT_RISK)
  assert (f.severity, f.kind, f.value, f.threshold) == ('warning', 'shortcut', 0.81, 0.6)
  assert f.message == (
      'shortcut risk: non-anatomical image properties predict the class (balanced accuracy '
      '0.81 vs chance 0.25, warning at 0.60); top properties: width 0.52, mode<i> 0.21. Image '
      'width alone tells COVID from the rest: <resize> every class alike.')
  quiet = evaluate(summary(shortcut=dict(SHORTCUT, warning=False)))
  assert not _by_check(quiet, balance.SHORTCUT_RISK)
  assert quiet.pixels.shortcut['balanced_accuracy'] == 0.81  # still shown in the report
  strict = evaluate(summary(), config=BalanceConfig(warnings_as_errors=True))
  assert _by_check(strict, balance.SHORTCUT_RISK)[0].severity == 'error'


def test_quality_is_a_table_and_a_warning_only_where_one_class_stands_out(result):
  [f] = _by_check(result, balance.QUALITY_CLASS_RATE)
  assert (f.severity, f.kind, f.class_name) == ('warning', 'quality', 'COVID')
  assert f.message.startswith("image quality: 20 of 60 'COVID' images (33.3%) are dark, vs "
                              "1.7% of the other classes' (3 of 180)")
  rates = result.pixels.class_rates
  assert rates['dark']['COVID'] == {'flagged': 20, 'images': 60, 'rate': 0.333333,
                                    'warning': True}
  assert not any(r['warning'] for r in rates['blurry'].values())  # the same in every class
  assert rates['odd_size']['COVID']['flagged'] == 4 and not rates['odd_size']['COVID']['warning']
  assert result.pixels.quality_counts['eval']['Viral Pneumonia'] == {'dark': 1}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=2, max_size=5), st.integers(1, 5))
def test_a_class_at_the_others_rate_never_warns(flagged, scale):
  """The same share flagged in every class (counts scaled per class) is never a finding, and a
  warning always names a class flagged at least QUALITY_MIN_FLAGGED times."""
  totals = {f'c{i}': 60 * (1 + i % scale) for i in range(len(flagged))}
  even = {'all': {c: {'dark': flagged[0] * (1 + i % scale)} for i, c in enumerate(totals)}}
  assert not image_findings.quality_findings(image_findings.class_rates(even, totals))
  skewed = {'all': {c: {'dark': n} for c, n in zip(totals, flagged)}}
  for f in image_findings.quality_findings(image_findings.class_rates(skewed, totals)):
    assert flagged[list(totals).index(f.class_name)] >= image_findings.QUALITY_MIN_FLAGGED


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                       lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
KEYS = ('members', 'classes', 'splits', 'image_id', 'line', 'class_name', 'split', 'span',
        'sha256', 'counts', 'examples', 'images', 'balanced_accuracy', 'warning', 'message',
        'top_properties', 'dark')


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=5), max_size=3),
       st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=5),
       st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=5), JSONISH)
def test_any_summary_content_gives_findings_or_nothing_never_a_crash(groups, quality, shortcut,
                                                                     mode):
  import types
  ingest = types.SimpleNamespace(near_duplicate_groups=groups, quality=quality,
                                 shortcut=shortcut, near_duplicates=mode)
  found, findings = image_findings.evaluate(image_findings.read(ingest), {'COVID': 10, 'N': 10})
  json.dumps(found.to_dict())
  assert all(f.check in balance.KIND_OF and f.message for f in findings)


def test_older_summaries_and_other_example_gens_give_nothing():
  import types
  for older in (None, types.SimpleNamespace(), summary(near_duplicates='', near_duplicate_groups=[],
                                                       quality={}, shortcut={})):
    found = image_findings.read(older)
    assert not found.measured and found.thumbnail_ids() == []
    assert image_findings.evaluate(found, {'COVID': 3}) == (found, [])


def test_the_thumbnails_wanted_are_this_runs_listed_images_only(result):
  ids = image_findings.read(summary()).thumbnail_ids()
  assert ids == sorted({'covid/a.png', HOSTILE, 'covid/x.png', 'covid/y.png', 'normal/p.png',
                        'normal/q.png', 'covid/z.png', 'covid/d1.png', 'normal/b.png'})
  many = [_g(*[_m(f'g{i}/m{k}.png', k, 'COVID', 'train') for k in range(20)]) for i in range(300)]
  wanted = image_findings.read(summary(near_duplicate_groups=many, quality={})).thumbnail_ids()
  assert len(wanted) == image_findings.MAX_GROUPS * image_findings.THUMBNAILS_PER_GROUP


def test_the_findings_reach_the_anomalies_under_their_paths(result):
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  out = anomalies.build(result, generated_schema(MAPPING))
  reasons = {split: {path: [r.short_description for r in info.reason]
                     for path, info in a.anomaly_info.items()} for split, a in out.items()}
  assert balance.NEAR_DUPLICATE_LABELS in reasons['train']['class']
  assert balance.NEAR_DUPLICATE_LABELS not in reasons['eval'].get('class', [])
  assert reasons['eval']['image_sha256'] == [balance.NEAR_DUPLICATE_ACROSS_SPLITS] * 2
  assert 'image_sha256' not in reasons['test']
  for split in SPLIT_COUNTS:  # dataset findings: in every split's file
    assert reasons[split]['image'] == [balance.QUALITY_CLASS_RATE, balance.SHORTCUT_RISK]
    assert out[split].anomaly_info['image'].severity == anomalies_pb2.AnomalyInfo.WARNING
  assert out['eval'].anomaly_info['image_sha256'].severity == anomalies_pb2.AnomalyInfo.ERROR


def test_the_json_report_and_the_verdict(result):
  report = json.loads(json.dumps(result.to_dict()))
  assert report['near_duplicates']['mode'] == 'report'
  assert (report['near_duplicates']['groups'], report['near_duplicates']['two_labels'],
          report['near_duplicates']['across_splits']) == (250, 1, 2)
  assert report['quality']['class_rates']['dark']['COVID']['warning'] is True
  assert report['shortcut']['top_properties'] == [['width', 0.52], ['mode<i>', 0.21]]
  assert report['shortcut']['other'] == {'folds': 5, 'per_class': '{"COVID": 0.9}'}
  assert 'data:image' not in json.dumps(report)  # thumbnails only in the HTML
  assert result.verdict.endswith('; 1 label error, 2 leakage errors, 1 image-quality warning, '
                                 '1 shortcut-risk warning')


def _section(page, section_id):
  return page.split(f'<section id="{section_id}">', 1)[1].split('</section>', 1)[0]


def test_the_report_shows_each_group_side_by_side_escaped(result):
  page = html_report.render(result)
  assert re.findall(r'<section id="([a-z]+)"', page) == list(html_report.SECTIONS)
  dups = _section(page, 'duplicates')
  groups = dups.split('<div class="dup')[1:]
  assert len(groups) == 4 and '250 groups of near-duplicates' in dups
  assert 'The first 4 are listed' in dups
  first = groups[0]
  assert first.startswith(' bad">') and 'two labels' in first and 'across splits' not in first
  assert first.count('<figure>') == 2 and first.count('<img src="data:image/jpeg;base64,') == 2
  assert 'train · COVID' in first and 'train · Normal' in first and 'span 3 · line 2' in first
  assert '<b>n' not in page and 'ct/&lt;b&gt;n\\u202e&lt;/b&gt;.png' in first
  assert '\u202e' not in page
  prior = groups[3]
  assert prior.count('<img ') == 1 and 'span 1: not in this span&#x27;s files' in prior
  assert 'sha256 eeeeeeeeeeee' in prior
  assert 'across splits' not in groups[2] and not groups[2].startswith(' bad')
  quality = _section(page, 'quality')
  assert '<td class="n hit">20 (33.3%)</td>' in quality
  assert quality.count('<img ') == 2 and 'does not decode' not in quality  # d1, HOSTILE
  assert 'not found in the shard files' in quality  # normal/b.png: no thumbnail was found
  assert 'Thresholds: blurry 0.3, dark 0.1' in quality
  shortcut = _section(page, 'shortcut')
  assert 'balanced accuracy 0.81 vs chance 0.25' in shortcut
  assert '&lt;resize&gt; every class alike' in shortcut and '<resize>' not in shortcut
  assert 'mode&lt;i&gt;' in shortcut and '<svg' in shortcut
  assert '{&quot;COVID&quot;: 0.9}' in shortcut  # other keys shown as they are
  assert 'near-duplicate group' in _section(page, 'leakage')


def test_the_report_says_when_nothing_was_measured():
  page = html_report.render(evaluate(summary(near_duplicates='', near_duplicate_groups=[],
                                             quality={}, shortcut={})))
  for section in ('duplicates', 'quality'):
    assert 'Not measured' in _section(page, section)
  assert 'Not assessed' in _section(page, 'shortcut')
  off = html_report.render(evaluate(summary(near_duplicates='off', near_duplicate_groups=[])))
  assert '--near-duplicates off' in _section(off, 'duplicates')
