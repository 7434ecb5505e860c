"""Bad input with real files: clear errors or quarantine records, nothing dropped silently."""
import csv
import json
import os

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import index

MAPPING = {'COVID': 0, 'Normal': 1}
HEADER = ['image_path', 'mask_path', 'class']


def png(path, shape=(8, 8), dtype=np.uint8, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.arange(np.prod(shape)).reshape(shape).astype(dtype), mode=mode).save(path)
  return path


@pytest.fixture
def root(tmp_path):
  """A data root with one good file of each kind and one bad file of each kind."""
  d = tmp_path / 'data'
  png(str(d / 'good.png'))
  png(str(d / 'mask.png'))
  Image.fromarray(np.zeros((8, 8), np.uint16) + 4000).save(str(d / 'deep16.png'))
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(str(d / 'really-a-jpeg.png'), 'JPEG')
  with open(d / 'good.png', 'rb') as f:
    whole = f.read()
  (d / 'truncated.png').write_bytes(whole[:len(whole) // 2])
  (d / 'empty.png').write_bytes(b'')
  (d / 'text.png').write_text('this is not an image')
  (d / 'noise.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(40))
  png(str(d / 'huge.png'), shape=(300, 400))
  secret = tmp_path / 'outside' / 'secret.png'
  png(str(secret))
  os.symlink(secret, d / 'link-out.png')
  return d


def write_index(d, rows):
  with open(d / 'index.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(HEADER)
    w.writerows(rows)
  return str(d / 'index.csv')


def reasons(csv_path, **kw):
  checked = index.read_index(csv_path, MAPPING, quarantine=True, max_pixels=100_000, **kw)
  assert checked.rows_in == len(checked.rows) + len(checked.quarantined)
  return checked, {p.line: p.reason for p in checked.quarantined}


def test_each_bad_file_is_named_with_its_reason(root):
  csv_path = write_index(root, [
      ('good.png', 'mask.png', 'COVID'),        # 2 ok
      ('deep16.png', '', 'Normal'),              # 3 ok: 16-bit PNG
      ('really-a-jpeg.png', '', 'Normal'),       # 4 ok: a JPEG named .png
      ('truncated.png', '', 'COVID'),            # 5
      ('empty.png', '', 'COVID'),                # 6
      ('text.png', '', 'COVID'),                 # 7
      ('noise.png', '', 'COVID'),                # 8
      ('gone.png', '', 'COVID'),                 # 9
      ('good.png-2', 'gone-mask.png', 'COVID'),  # 10 two bad files: both reasons
      ('huge.png', '', 'COVID'),                 # 11
  ])
  checked, why = reasons(csv_path)
  assert [r.line for r in checked.rows] == [2, 3, 4]
  headers = {r.line: r.image_header for r in checked.rows}
  assert (headers[3].format, headers[3].bit_depth) == ('png', 16)
  assert (headers[4].format, headers[4].mode) == ('jpeg', 'RGB')
  assert checked.rows[0].mask_header.width == 8
  assert why[5] == 'bad image: truncated PNG: no IEND chunk at the end of the file'
  assert why[6] == 'bad image: empty file'
  assert why[7].startswith("bad image: not a PNG or JPEG: starts with b'this is ")
  assert why[8].startswith('bad image: corrupt PNG header') or why[8].startswith(
      'bad image: truncated PNG')
  assert why[9] == 'missing file: image not found'
  assert why[10] == 'missing file: image not found; missing file: mask not found'
  assert why[11] == ('too large image: 400x300 = 120000 pixels > 100000 (option --max-pixels)')


def test_paths_outside_the_allowed_roots_are_refused_even_via_symlink(root):
  outside = str(root.parent / 'outside' / 'secret.png')
  csv_path = write_index(root, [
      ('good.png', '', 'COVID'),
      ('link-out.png', '', 'COVID'),          # symlink pointing out of the root
      ('../outside/secret.png', '', 'COVID'),  # relative escape
      (outside, '', 'COVID'),                  # absolute path elsewhere
      ('good.png-x', 'link-out.png', 'COVID'),  # mask via symlink
  ])
  checked, why = reasons(csv_path)
  assert [r.line for r in checked.rows] == [2]
  for line in (3, 4, 5):
    assert why[line].startswith('outside allowed roots: the image resolves (symlinks followed) '
                                f"outside ['{root}']"), why[line]
  assert 'outside allowed roots: the mask' in why[6]
  # an explicitly allowed root lets them in
  checked, why = reasons(csv_path, allowed_roots=[str(root), str(root.parent / 'outside')])
  assert [r.line for r in checked.rows] == [2, 3, 4, 5]


def test_fail_policy_raises_before_anything_is_written(root, tmp_path):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import ingest  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.config import IngestConfig, SplitSpec  # pylint: disable=g-import-not-at-top
  csv_path = write_index(root, [('good.png', '', 'COVID'), ('truncated.png', '', 'Normal'),
                                ('good.png', '', 'COVID')])
  out = tmp_path / 'out'
  with pytest.raises(index.IndexValidationError) as e:
    ingest.run_ingest(csv_path, IngestConfig(MAPPING, (SplitSpec('train', 1),)), str(out),
                      beam.Pipeline)
  assert f'line 3: bad image: truncated PNG: no IEND chunk at the end of the file ({root}' in str(
      e.value)
  assert "line 4: duplicate image_id: 'good.png' is also on line 2" in str(e.value)
  assert not out.exists()


def test_quarantine_policy_writes_good_rows_and_records_bad_ones(root, tmp_path):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import ingest  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.config import IngestConfig, SplitSpec  # pylint: disable=g-import-not-at-top
  from tests.testutil import read_examples  # pylint: disable=g-import-not-at-top
  csv_path = write_index(root, [('good.png', 'mask.png', 'COVID'), ('truncated.png', '', 'Normal'),
                                ('deep16.png', '', 'Normal'), ('link-out.png', '', 'COVID')])
  out = tmp_path / 'out'
  summary = ingest.run_ingest(
      csv_path, IngestConfig(MAPPING, (SplitSpec('train', 1),), on_bad_record='quarantine'),
      str(out), beam.Pipeline)
  assert (summary.rows_in, summary.examples_written, summary.rows_quarantined) == (4, 2, 2)
  with open(out / 'quarantine.json') as f:
    records = json.load(f)
  assert [(r['line'], os.path.basename(r['path'])) for r in records] == [
      (3, 'truncated.png'), (5, 'link-out.png')]
  ids = sorted(ex.features.feature['image_id'].bytes_list.value[0]
               for _, ex in read_examples(str(out / 'Split-train' / '*')))
  assert ids == [b'deep16.png', b'good.png']


# Malformed CSV content: fragments that break CSV in every way we know.
_cell = st.one_of(st.sampled_from(['good.png', 'mask.png', 'gone.png', '', 'COVID', 'Normal',
                                   'Covid', '"', '""', 'a,b', '\n', ' ', '../x.png']),
                  st.text(max_size=6))
_row = st.lists(_cell, min_size=0, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_row, max_size=12), st.booleans())
def test_malformed_csv_gives_a_clear_error_or_exact_reconciliation(root, rows, with_header):
  lines = ([','.join(HEADER)] if with_header else []) + [','.join(r) for r in rows]
  text = '\n'.join(lines) + ('\n"unterminated' if len(rows) % 5 == 4 else '\n')
  (root / 'fuzz.csv').write_text(text)
  try:
    checked = index.read_index(str(root / 'fuzz.csv'), MAPPING, quarantine=True,
                               max_pixels=10**6)
  except index.IndexValidationError as e:
    assert str(e).startswith(str(root / 'fuzz.csv') + ': ')
    assert len(str(e)) > len(str(root / 'fuzz.csv')) + 10
    return
  assert checked.rows_in == len(checked.rows) + len(checked.quarantined)
  assert all(p.reason for p in checked.quarantined)
  assert len({r.image_id for r in checked.rows}) == len(checked.rows)
