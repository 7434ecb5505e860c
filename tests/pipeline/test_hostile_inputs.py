"""Hostile inputs from issue #29's adversarial run (defects 7-9): each is refused in one clear
line, naming the path and the option, before anything heavy loads -- or, where the input is
fine, the run completes. Real files, real FIFOs and devices, the real CLI and LocalDagRunner."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.support.testutil import refused_without_tensorflow
from tests.support.testutil import REPO


@pytest.fixture()
def mapping(demo_dataset):
  return demo_dataset.class_mapping_path


def test_a_fifo_or_a_device_as_the_csv_is_refused_not_waited_on(tmp_path, demo_dataset,
                                                                  mapping):
  """A FIFO hung `run` and `validate`; /dev/urandom read until MemoryError."""
  fifo = tmp_path / 'index.csv'
  os.mkfifo(fifo)
  inputs = ['--csv', str(fifo), '--class-mapping', mapping]
  for argv in (['validate', *inputs], ['run', *inputs, '--pipeline-root', str(tmp_path)]):
    err = refused_without_tensorflow(argv, timeout=60)
    assert f'{fifo}: the CSV index is a FIFO (named pipe)' in err and '(option --csv)' in err
  err = refused_without_tensorflow(['validate', '--csv', '/dev/urandom', '--class-mapping',
                                    mapping], timeout=60)
  assert 'the CSV index is a character device' in err


def test_a_device_as_the_class_mapping_is_refused(demo_dataset):
  err = refused_without_tensorflow(['validate', '--csv', demo_dataset.csv_path,
                                    '--class-mapping', '/dev/zero'], timeout=60)
  assert 'the class mapping /dev/zero is a character device' in err
  assert '(option --class-mapping)' in err


def test_a_fifo_among_the_spans_is_refused(tmp_path, demo_dataset, mapping):
  shutil.copy(demo_dataset.csv_path, tmp_path / 'index-1.csv')
  os.mkfifo(tmp_path / 'index-2.csv')  # the newest span
  err = refused_without_tensorflow(['validate', '--csv', str(tmp_path / 'index-{SPAN}.csv'),
                                    '--class-mapping', mapping], timeout=60)
  assert 'index-2.csv: the CSV index is a FIFO' in err


def test_a_file_the_span_pattern_cannot_read_is_refused_by_validate_and_run(tmp_path, mapping,
                                                                            demo_dataset):
  shutil.copy(demo_dataset.csv_path, tmp_path / 'index-1.csv')
  (tmp_path / 'index-2x.csv').write_text('image_path,mask_path,class\n')
  pattern = str(tmp_path / 'index-{SPAN}.csv')
  for argv in (['validate', '--csv', pattern, '--class-mapping', mapping],
               ['run', '--csv', pattern, '--class-mapping', mapping, '--pipeline-root',
                str(tmp_path / 'out')]):
    err = refused_without_tensorflow(argv, timeout=60)
    assert "index-2x.csv matches the pattern's wildcard but has no span number" in err


def test_a_seed_beyond_int64_and_training_flags_without_train_are_refused(demo_dataset,
                                                                           mapping, tmp_path):
  err = refused_without_tensorflow(['validate', '--csv', demo_dataset.csv_path,
                                    '--class-mapping', mapping, '--seed', str(2**63)])
  assert 'seed must fit in 64 bits' in err and '(option --seed)' in err
  err = refused_without_tensorflow(['run', '--csv', demo_dataset.csv_path, '--class-mapping',
                                    mapping, '--train-steps', '5', '--pipeline-root',
                                    str(tmp_path)])
  assert '--train-steps only with --train' in err


def test_lineage_and_report_refuse_a_file_that_is_not_a_store(tmp_path):
  text = tmp_path / 'metadata.sqlite'
  text.write_text('not a database\n')
  err = refused_without_tensorflow(['lineage', '--metadata', str(text), '--latest',
                                    'examples'], timeout=60)
  assert f'{text} is not an ML Metadata store (not an SQLite database file)' in err
  err = refused_without_tensorflow(['report', '--pipeline-root', str(tmp_path)], timeout=60)
  assert 'is not an ML Metadata store' in err and '--pipeline-root or --metadata' in err


def test_validate_with_header_checks_says_what_it_did_not_check(demo_dataset, mapping):
  """validate's default (--verify header) differs from run's (full): its OK names the
  difference instead of promising what `run` (full decode) might refuse."""
  def validate(*extra):
    done = subprocess.run([sys.executable, '-m', 'pipeline.cli', 'validate', '--csv',
                           demo_dataset.csv_path, '--class-mapping', mapping, '--quiet',
                           *extra], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout
  header = validate()
  assert '`cxr-tfx run --verify header` with these options would write' in header
  assert 'Not checked: pixel data (--verify header)' in header
  full = validate('--verify', 'full')
  assert '`cxr-tfx run` with these options would write' in full
  assert 'Not checked' not in full


@pytest.fixture(scope='module')
def hostile_folder_run(demo_dataset, tmp_path_factory):
  """An image folder with a dangling symlink at its top and one among a class's images, a
  class folder whose name holds U+202E and a tab, and one split named 'all': the run used to
  stop at TFX's fingerprint (the symlink) and in Transform ('Split does not exist: train')."""
  from components.image_example_gen import folders
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  data = tmp_path_factory.mktemp('hostile') / 'xrays'
  shutil.copytree(os.path.join(os.path.dirname(demo_dataset.csv_path),
                               'COVID-19_Radiography_Dataset'), data)
  os.rename(data / 'Lung_Opacity', data / 'Lung\u202eOpacity\tX')
  os.symlink('/nonexistent/target', data / 'dangling')
  os.symlink('/nonexistent/target.png', data / 'COVID' / 'images' / 'COVID-zzz.png')
  mapping = folders.list_image_dir(str(data)).default_class_mapping()
  root = str(tmp_path_factory.mktemp('hostile_root'))
  config = IngestConfig(mapping, splits=(('all', 1),), on_bad_record='quarantine',
                        mask_size='256x256')
  return run_local(PipelineOptions(root), DataSource(image_dir=str(data)), config)


def test_a_folder_with_dangling_symlinks_and_one_split_named_all_runs(hostile_folder_run):
  result = hostile_folder_run
  summary = result.summary
  assert summary.rows_quarantined == 1  # the symlink among the images, under quarantine
  assert summary.rows_in == summary.examples_written + summary.rows_quarantined
  assert [s['name'] for s in summary.splits] == ['all']
  assert os.path.isdir(result.transform_graph_uri)  # Transform analysed 'all'


def test_control_characters_in_class_names_are_escaped_in_the_html_report(hostile_folder_run):
  with open(hostile_folder_run.balance_report, encoding='utf-8') as f:
    page = f.read()
  assert '\u202e' not in page and 'Lung\\u202eOpacity\\tX' in page
  with open(os.path.join(hostile_folder_run.examples_uri, 'class_mapping.json')) as f:
    assert 'Lung\u202eOpacity\tX' in json.load(f)  # the data keeps the name as it is
