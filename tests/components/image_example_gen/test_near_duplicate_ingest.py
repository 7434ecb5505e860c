"""ImageExampleGen with near-duplicates planted in real PNG/JPEG files, through the real Beam job:
copies are dealt with their originals, reported, published for the next span, and found again
there; one decode per file feeds the checks and the fingerprints."""
import csv
import io
import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest

from tests.support.testutil import read_examples

SPLITS = (('train', 3), ('eval', 1), ('test', 1))
COPIED = 4  # originals with planted copies


def _copies(png: bytes):
  """(name, bytes, extension) of four kinds of copy of one radiograph."""
  img = Image.open(io.BytesIO(png)).convert('L')
  w, h = img.size
  out = []
  jpeg = io.BytesIO()
  img.save(jpeg, 'JPEG', quality=80)
  out.append(('jpeg', jpeg.getvalue(), 'jpg'))
  small = io.BytesIO()
  img.resize((w * 3 // 4, h * 3 // 4), Image.BILINEAR).save(small, 'PNG')
  out.append(('resized', small.getvalue(), 'png'))
  crop = io.BytesIO()
  img.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(crop, 'PNG')
  out.append(('cropped', crop.getvalue(), 'png'))
  bright = io.BytesIO()
  Image.fromarray(np.clip(np.asarray(img, np.int16) + 20, 0, 255).astype(np.uint8)).save(
      bright, 'PNG')
  out.append(('brighter', bright.getvalue(), 'png'))
  return out


def _dataset(root, rows, extra):
  """A CSV of ``rows`` (dicts) plus ``extra`` rows."""
  path = os.path.join(root, f'index-{len(extra)}.csv')
  with open(path, 'w', newline='') as f:
    out = csv.DictWriter(f, ['image_path', 'mask_path', 'class'])
    out.writeheader()
    out.writerows(rows + extra)
  return path


def _ingest(csv_path, mapping, out_dir, splits=SPLITS, **kw):
  import apache_beam as beam
  from apache_beam.options.pipeline_options import PipelineOptions

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  from components.image_example_gen.config import SplitSpec
  config = IngestConfig(mapping, tuple(SplitSpec(*s) for s in splits), 0, **kw)
  return ingest.run_ingest(csv_path, config, str(out_dir),
                           lambda: beam.Pipeline(options=PipelineOptions([])))


@pytest.fixture(scope='module')
def planted(tmp_path_factory):
  """Demo images, then copies of COPIED of them (one more copy of the first held back for a
  later span, one labelled with another class) -> (root, rows, copy rows, mapping)."""
  from pipeline import demo_data
  root = str(tmp_path_factory.mktemp('near'))
  ds = demo_data.generate(root, scale=0.006, missing_masks=0.2, seed=3)
  with open(ds.csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  with open(ds.class_mapping_path) as f:
    mapping = json.load(f)
  os.makedirs(os.path.join(root, 'copies'))
  copies, later = [], []
  for n, row in enumerate(rows[:COPIED]):
    with open(os.path.join(root, row['image_path']), 'rb') as f:
      png = f.read()
    for kind, data, ext in _copies(png):
      name = f'copies/{n}-{kind}.{ext}'
      with open(os.path.join(root, name), 'wb') as f:
        f.write(data)
      entry = dict(image_path=name, mask_path='', **{'class': row['class']})
      (later if (n, kind) == (0, 'brighter') else copies).append((row['image_path'], entry))
  return root, rows, copies, later, mapping


@pytest.fixture(scope='module')
def grouped(planted, tmp_path_factory):
  root, rows, copies, _, mapping = planted
  out = tmp_path_factory.mktemp('grouped')
  summary = _ingest(_dataset(root, rows, [c for _, c in copies]), mapping, out)
  return out, summary


def _split_of(out):
  return {ex.features.feature['image_id'].bytes_list.value[0].decode(): split
          for split, _ in SPLITS
          for _, ex in read_examples(os.path.join(str(out), f'Split-{split}', '*'))}


def test_every_copy_is_dealt_with_its_original_and_reported(planted, grouped):
  _, _, copies, _, _ = planted
  out, summary = grouped
  split_of = _split_of(out)
  for original, copy in copies:
    assert split_of[copy['image_path']] == split_of[original], (original, copy)
  groups = summary.near_duplicate_groups
  assert summary.near_duplicates == 'group' and len(groups) == COPIED
  members = {m['image_id'] for g in groups for m in g['members']}
  assert members == {c['image_path'] for _, c in copies} | {o for o, _ in copies}
  assert not any(g['crosses_splits'] or g['crosses_classes'] for g in groups)
  assert summary.examples_written == summary.rows_in  # rows in = examples out


def test_records_carry_the_fingerprint_and_the_findings_are_summarised(grouped):
  from components.image_example_gen import perceptual
  out, summary = grouped
  records = read_examples(os.path.join(str(out), 'Split-*', '*'))
  for _, ex in records:
    text = ex.features.feature['image_fingerprint'].bytes_list.value[0].decode()
    assert perceptual.Fingerprint.from_text(text).width > 0
  assert summary.quality['images'] == len(records)
  assert summary.shortcut['warning'] is False  # the demo's classes differ by anatomy only
  assert os.path.exists(os.path.join(str(out), 'split_fingerprints.jsonl.gz'))


def test_report_mode_reports_without_grouping(planted, tmp_path):
  root, rows, copies, _, mapping = planted
  summary = _ingest(_dataset(root, rows, [c for _, c in copies]), mapping, tmp_path,
                    near_duplicates='report')
  assert summary.near_duplicates == 'report' and len(summary.near_duplicate_groups) == COPIED


def test_a_later_spans_copy_keeps_the_published_split(planted, grouped, tmp_path):
  root, rows, copies, later, mapping = planted
  out, _ = grouped
  summary = _ingest(_dataset(root, rows, [c for _, c in copies + later]), mapping, tmp_path,
                    split_manifest=os.path.join(str(out), 'split_manifest.json'))
  (original, copy), = later
  assert _split_of(tmp_path)[copy['image_path']] == _split_of(out)[original]
  # the new copy is not dealt as new: it keeps the split published for its original
  assert summary.membership['kept'] == summary.rows_in and summary.membership['new'] == 0
  # a span that has only the copy still groups it with the published original
  alone = tmp_path / 'alone'
  summary = _ingest(_dataset(root, rows[COPIED:], [later[0][1]]), mapping, alone,
                    split_manifest=os.path.join(str(out), 'split_manifest.json'),
                    splits=(('train', 1), ('eval', 1), ('test', 1)))
  group, = [g for g in summary.near_duplicate_groups
            if copy['image_path'] in [m.get('image_id') for m in g['members']]]
  assert {m['split'] for m in group['members']} == {_split_of(out)[original]}


def test_fingerprints_of_an_older_version_are_left_out_and_reported(planted, grouped, tmp_path):
  """A manifest published by an earlier cxr-tfx (another fingerprint version): the run goes on,
  its images keep their splits, and the images not compared are counted in the membership."""
  import gzip
  root, rows, copies, _, mapping = planted
  out, first = grouped
  published = tmp_path / 'published'
  shutil.copytree(str(out), str(published))
  path = published / 'split_fingerprints.jsonl.gz'
  with gzip.open(str(path), 'rt') as f:
    entries = [json.loads(line) for line in f]
  for e in entries[:5]:
    e['fingerprint'] = 'pf1:' + e['fingerprint'].split(':', 1)[1]
  with gzip.open(str(path), 'wt') as f:
    f.writelines(json.dumps(e) + '\n' for e in entries)
  summary = _ingest(_dataset(root, rows, [c for _, c in copies]), mapping, tmp_path / 'next',
                    split_manifest=str(published / 'split_manifest.json'))
  assert summary.membership['prior_fingerprints_not_compared'] == 5
  assert summary.membership['kept'] == summary.rows_in == first.rows_in


def test_a_copy_with_another_label_is_flagged(planted, tmp_path):
  root, rows, copies, _, mapping = planted
  (original, copy) = copies[0]
  other = next(c for c in mapping if c != copy['class'])
  relabelled = dict(copy, **{'class': other})
  summary = _ingest(_dataset(root, rows, [relabelled]), mapping, tmp_path)
  flagged = [g for g in summary.near_duplicate_groups if g['crosses_classes']]
  assert len(flagged) == 1 and {m.get('image_id') for m in flagged[0]['members']} == {
      original, copy['image_path']}


def test_header_mode_measures_nothing_and_says_so(planted, tmp_path):
  root, rows, _, _, mapping = planted
  summary = _ingest(_dataset(root, rows, []), mapping, tmp_path, verify='header')
  assert not summary.near_duplicate_groups and not summary.quality and not summary.shortcut
  _, ex = read_examples(os.path.join(str(tmp_path), 'Split-*', '*'))[0]
  assert 'image_fingerprint' not in ex.features.feature
  shutil.rmtree(str(tmp_path))


def test_validate_finds_the_same_without_tensorflow(planted, grouped):
  from components.image_example_gen.config import IngestConfig
  from components.image_example_gen.config import SplitSpec
  from pipeline import validate
  root, rows, copies, _, mapping = planted
  _, summary = grouped
  config = IngestConfig(mapping, tuple(SplitSpec(*s) for s in SPLITS), 0)
  found = validate.validate(_dataset(root, rows, [c for _, c in copies]), config, workers=2)
  assert found.near_duplicate_groups == summary.near_duplicate_groups
  assert found.quality == {k: v for k, v in summary.quality.items()
                           if k != 'near_duplicate_groups'}
  assert found.shortcut == summary.shortcut
  assert 'near-duplicates: 4 group(s)' in validate.format_report(found)
