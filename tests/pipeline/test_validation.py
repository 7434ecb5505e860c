"""End to end with LocalDagRunner: StatisticsGen, ExampleValidator and ClassBalance in the
pipeline; a patient-grouped index that cannot be balanced; images copied under other patients'
names, which join their original's split."""
import json
import os
import shutil
import subprocess

import pytest

from tests.support.testutil import CLI
from tests.support.testutil import read_csv_rows
from tests.support.testutil import REPO
from tests.support.testutil import write_csv_rows

SPLITS = 'train=3,test=1'


@pytest.fixture(scope='module')
def grouped(demo_dataset, tmp_path_factory):
  """The demo rows plus patient ids: one patient has 20 of the 32 Normal images (too many for one shard of 4 to stay balanced), and
  four COVID images copied under new names into the Normal class."""
  data = str(tmp_path_factory.mktemp('grouped') / 'data')  # a copy: other tests list the folder
  shutil.copytree(demo_dataset.root, data)
  rows = read_csv_rows(demo_dataset.csv_path)
  normal = [r for r in rows if r['class'] == 'Normal']
  for i, r in enumerate(rows):
    r['patient_id'] = 'p-big' if r in normal[:20] else f'p{i}'
  pairs = []
  for k, covid in enumerate([r for r in rows if r['class'] == 'COVID'][:4]):
    copy_rel = f'COVID-19_Radiography_Dataset/Normal/images/Normal-copy-{k}.png'
    shutil.copy(os.path.join(data, covid['image_path']), os.path.join(data, copy_rel))
    rows.append({'image_path': copy_rel, 'mask_path': '', 'class': 'Normal',
                 'patient_id': f'p-copy{k}'})
    pairs.append(sorted([covid['image_path'], copy_rel]))
  csv_path = write_csv_rows(os.path.join(data, 'grouped.csv'), rows,
                            ('image_path', 'mask_path', 'class', 'patient_id'))
  root = str(tmp_path_factory.mktemp('root'))
  base = [CLI, 'run', '--csv', csv_path, '--class-mapping', demo_dataset.class_mapping_path,
          '--pipeline-root', root, '--splits', SPLITS, '--group-column', 'patient_id']
  strict = subprocess.run(base + ['--fail-on-imbalance'], capture_output=True, text=True,
                          cwd=REPO, timeout=900)
  loose = subprocess.run(base, capture_output=True, text=True, cwd=REPO, timeout=900)
  return root, strict, loose, pairs


def test_fail_on_imbalance_stops_naming_shard_class_and_measure(grouped):
  _, strict, _, _ = grouped
  assert strict.returncode == 2, strict.stdout[-2000:] + strict.stderr[-2000:]
  err = strict.stderr
  assert 'cxr-tfx run: error: class balance check failed' in err
  assert "class 'Normal'" in err and 'L-infinity' in err and 'shard train/' in err
  assert 'report: ' in err and 'Traceback' not in err


def test_without_the_flag_the_run_completes_and_reports_where(grouped):
  root, _, loose, _ = grouped
  assert loose.returncode == 0, loose.stderr[-3000:]
  out = loose.stdout
  assert 'class balance: NOT stratified' in out and "class 'Normal'" in out
  # The strict run left ImageExampleGen and StatisticsGen done: the rerun reuses them.
  assert '[ImageExampleGen] finished' in loose.stderr and 'cached' in loose.stderr
  html = out.split('balance report: ')[1].split()[0]
  assert html.startswith(root) and os.path.exists(html)


def test_a_copied_image_joins_its_originals_split_so_nothing_leaks(grouped):
  """Each COVID image copied into Normal under another patient: identical bytes link the two
  patients into one unit, so each copy is in its original's split; ClassBalance (which would
  report duplicates across splits as leakage, tests/components/class_balance) finds none."""
  from tests.support.testutil import read_examples
  root, _, loose, pairs = grouped
  assert loose.returncode == 0, loose.stderr[-3000:]
  examples = loose.stdout.split('Examples: ')[1].split()[0]
  split_of = {}
  for split in ('train', 'test'):
    for _, ex in read_examples(os.path.join(examples, f'Split-{split}', '*')):
      split_of[ex.features.feature['image_id'].bytes_list.value[0].decode()] = split
  assert all(split_of[a] == split_of[b] for a, b in pairs), (pairs, split_of)
  with open(os.path.join(examples, 'ingest_summary.json')) as f:
    summary = json.load(f)
  assert len(summary['duplicate_images']) == len(pairs)
  assert not any(d['crosses_splits'] for d in summary['duplicate_images'])
  report_path = loose.stdout.split('balance report: ')[1].split()[0].replace('.html', '.json')
  with open(report_path) as f:
    report = json.load(f)
  assert report['duplicates_across_splits'] == []
  assert not any(f['check'] == 'DUPLICATE_ACROSS_SPLITS' for f in report['findings'])
  stats = report['image_statistics']['all']
  assert stats['Normal']['mask_size_mismatch'] > 0  # demo masks are 256x256, images 299x299
  assert stats['Normal']['image_sizes'] == {'299x299': stats['Normal']['examples']}


