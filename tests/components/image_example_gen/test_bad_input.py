"""Bad input with real files: clear errors or quarantine records, nothing dropped silently."""
import csv
import json
import os

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
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


def options(root, **kw):
  from components.image_example_gen import files
  kw.setdefault('allowed_roots', (str(root),))
  kw.setdefault('max_pixels', 100_000)
  kw.setdefault('max_file_bytes', 1 << 20)
  kw.setdefault('verify', 'header')
  return files.CheckOptions(**kw)


def why(root, image, mask='', **kw):
  """The worker's verdict on one row of real files: '' when good, else the reasons."""
  from components.image_example_gen import files
  loaded = files.load_row(str(root / image) if image else '', str(root / mask) if mask else '',
                          options(root, **kw))
  return '; '.join(reason for _, reason in loaded.problems)


def test_each_bad_file_is_named_with_its_reason(root):
  from components.image_example_gen import files
  good = files.load_row(str(root / 'good.png'), str(root / 'mask.png'), options(root))
  assert not good.problems and good.mask_header.width == 8
  with open(root / 'good.png', 'rb') as f:
    assert good.image == f.read()  # the bytes checked are the bytes returned
  deep = files.load_row(str(root / 'deep16.png'), '', options(root))
  assert (deep.image_header.format, deep.image_header.bit_depth) == ('png', 16)
  jpeg = files.load_row(str(root / 'really-a-jpeg.png'), '', options(root))
  assert (jpeg.image_header.format, jpeg.image_header.mode) == ('jpeg', 'RGB')
  assert why(root, 'truncated.png').startswith('bad image: truncated PNG')
  assert why(root, 'empty.png') == 'bad image: empty file'
  assert why(root, 'text.png').startswith("bad image: not a PNG or JPEG: starts with b'this is ")
  assert why(root, 'noise.png').startswith('bad image: ')
  assert why(root, 'gone.png') == 'missing file: image not found'
  assert why(root, 'gone.png', 'gone-mask.png') == (
      'missing file: image not found; missing file: mask not found')
  assert why(root, 'huge.png').startswith('bad image: too large')
  assert '400x300 = 120000 pixels' in why(root, 'huge.png')
  assert '--max-pixels' in why(root, 'huge.png')
  assert why(root, 'huge.png', max_file_bytes=50) == (
      f'too large image file: {os.path.getsize(root / "huge.png")} bytes > 50 '
      '(option --max-file-bytes)')


def test_paths_outside_the_allowed_roots_are_refused_on_the_opened_file(root):
  outside = root.parent / 'outside' / 'secret.png'
  for image in ('link-out.png', '../outside/secret.png', str(outside)):
    assert why(root, image).startswith('outside allowed roots: the image resolves (symlinks '
                                       f"followed) outside ['{root}']"), image
  assert why(root, 'good.png', 'link-out.png').startswith('outside allowed roots: the mask')
  # an explicitly allowed root lets them in
  assert why(root, 'link-out.png', allowed_roots=(str(root), str(outside.parent))) == ''
  # a symlinked root folder is resolved once; files inside it are inside
  os.symlink(root, root.parent / 'root-link')
  assert why(root.parent / 'root-link', 'good.png') == ''


def test_special_files_never_block_and_are_refused(root):
  os.mkfifo(root / 'fifo.png')
  assert why(root, 'fifo.png') == 'not a regular file: the image is a FIFO'
  os.symlink('/dev/zero', root / 'zero.png')
  assert why(root, 'zero.png', allowed_roots=(str(root), '/dev')) == (
      'not a regular file: the image is a character device')
  assert why(root, 'zero.png').startswith('outside allowed roots')
  os.mkdir(root / 'folder.png')
  assert why(root, 'folder.png') == 'not a regular file: the image is a directory'


