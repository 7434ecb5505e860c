"""The cxr-tfx CLI: cheap start-up, helpful errors, demo data."""
import glob
import os
import subprocess
import sys

from tests.testutil import CLI, REPO, read_csv_rows


def run_cli(*args, cwd=REPO):
  return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


def test_help_imports_no_tensorflow():
  code = ('import sys; from pipeline import cli\n'
          'try:\n  cli.main(["--help"])\nexcept SystemExit:\n  pass\n'
          'heavy = [m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules]\n'
          'assert not heavy, heavy')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
  assert 'demo-data' in done.stdout and 'run' in done.stdout


def test_every_subcommand_explains_itself():
  for sub, words in (('run', ['--csv', '--splits', '--seed', '--beam-arg', 'per-shard']),
                     ('demo-data', ['--out', '--scale', '--missing-masks', '--seed'])):
    done = run_cli(sub, '--help')
    assert done.returncode == 0
    for word in words:
      assert word in done.stdout, (sub, word)


def test_demo_data_command_writes_the_kaggle_layout(tmp_path):
  done = run_cli('demo-data', '--out', str(tmp_path), '--scale', '0.001', '--seed', '3')
  assert done.returncode == 0, done.stderr
  rows = read_csv_rows(tmp_path / 'all_image_mask_pairs.csv')
  assert len(rows) == 21 and 'wrote 21 images' in done.stdout  # 4 + 10 + 6 + 1
  assert any(r['class'] == 'Viral Pneumonia' for r in rows)


def test_run_rejects_a_bad_index_naming_line_path_and_reason(tmp_path):
  (tmp_path / 'a.png').write_bytes(b'\x89PNG')
  (tmp_path / 'index.csv').write_text('image_path,mask_path,class\na.png,,Covid\n')
  (tmp_path / 'class_mapping.json').write_text('{"COVID": 0, "Normal": 1}')
  done = run_cli('run', '--csv', str(tmp_path / 'index.csv'),
                 '--pipeline-root', str(tmp_path / 'out'), '--splits', 'train=1')
  assert done.returncode == 2
  assert "line 2: unknown class: 'Covid' is not in the class mapping" in done.stderr
  assert '(a.png)' in done.stderr
  # TFX creates the (empty) output folder before the executor runs; no shard was written
  assert not glob.glob(str(tmp_path / 'out' / 'ImageExampleGen' / 'examples' / '*' / '*'))


def test_run_rejects_bad_splits_before_any_work(tmp_path):
  done = run_cli('run', '--splits', 'train=8,eval', '--pipeline-root', str(tmp_path))
  assert done.returncode == 2 and '--splits' in done.stderr
  assert os.listdir(tmp_path) == []
