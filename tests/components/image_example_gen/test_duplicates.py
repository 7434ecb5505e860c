"""Duplicate images under other names: report, fail or drop, with real files and real Beam."""
import json
import shutil

import pytest

from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.duplicates import DuplicateImagesError
from tests.components.image_example_gen.test_bad_input import nothing_left
from tests.components.image_example_gen.test_bad_input import png
from tests.components.image_example_gen.test_bad_input import write_index

MAPPING = {'COVID': 0, 'Normal': 1}


@pytest.fixture
def data(tmp_path):
  d = tmp_path / 'data'
  for i in range(8):
    png(str(d / f'img{i}.png'), shape=(8 + i, 8))
  shutil.copy(d / 'img0.png', d / 'copy-of-0.png')  # the same image, another name and class
  shutil.copy(d / 'img1.png', d / 'zz-copy-of-1.png')
  rows = [(f'img{i}.png', '', 'COVID' if i % 2 else 'Normal') for i in range(8)]
  rows += [('copy-of-0.png', '', 'COVID'), ('zz-copy-of-1.png', '', 'COVID')]
  return write_index(d, rows)


def ingest(csv_path, out, duplicates, splits=(SplitSpec('train', 2), SplitSpec('test', 2))):
  import apache_beam as beam

  from components.image_example_gen import ingest as ingest_lib
  # Byte-identical copies only: the images are all grey ramps of nearly one size, which are
  # near-duplicates of one another (test_near_duplicate_ingest.py covers those).
  return ingest_lib.run_ingest(
      csv_path, IngestConfig(MAPPING, splits, duplicates=duplicates, near_duplicates='off'),
      str(out), beam.Pipeline)


def test_report_keeps_all_and_lists_each_duplicate_with_its_split(data, tmp_path):
  summary = ingest(data, tmp_path / 'out', 'report')
  assert summary.examples_written == 10
  groups = {tuple(m['image_id'] for m in d['members']): d for d in summary.duplicate_images}
  assert set(groups) == {('copy-of-0.png', 'img0.png'), ('img1.png', 'zz-copy-of-1.png')}
  for d in summary.duplicate_images:
    splits = {m['split'] for m in d['members']}
    assert d['crosses_splits'] == (len(splits) > 1)
    assert {m['class_name'] for m in d['members']} <= {'COVID', 'Normal'}


def test_fail_stops_before_writing_and_names_the_rows(data, tmp_path):
  with pytest.raises(DuplicateImagesError) as e:
    ingest(data, tmp_path / 'out', 'fail')
  msg = str(e.value)
  assert "line 10 'copy-of-0.png' (COVID), line 2 'img0.png' (Normal)" in msg
  assert '--duplicates drop' in msg
  assert nothing_left(tmp_path / 'out')


def test_drop_keeps_the_first_by_key_and_quarantines_the_rest(data, tmp_path):
  summary = ingest(data, tmp_path / 'out', 'drop')
  assert (summary.rows_in, summary.examples_written, summary.rows_quarantined) == (10, 8, 2)
  with open(tmp_path / 'out' / 'quarantine.json') as f:
    records = {r['line']: r['reason'] for r in json.load(f)}
  # 'copy-of-0.png' sorts before 'img0.png', so the copy is kept and line 2 is dropped
  assert records == {2: "duplicate image: same bytes as 'copy-of-0.png' (line 10)",
                     11: "duplicate image: same bytes as 'img1.png' (line 3)"}
