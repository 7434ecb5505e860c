"""`cxr-tfx validate`: no TensorFlow, the same findings as the pipeline, the plan it will write."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import index
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import SplitSpec
from pipeline import validate
from tests.components.image_example_gen.test_bad_input import png
from tests.components.image_example_gen.test_bad_input import write_index
from tests.support.testutil import CLI
from tests.support.testutil import load_mapping
from tests.support.testutil import REPO

MAPPING = {'COVID': 0, 'Normal': 1}
PROBLEM_LINE = re.compile(r'^\s+(line \d+: .*)$', re.M)


def run_cli(*args, cwd=REPO):
  return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


def problem_lines(text, after=''):
  """The 'line N: reason (path)' lines of a run's error or of validate's problems section."""
  text = text[text.index(after):] if after else text
  return sorted(PROBLEM_LINE.findall(text), key=lambda l: int(l.split()[1].rstrip(':')))


@pytest.fixture
def data(tmp_path):
  """Every kind of bad file next to good ones (the cases of test_bad_input), in one folder."""
  d = tmp_path / 'data'
  for i in range(6):
    png(str(d / f'good{i}.png'), shape=(8, 8 + i))
  png(str(d / 'mask.png'))
  with open(d / 'good0.png', 'rb') as f:
    whole = f.read()
  (d / 'truncated.png').write_bytes(whole[:len(whole) // 2])
  (d / 'empty.png').write_bytes(b'')
  (d / 'text.png').write_text('this is not an image')
  png(str(d / 'huge.png'), shape=(300, 400))
  (d / 'big.png').write_bytes(whole + b'\0' * 20000)  # over --max-file-bytes 16000
  secret = tmp_path / 'outside' / 'secret.png'
  png(str(secret))
  os.symlink(secret, d / 'link-out.png')
  os.mkfifo(d / 'fifo.png')
  os.mkdir(d / 'folder.png')
  (d / 'class_mapping.json').write_text(json.dumps(MAPPING))
  return d


FILE_ROWS = [('good0.png', 'mask.png', 'COVID'), ('good1.png', '', 'Normal'),
             ('truncated.png', '', 'Normal'), ('empty.png', 'gone-mask.png', 'COVID'),
             ('text.png', '', 'Normal'), ('huge.png', '', 'COVID'), ('big.png', '', 'Normal'),
             ('link-out.png', '', 'COVID'), ('fifo.png', '', 'Normal'),
             ('folder.png', '', 'COVID'), ('gone.png', '', 'Normal'),
             ('good2.png', 'text.png', 'COVID'), ('good3.png', '', 'Normal')]
FILE_OPTIONS = ['--max-pixels', '100000', '--max-file-bytes', '16000', '--splits', 'train=1']


def test_validate_imports_no_tensorflow_tfx_or_beam(demo_dataset):
  code = ('import sys\nfrom pipeline import cli\n'
          f'code = cli.main(["validate", "--csv", {demo_dataset.csv_path!r}, "--quiet"])\n'
          'heavy = sorted(m for m in sys.modules if m.split(".")[0] in '
          '("tensorflow", "tfx", "apache_beam"))\n'
          'assert code == 0 and not heavy, (code, heavy)')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
  assert 'problems: none' in done.stdout and done.stderr == ''  # --quiet: no progress


def test_the_plan_is_the_table_run_writes(demo_dataset, balanced_run):
  """balanced_run: the whole pipeline on the same data with train=3,test=1."""
  from components.image_example_gen import summary
  done = run_cli('validate', '--csv', demo_dataset.csv_path, '--splits', 'train=3,test=1')
  assert done.returncode == 0, done.stderr
  assert summary.format_shard_table(balanced_run.summary) in done.stdout
  assert 'planned shards (seed 0, splits train=3,test=1), as `run` will write them:' in done.stdout
  assert f'would write {balanced_run.summary.examples_written} examples' in done.stdout
  assert done.stderr.startswith(f'cxr-tfx validate: {demo_dataset.num_rows} rows of ')


def test_file_problems_are_the_ones_run_reports(data):
  """The same bad files through `cxr-tfx run` and `cxr-tfx validate`: the same lines."""
  csv_path = write_index(data, FILE_ROWS)
  checked = run_cli('validate', '--csv', csv_path, '--verify', 'full', *FILE_OPTIONS)
  ran = run_cli('run', '--csv', csv_path, '--verify', 'full', '--pipeline-root',
                str(data.parent / 'out'), *FILE_OPTIONS)
  assert ran.returncode == 2 and checked.returncode == 2, (ran.stderr, checked.stderr)
  found = problem_lines(checked.stdout, after='\nproblems:')
  assert len(found) == 10 and found == problem_lines(ran.stderr), (checked.stdout, ran.stderr)
  for expected in ('line 4: bad image: truncated PNG', 'line 5: bad image: empty file; '
                   'missing file: mask not found', 'line 9: outside allowed roots: the image '
                   'resolves', 'line 10: not a regular file: the image is a FIFO',
                   'line 13: bad mask: not a PNG or JPEG'):
    assert any(l.startswith(expected) for l in found), expected
  assert '10 of 13 rows are bad, so `run` would write nothing' in checked.stderr
  assert 'problems: 10 bad row(s) of 13; --on-bad-record fail' in checked.stdout


def _ingest(csv_path, config, out):
  import apache_beam as beam

  from components.image_example_gen import ingest
  return ingest.run_ingest(csv_path, config, str(out), beam.Pipeline)


def test_index_problems_are_the_ones_the_launcher_reports(data):
  csv_path = write_index(data, [('good0.png', '', 'COVID'), ('good1.png', '', 'Covid'),
                                ('good0.png', '', 'Normal'), ('', '', 'COVID'),
                                ('../outside/secret.png', '', 'Normal'),
                                ('good2.png', 'x', 'COVID', 'extra'), ('good3.png', '', 'Normal')])
  config = IngestConfig(MAPPING, (SplitSpec('train', 1),))
  with pytest.raises(index.IndexValidationError) as ran:
    _ingest(csv_path, config, data.parent / 'out')
  found = validate.validate(csv_path, config, workers=1)
  assert found.index_problems == ran.value.problems and len(found.index_problems) == 5
  assert found.would_fail and not found.file_problems


def test_quarantine_and_dropped_duplicates_are_what_run_quarantines(data):
  shutil.copy(data / 'good1.png', data / 'copy-of-1.png')
  rows = FILE_ROWS + [('copy-of-1.png', '', 'COVID'), ('good4.png', '', 'COVID'),
                      ('good5.png', '', 'Normal'), ('Covid.png', '', 'Covid')]
  csv_path = write_index(data, rows)
  config = IngestConfig(MAPPING, (SplitSpec('train', 1), SplitSpec('test', 1)),
                        on_bad_record='quarantine', duplicates='drop', max_pixels=100000,
                        max_file_bytes=16000, verify='full')
  summary = _ingest(csv_path, config, data.parent / 'out')
  with open(data.parent / 'out' / 'quarantine.json') as f:
    quarantined = json.load(f)
  found = validate.validate(csv_path, config, workers=2)
  assert not found.would_fail
  assert sorted((p.to_dict() for p in found.bad_rows + found.dropped),
                key=lambda p: p['line']) == quarantined
  assert found.examples_to_write == summary.examples_written == 5
  planned = {(s.split, s.index): s.class_counts() for s in found.shards}
  assert planned == {(s['split'], s['index']): s['class_counts'] for s in summary.shards}
  report = validate.format_report(found)
  assert 'would be quarantined (--on-bad-record quarantine)' in report
  assert "duplicate image: same bytes as 'copy-of-1.png' (line 15)" in report


def test_duplicates_fail_gives_the_runs_message(data):
  shutil.copy(data / 'good1.png', data / 'copy-of-1.png')
  csv_path = write_index(data, [('good0.png', '', 'COVID'), ('good1.png', '', 'Normal'),
                                ('copy-of-1.png', '', 'COVID'), ('good2.png', '', 'Normal')])
  from components.image_example_gen.duplicates import DuplicateImagesError
  config = IngestConfig(MAPPING, (SplitSpec('train', 1), SplitSpec('test', 1)),
                        duplicates='fail')
  with pytest.raises(DuplicateImagesError) as ran:
    _ingest(csv_path, config, data.parent / 'out')
  found = validate.validate(csv_path, config, workers=1)
  assert found.would_fail
  assert str(ran.value) in validate.format_report(found)


def test_unusable_csv_and_mapping_fail_as_in_run(data, tmp_path):
  (data / 'cols.csv').write_text('path,class\na.png,COVID\n')
  config = IngestConfig(MAPPING)
  with pytest.raises(index.IndexValidationError) as ran:
    _ingest(str(data / 'cols.csv'), config, tmp_path / 'out')
  with pytest.raises(index.IndexValidationError) as checked:
    validate.validate(str(data / 'cols.csv'), config)
  assert str(checked.value) == str(ran.value)
  done = run_cli('validate', '--csv', str(data / 'cols.csv'))
  assert done.returncode == 2 and "missing column(s) ['image_path', 'mask_path']" in done.stderr
  done = run_cli('validate', '--csv', str(data / 'nothing.csv'))
  assert done.returncode == 2
  assert 'the CSV index does not exist (option --csv)' in done.stderr
  (data / 'bad_mapping.json').write_text('{"COVID": 1}')
  done = run_cli('validate', '--csv', str(data / 'cols.csv'), '--class-mapping',
                 str(data / 'bad_mapping.json'))
  assert done.returncode == 2 and 'labels must be exactly 0..0' in done.stderr
  done = run_cli('validate', '--csv', 'gs://bucket/index.csv')
  assert done.returncode == 2 and 'validate reads a local CSV' in done.stderr


def test_mask_findings_are_counted_as_the_run_counts_them(tmp_path):
  d = tmp_path / 'masks'
  png(str(d / 'a.png'), shape=(16, 16))
  png(str(d / 'b.png'), shape=(16, 16))
  grey = np.zeros((16, 16), np.uint8)
  grey[2:9, 2:9], grey[0, 0] = 255, 7
  Image.fromarray(grey).save(d / 'grey.png')
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / 'empty.png')
  csv_path = write_index(d, [('a.png', 'grey.png', 'COVID'), ('b.png', 'empty.png', 'Normal')])
  found = validate.validate(csv_path, IngestConfig(MAPPING, (SplitSpec('train', 1),)),
                            workers=1)
  assert not found.would_fail
  assert found.mask_counts['COVID']['not_binary'] == 1
  assert found.mask_counts['Normal']['empty'] == 1
  failing = validate.validate(csv_path, IngestConfig(MAPPING, (SplitSpec('train', 1),),
                                                     mask_check='fail'), workers=1)
  assert [p.line for p in failing.file_problems] == [2] and failing.would_fail
  assert failing.file_problems[0].reason.startswith('bad mask: mask is not binary')


def test_processes_and_inline_agree(demo_dataset):
  config = IngestConfig(load_mapping(demo_dataset.class_mapping_path))
  one = validate.validate(demo_dataset.csv_path, config, workers=1)
  two = validate.validate(demo_dataset.csv_path, config, workers=2)
  assert validate.format_report(one).split('\nfiles:')[0] == validate.format_report(
      two).split('\nfiles:')[0]
  assert [s.rows for s in one.shards] == [s.rows for s in two.shards]
  assert one.rows_in == demo_dataset.num_rows and not one.would_fail
