"""The HTML report works offline: nothing to fetch, every split and class shown, thumbnails and
charts drawn; headless Chromium with the network disabled renders it completely, and a
screenshot shows every section."""
import re

import numpy as np
from PIL import Image
import pytest

from tests.components.class_balance import chromium
from tests.components.class_balance.conftest import MAPPING
from tests.components.class_balance.conftest import SPLITS


@pytest.fixture(scope='module')
def page(balance_run):
  _, paths = balance_run
  with open(paths['html'], encoding='utf-8') as f:
    return paths['html'], f.read()


def test_the_page_references_nothing_outside_itself(page):
  _, text = page
  assert not re.search(r'(?i)(src|href)\s*=\s*["\']?\s*(https?:|//|file:)', text)
  assert not re.search(r'(?i)<(script|link|iframe|object|embed)\b', text)
  assert not re.search(r'(?i)(@import|url\()', text)
  images = re.findall(r'<img src="([^"]+)"', text)
  assert images and all(src.startswith('data:image/png;base64,') for src in images)
  without_images = re.sub(r'data:image/png;base64,[A-Za-z0-9+/=]+', '', text)
  assert 'http' not in without_images.lower()  # no namespace, no link to a viewer


def test_every_split_class_and_section_is_in_the_page(page, balance_run):
  from components.class_balance import html_report
  res, _ = balance_run
  _, text = page
  assert re.findall(r'<section id="([a-z]+)"', text) == list(html_report.SECTIONS)
  statistics = text.split('<section id="statistics">', 1)[1]
  for split in SPLITS:  # TFDV's statistics of every split, not just two
    assert f'<th>{split}</th>' in statistics
  samples = text.split('<section id="samples">', 1)[1].split('</section>', 1)[0]
  for name in MAPPING:
    assert name in samples
  assert samples.count('<img ') == sum(len(v) for v in res.samples.values()) == 4 * len(MAPPING)
  masks = text.split('<section id="masks">', 1)[1].split('</section>', 1)[0]
  drawn = [(split, name) for split in list(SPLITS) + ['all'] for name in MAPPING
           if res.image_statistics[split].get(name, {}).get('coverage_sampled')]
  assert masks.count('<svg') == len(drawn) > 0  # a coverage histogram per split and class
  assert res.verdict.split(';')[0] in text and 'NOT stratified' in text


def test_class_names_are_escaped(balance_run):
  import dataclasses

  from components.class_balance import html_report
  res, _ = balance_run
  hostile = dataclasses.replace(res, class_names={**res.class_names,
                                                  0: '<img src=x onerror=alert(1)>'})
  text = html_report.render(hostile)
  assert '<img src=x' not in text and '&lt;img src=x onerror=alert(1)&gt;' in text


@pytest.fixture(scope='module')
def rendered(page, tmp_path_factory):
  path, _ = page
  browser = chromium.find()
  if not browser:
    pytest.skip('chromium is not installed (.ci/run installs Debian\'s package)')
  work = str(tmp_path_factory.mktemp('chromium'))
  measured = chromium.measure(browser, path, work)
  shot = f'{work}/report.png'
  chromium.screenshot(browser, path, shot, measured['height'], work)
  return measured, shot


def test_chromium_offline_renders_the_page_completely(rendered, balance_run):
  from components.class_balance import html_report
  res, _ = balance_run
  measured, _ = rendered
  assert measured['title'] == 'cxr-tfx class balance'
  assert [s['id'] for s in measured['sections']] == list(html_report.SECTIONS)
  assert all(s['height'] > 40 and s['width'] > 600 for s in measured['sections'])
  assert measured['images'] == 4 * len(MAPPING) == measured['decoded']  # every thumbnail decoded
  assert measured['svgs'] >= 3  # class bars, split/shard bars, coverage histograms
  assert measured['resources'] == [] and measured['scripts'] == 0  # fetched nothing


def test_screenshot_shows_every_section(rendered):
  measured, shot = rendered
  with Image.open(shot) as img:
    pixels = np.asarray(img.convert('RGB')).astype(int)
  assert pixels.shape[0] >= measured['height'] - 2
  for s in measured['sections']:
    top, bottom = int(s['top']) + 2, int(s['top'] + s['height']) - 2
    region = pixels[top:bottom, 40:chromium.WIDTH - 40]
    ink = (np.abs(region - 255).sum(axis=-1) > 60).mean()  # not (near) white
    assert ink > 0.01, (s['id'], ink)  # text, tables, charts drawn in every section
  samples = next(s for s in measured['sections'] if s['id'] == 'samples')
  region = pixels[int(samples['top']):int(samples['top'] + samples['height'])]
  red = (region[..., 0] > region[..., 1] + 50) & (region[..., 0] > region[..., 2] + 50)
  assert red.sum() > 500  # thumbnails drawn, masks overlaid in red
  verdicts = next(s for s in measured['sections'] if s['id'] == 'verdicts')
  top = pixels[int(verdicts['top']):int(verdicts['top'] + verdicts['height'])]
  assert ((top[..., 0] > 180) & (top[..., 1] < 80) & (top[..., 2] < 80)).sum() > 50  # the red
  # NOT stratified card (its border and headline)
