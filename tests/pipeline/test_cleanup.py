"""Failed runs leave nothing behind: no RUNNING execution in ML Metadata, no unpublished output
folder, no lock on the pipeline root (real LocalDagRunner, real SQLite store, real files).
Killed and concurrent runs: tests/pipeline/test_concurrent_runs.py."""
import fcntl
import os

import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import read_csv_rows
from tests.support.testutil import write_csv_rows


def _states(metadata_path):
  from pipeline import mlmd
  return [(e.id, e.last_known_state, e.custom_properties['cxr_failure'].string_value
           if 'cxr_failure' in e.custom_properties else '')
          for e in mlmd.sqlite_store(metadata_path).get_executions()]


@pytest.mark.parametrize('case', ['csv_error_in_driver', 'bad_file_in_workers'])
def test_a_failed_run_marks_its_executions_failed_and_removes_its_outputs(
    case, demo_dataset, tmp_path):
  """A CSV-level error raises in ImageExampleGen's driver (TFX leaves the execution RUNNING);
  a bad image raises in its executor after the Beam job wrote to staging."""
  from components.image_example_gen import index
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  rows = read_csv_rows(demo_dataset.csv_path)
  if case == 'csv_error_in_driver':
    csv_path = write_csv_rows(os.path.join(demo_dataset.root, 'no-mask-column.csv'),
                              [{'image_path': r['image_path'], 'class': r['class']} for r in rows],
                              fieldnames=('image_path', 'class'))
  else:
    rows[5]['image_path'] = rows[5]['image_path'] + '.missing.png'
    csv_path = write_csv_rows(os.path.join(demo_dataset.root, 'one-bad-file.csv'), rows)
  root = tmp_path / 'root'
  with pytest.raises(index.IndexValidationError):
    run_local(PipelineOptions(str(root)), DataSource(csv_path=csv_path),
              IngestConfig(load_mapping(demo_dataset.class_mapping_path)))
  states = _states(str(root / 'metadata.sqlite'))
  # CuratedSchemaGen runs first and completes (3); ImageExampleGen is FAILED (4), not RUNNING
  assert [state for _, state, _ in states] == [3, 4], states
  if case == 'csv_error_in_driver':
    assert "missing column(s) ['mask_path']" in states[1][2]
  outputs = root / 'ImageExampleGen' / 'examples'
  assert not outputs.exists() or not os.listdir(outputs)
  # the root's lock is released by the exception, its file emptied: the end of a run, not a kill
  assert (root / '.cxr-tfx.lock').read_text() == ''
  fd = os.open(root / '.cxr-tfx.lock', os.O_RDWR)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
  finally:
    os.close(fd)