def _ingest(csv_path, out, **kw):
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  from components.image_example_gen.config import SplitSpec
  return ingest.run_ingest(csv_path, IngestConfig(MAPPING, (SplitSpec('train', 1),), **kw),
                           str(out), beam.Pipeline)


def nothing_left(out):
  """Nothing published and nothing left behind: no shard, no staging folder."""
  return not out.exists() or not [p for p in out.rglob('*')]


def test_fail_policy_lists_every_bad_row_and_publishes_nothing(root, tmp_path):
  csv_path = write_index(root, [('good.png', '', 'COVID'), ('truncated.png', '', 'Normal'),
                                ('good.png', '', 'COVID'), ('deep16.png', 'gone.png', 'Normal'),
                                ('link-out.png', '', 'COVID')])
  out = tmp_path / 'out'
  with pytest.raises(index.IndexValidationError) as e:
    _ingest(csv_path, out)
  msg = str(e.value)
  # a row-level problem in the CSV stops the run before any Beam work
  assert "line 4: duplicate image_id: 'good.png' is also on line 2" in msg
  assert nothing_left(out)
  # file problems are found by the workers, all of them listed, and nothing is published
  csv_path = write_index(root, [('good.png', '', 'COVID'), ('truncated.png', '', 'Normal'),
                                ('deep16.png', 'gone.png', 'Normal'), ('link-out.png', '', 'COVID')])
  with pytest.raises(index.IndexValidationError) as e:
    _ingest(csv_path, out)
  msg = str(e.value)
  assert '3 of 4 rows are bad and nothing was written' in msg
  # paths as the CSV writes them, so they can be found there
  assert 'line 3: bad image: truncated PNG' in msg and '(truncated.png)' in msg
  assert 'line 4: missing file: mask not found (gone.png)' in msg
  assert 'line 5: outside allowed roots: the image resolves' in msg
  assert nothing_left(out)


def test_quarantine_policy_writes_good_rows_and_records_bad_ones(root, tmp_path):
  from tests.support.testutil import read_examples
  csv_path = write_index(root, [('good.png', 'mask.png', 'COVID'), ('truncated.png', '', 'Normal'),
                                ('deep16.png', '', 'Normal'), ('link-out.png', '', 'COVID'),
                                ('../outside/secret.png', '', 'COVID'),
                                ('empty.png', 'gone.png', 'Normal')])
  out = tmp_path / 'out'
  summary = _ingest(csv_path, out, on_bad_record='quarantine')
  assert (summary.rows_in, summary.examples_written, summary.rows_quarantined) == (6, 2, 4)
  with open(out / 'quarantine.json') as f:
    records = json.load(f)
  # each record names the path as written in the CSV; a row with two problems lists both
  assert [(r['line'], r['path']) for r in records] == [
      (3, 'truncated.png'), (5, 'link-out.png'), (6, '../outside/secret.png'), (7, 'empty.png')]
  assert records[3]['problems'] == [
      {'path': 'empty.png', 'reason': 'bad image: empty file'},
      {'path': 'gone.png', 'reason': 'missing file: mask not found'}]
  assert 'problems' not in records[0]
  ids = sorted(ex.features.feature['image_id'].bytes_list.value[0]
               for _, ex in read_examples(str(out / 'Split-train' / '*')))
  assert ids == [b'deep16.png', b'good.png']
  assert sorted(os.listdir(out)) == ['Split-train', 'ingest_summary.json', 'quarantine.json',
                                     'split_fingerprints.jsonl.gz', 'split_manifest.json']


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
    checked = index.read_index(str(root / 'fuzz.csv'), MAPPING)
  except index.IndexValidationError as e:
    assert str(e).startswith(str(root / 'fuzz.csv') + ': ')
    assert len(str(e)) > len(str(root / 'fuzz.csv')) + 10
    return
  assert checked.rows_in == len(checked.rows) + len(checked.quarantined)
  assert all(p.reason for p in checked.quarantined)
  assert len({r.image_id for r in checked.rows}) == len(checked.rows)
