"""ClassBalance on conftest's tiny real shard files (real Beam, real TFDV) with an ingest summary
that lists near-duplicate groups, image-quality examples and a shortcut warning: the scan picks
the listed records out by image_id and the report shows their thumbnails -- made from the
records' own image bytes -- side by side; headless Chromium, offline, decodes every one."""
import base64
import io
import os
import re

from PIL import Image
import pytest

from tests.components.class_balance import chromium
from tests.components.class_balance.conftest import png
from tests.components.class_balance.conftest import run_balance
from tests.components.class_balance.conftest import with_summary

# Records of conftest's LAYOUT: train/img2 is COVID, eval/img67 Normal, train/img3 and img4
# COVID, train/img6 Normal, test/img95 Viral Pneumonia (the k of png(k)).
PRIOR_SHA = 'ee' * 32


def _m(k, split, class_name, line):
  return dict(image_id=f'{split}/img{k}.png', line=line, class_name=class_name, split=split,
              span=2, sha256=f'{k:064x}')


GROUPS = [
    dict(members=[_m(2, 'train', 'COVID', 3), _m(67, 'eval', 'Normal', 68),
                  dict(sha256=PRIOR_SHA, split='test', span=1)],
         classes=['COVID', 'Normal'], splits=['eval', 'test', 'train'], crosses_splits=True,
         crosses_classes=True),
    dict(members=[_m(3, 'train', 'COVID', 4), _m(4, 'train', 'COVID', 5)], classes=['COVID'],
         splits=['train'], crosses_splits=False, crosses_classes=False),
]
QUALITY = {'images': 101, 'near_duplicate_groups': 2, 'thresholds': {'dark': 0.1},
           'counts': {'test': {'Viral Pneumonia': {'dark': 1}}, 'train': {'Normal': {'dark': 1}}},
           'examples': {'dark': [dict(image_id='test/img95.png', line=96,
                                      class_name='Viral Pneumonia', split='test'),
                                 dict(image_id='train/img6.png', line=7, class_name='Normal',
                                      split='train')]}}
SHORTCUT = {'balanced_accuracy': 0.9, 'chance': 0.25, 'threshold': 0.6, 'warning': True,
            'message': 'Image size predicts the class: resize every class alike.',
            'top_properties': [['height', 0.7]]}


@pytest.fixture(scope='module')
def pixels_run(balance_inputs):
  examples = with_summary(balance_inputs, 'pixels', near_duplicates='report',
                          near_duplicate_groups=GROUPS, quality=QUALITY, shortcut=SHORTCUT)
  res, paths = run_balance(balance_inputs, 'out_pixels', examples=examples)
  with open(paths['html'], encoding='utf-8') as f:
    return res, paths, f.read()


def _section(page, section_id):
  return page.split(f'<section id="{section_id}">', 1)[1].split('</section>', 1)[0]


def test_the_scan_renders_only_the_listed_images(pixels_run):
  from components.class_balance import image_stats
  res, _, _ = pixels_run
  assert sorted(res.listed_images) == ['eval/img67.png', 'test/img95.png', 'train/img2.png',
                                       'train/img3.png', 'train/img4.png', 'train/img6.png']
  assert res.listed_images['eval/img67.png']['shard'] == 'data_tfrecord-00000-of-00001.gz'
  # From the record's own bytes: the same thumbnail as rendering png(67) directly.
  assert res.listed_images['eval/img67.png']['uri'] == image_stats.plain_thumbnail(png(67))


def test_the_report_shows_each_groups_thumbnails_side_by_side(pixels_run):
  from components.class_balance import image_stats
  _, _, page = pixels_run
  dups = _section(page, 'duplicates')
  first, second = dups.split('<div class="dup')[1:]
  sources = re.findall(r'<img src="([^"]+)"', first)
  assert sources == [image_stats.plain_thumbnail(png(2)), image_stats.plain_thumbnail(png(67))]
  for src in sources:
    with Image.open(io.BytesIO(base64.b64decode(src.split(',', 1)[1]))) as img:
      assert (img.format, img.size, img.mode) == ('JPEG', (96, 96), 'L')
  assert 'train · COVID' in first and 'eval · Normal' in first
  assert 'span 1: not in this span&#x27;s files' in first  # the earlier span's member
  assert first.count('class="sev error"') == 2  # two labels, across splits
  assert len(re.findall(r'<img src=', second)) == 2
  quality = _section(page, 'quality')
  assert re.findall(r'<img src="([^"]+)"', quality) == [image_stats.plain_thumbnail(png(95)),
                                                        image_stats.plain_thumbnail(png(6))]
  assert 'Image size predicts the class' in _section(page, 'shortcut')


def test_the_findings_are_in_the_anomalies_and_the_verdict(pixels_run):
  from tensorflow_data_validation.utils import anomalies_util

  from components.class_balance import balance
  res, paths, _ = pixels_run
  checks = [f.check for f in res.findings]
  for check in (balance.NEAR_DUPLICATE_LABELS, balance.NEAR_DUPLICATE_ACROSS_SPLITS,
                balance.SHORTCUT_RISK):
    assert checks.count(check) == 1
  assert balance.QUALITY_CLASS_RATE not in checks  # one dark image per class: no outlier
  assert '1 label error' in res.verdict and '1 shortcut-risk warning' in res.verdict
  out = os.path.dirname(paths['json'])
  test = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-test', 'SchemaDiff.pb'))
  # test holds the earlier span's member (and conftest's exact duplicate k=81 of k=1)
  assert balance.NEAR_DUPLICATE_ACROSS_SPLITS in [
      r.short_description for r in test.anomaly_info['image_sha256'].reason]
  assert [r.short_description for r in test.anomaly_info['image'].reason] == [
      balance.SHORTCUT_RISK]


def test_chromium_offline_decodes_every_thumbnail(pixels_run, tmp_path):
  from components.class_balance import html_report
  _, paths, page = pixels_run
  browser = chromium.find()
  if not browser:
    pytest.skip('chromium is not installed (.ci/run installs Debian\'s package)')
  measured = chromium.measure(browser, paths['html'], str(tmp_path))
  assert [s['id'] for s in measured['sections']] == list(html_report.SECTIONS)
  assert measured['images'] == page.count('<img ') == 16 + 6  # samples, listed images
  assert measured['decoded'] == measured['images'] and measured['resources'] == []
  assert all(s['height'] > 40 for s in measured['sections'])
