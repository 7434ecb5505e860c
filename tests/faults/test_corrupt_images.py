"""Fault suite: corrupt images never reach published shards (real files, real Beam, real
LocalDagRunner and SQLite store). Each case ends as a clear error (exit 2) or a quarantine
record -- nothing broken published, no RUNNING execution, no orphan folder."""
import json
import os
import random
import subprocess

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from tests.components.image_example_gen.test_bad_input import nothing_left
from tests.support import corrupt_images
from tests.support.testutil import CLI
from tests.support.testutil import read_examples
from tests.support.testutil import REPO
from tests.support.testutil import write_csv_rows

MAPPING = {'a': 0, 'b': 1}


def _family(draw_mutation):
  """A batch of damaged PNGs/JPEGs that Pillow itself cannot decode (the independent oracle)."""
  return st.lists(draw_mutation, min_size=3, max_size=6).map(
      lambda ms: [(data, m) for data, m in ms if not corrupt_images.pillow_loads(data)])


def _write_dataset(folder, bad):
  """Six good images plus the bad ones -> (CSV path, {line: bad file name})."""
  os.makedirs(folder, exist_ok=True)
  rows, bad_lines = [], {}
  for i in range(6):
    name = f'good{i}.png'
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(corrupt_images.png_bytes(16 + i, 12, 'L', seed=i))
    rows.append({'image_path': name, 'mask_path': '', 'class': 'ab'[i % 2]})
  for k, (data, _) in enumerate(bad):
    name = f'bad{k}.png'
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(data)
    rows.append({'image_path': name, 'mask_path': '', 'class': 'ab'[k % 2]})
    bad_lines[len(rows) + 1] = name  # line 1 is the header
  return write_csv_rows(os.path.join(folder, 'index.csv'), rows), bad_lines


def _ingest(csv_path, out, **kw):
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  return ingest.run_ingest(csv_path, IngestConfig(MAPPING, (('train', 2),), **kw), str(out),
                           beam.Pipeline)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=_family(st.one_of(corrupt_images.png_mutations(), corrupt_images.jpeg_mutations())),
       name=st.integers(0, 10**9))
def test_undecodable_images_are_quarantined_or_stop_the_run_with_nothing_left(
    tmp_path_factory, bad, name):
  from components.image_example_gen import index
  folder = tmp_path_factory.mktemp(f'family{name}')
  csv_path, bad_lines = _write_dataset(str(folder / 'data'), bad)
  summary = _ingest(csv_path, folder / 'quarantined', on_bad_record='quarantine')
  with open(folder / 'quarantined' / 'quarantine.json') as f:
    quarantined = {r['line']: r for r in json.load(f)}
  assert set(quarantined) == set(bad_lines), [(m.kind, m.detail) for _, m in bad]
  for line, record in quarantined.items():
    assert record['path'].endswith(bad_lines[line]) and record['reason'].startswith('bad image')
  assert summary.rows_in == summary.examples_written + summary.rows_quarantined == len(
      bad_lines) + 6
  written = read_examples(str(folder / 'quarantined' / 'Split-train' / '*'))
  assert {ex.features.feature['image_id'].bytes_list.value[0].decode() for _, ex in written} == {
      f'good{i}.png' for i in range(6)}
  if bad_lines:
    with pytest.raises(index.IndexValidationError) as e:
      _ingest(csv_path, folder / 'failed')
    for line in bad_lines:
      assert f'line {line}: bad image' in str(e.value)
    assert nothing_left(folder / 'failed')


def test_a_corrupt_png_with_valid_crcs_stops_the_cli_run_with_nothing_left(tmp_path):
  """The adversarial case: IDAT bytes flipped, chunk CRCs recomputed, header intact."""
  from pipeline import mlmd
  data = corrupt_images.png_bytes(64, 64, 'L', seed=1)
  bad = corrupt_images.corrupt_png_idat(data, random.Random(3), flips=8)
  assert not corrupt_images.pillow_loads(bad) or not corrupt_images.png_stream_complete(bad)
  csv_path, bad_lines = _write_dataset(str(tmp_path / 'data'), [(bad, None)] * 1)
  with open(tmp_path / 'data' / 'class_mapping.json', 'w') as f:
    json.dump(MAPPING, f)
  root = tmp_path / 'root'
  done = subprocess.run([CLI, 'run', '--csv', csv_path, '--pipeline-root', str(root),
                         '--splits', 'train=2'], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 2, done.stderr[-2000:]
  (line,) = bad_lines
  assert f'line {line}: bad image: corrupt PNG data' in done.stderr
  assert 'Traceback' not in done.stderr
  store = mlmd.sqlite_store(str(root / 'metadata.sqlite'))
  # CuratedSchemaGen COMPLETE (it runs first), ImageExampleGen FAILED, not RUNNING
  assert [e.last_known_state for e in store.get_executions()] == [3, 4]
  assert not store.get_artifacts_by_type('Examples')  # nothing published
  assert not os.listdir(root / 'ImageExampleGen' / 'examples')  # no orphan folder
  # the same row under quarantine: the run completes, the row is recorded, not written
  done = subprocess.run([CLI, 'run', '--csv', csv_path, '--pipeline-root', str(root),
                         '--splits', 'train=2', '--on-bad-record', 'quarantine'],
                        capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'rows quarantined: 1' in done.stdout