def test_report_command_rebuilds_from_ml_metadata(grouped, tmp_path):
  root, _, loose, _ = grouped
  assert loose.returncode == 0
  out = subprocess.run([CLI, 'report', '--pipeline-root', root, '--out', str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  first_verdict = loose.stdout.split('class balance: ')[1].splitlines()[0]
  assert f'class balance: {first_verdict}' in out.stdout
  with open(tmp_path / 'balance_report.json') as f:
    rebuilt = json.load(f)
  original = loose.stdout.split('balance report: ')[1].split()[0].replace('.html', '.json')
  with open(original) as f:
    assert json.load(f)['units'] == rebuilt['units']
  assert (tmp_path / 'Split-train' / 'SchemaDiff.pb').exists()


def test_example_validator_finds_nothing_in_real_output(grouped):
  from tensorflow_data_validation.utils import anomalies_util

  from pipeline import mlmd
  root, _, loose, _ = grouped
  assert loose.returncode == 0
  store = mlmd.sqlite_store(os.path.join(root, 'metadata.sqlite'))
  validator = [a for a in store.get_artifacts_by_type('ExampleAnomalies')
               if 'cxr_balance_verdict' not in a.custom_properties]
  assert validator
  for split in ('train', 'test'):
    anomalies = anomalies_util.load_anomalies_binary(
        os.path.join(validator[-1].uri, f'Split-{split}', 'SchemaDiff.pb'))
    assert not anomalies.anomaly_info, split


def test_a_balanced_run_has_no_errors_and_counts_equal_the_csv(balanced_run, demo_dataset):
  """Stratified, with warnings only: the demo's classes are imbalanced (Viral Pneumonia is 4 of
  64) and its 256x256 masks differ from the 299x299 images."""
  from tensorflow_data_validation.utils import anomalies_util
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  assert balanced_run.balanced  # cxr_balanced: the stratification verdict
  assert balanced_run.balance_verdict.startswith('stratified; classes imbalanced')
  assert {line.split(':')[0] for line in balanced_run.balance_findings} == {'imbalance', 'masks'}
  with open(balanced_run.balance_report.replace('.html', '.json')) as f:
    report = json.load(f)
  assert report['whole_counts'] == demo_dataset.class_counts  # from TFDV's statistics
  for split in ('train', 'test'):
    anomalies = anomalies_util.load_anomalies_binary(os.path.join(
        os.path.dirname(balanced_run.balance_report), f'Split-{split}', 'SchemaDiff.pb'))
    assert anomalies.drift_skew_info  # measured ...
    assert all(info.severity == anomalies_pb2.AnomalyInfo.WARNING  # ... and no error
               for info in anomalies.anomaly_info.values())


def test_a_class_missing_from_splits_is_named_and_fail_on_imbalance_stops(demo_dataset,
                                                                          tmp_path):
  """Viral Pneumonia has 4 rows for splits 8/1/1: train gets 3 (floor of 3.2), the one extra
  goes to eval or test (largest remainder, 0.4 each), and the other split gets none."""
  args = [CLI, 'run', '--csv', demo_dataset.csv_path, '--pipeline-root', str(tmp_path)]
  loose = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=900)
  assert loose.returncode == 0, loose.stderr[-3000:]
  missing = [split for split in ('train', 'eval', 'test')
             if (f"split {split}: class 'Viral Pneumonia' has 0 examples, fewer than "
                 'min_count_per_class=1') in loose.stdout]
  assert len(missing) == 1 and missing[0] in ('eval', 'test'), loose.stdout
  html = loose.stdout.split('balance report: ')[1].split()[0]
  with open(html) as f:
    assert 'data_tfrecord-00000-of-00001.gz' in f.read()  # the shards without it are shown
  strict = subprocess.run(args + ['--fail-on-imbalance'], capture_output=True, text=True,
                          cwd=REPO, timeout=900)
  assert strict.returncode == 2
  assert "split eval: class 'Viral Pneumonia' has 0 examples" in strict.stderr


def test_html_report_renders_in_headless_chromium(balanced_run, tmp_path):
  chromium = shutil.which('chromium') or shutil.which('chromium-browser')
  if not chromium:
    pytest.skip('chromium is not installed (.ci/run installs Debian\'s package)')
  shot = tmp_path / 'report.png'
  done = subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu',
                         '--window-size=1280,2400', f'--screenshot={shot}',
                         'file://' + balanced_run.balance_report],
                        capture_output=True, text=True, timeout=180)
  assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]
  dom = subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu', '--dump-dom',
                        'file://' + balanced_run.balance_report],
                       capture_output=True, text=True, timeout=180)
  assert '<svg' in dom.stdout and 'Class balance' in dom.stdout
