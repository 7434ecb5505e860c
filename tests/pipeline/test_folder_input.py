"""Image folders (--image-dir) on the command line: the class mapping is honoured (a folder it
misses is refused, naming both sides), the labels are said on the first lines, `validate` and
`compile` take a folder, and split membership (--split-manifest, --fresh-splits) is predicted by
`validate` with the pipeline's own assignment code. No pipeline run: see test_cli.py and
test_kubeflow_runner.py for what reaches the runners."""
import json
import os
import subprocess

import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import assignment
from components.image_example_gen import index
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import SplitSpec
from pipeline import cli
from pipeline import validate
from tests.support.testutil import CLI
from tests.support.testutil import refused_without_tensorflow
from tests.support.testutil import REPO

CLASSES = {'COVID': 4, 'Normal': 6, 'Viral Pneumonia': 2}  # class folder -> images


def _png(path, seed):
  """A tiny PNG whose bytes (so sha256) differ with ``seed``."""
  os.makedirs(os.path.dirname(str(path)), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 255, (8, 8)).astype(np.uint8)
  Image.fromarray(pixels).save(str(path), 'PNG')
  return str(path)


@pytest.fixture
def xrays(tmp_path):
  """DIR/<class>/images/*.png (the COVID-19 Radiography layout), masks for some."""
  d = tmp_path / 'xrays'
  seed = 0
  for name, n in CLASSES.items():
    for k in range(n):
      seed += 1
      _png(d / name / 'images' / f'{name}-{k}.png', seed)
      if k % 2 == 0:
        _png(d / name / 'masks' / f'{name}-{k}.png', 1000 + seed)
  return d


def _mapping(tmp_path, mapping, name='class_mapping.json'):
  path = tmp_path / name
  path.write_text(json.dumps(mapping))
  return str(path)


def run_cli(*args, cwd=REPO):
  return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


class _Stop(Exception):
  pass


def _first_lines(monkeypatch, capsys, argv):
  """`cxr-tfx run ...` in-process up to where TensorFlow would load -> its stderr lines."""
  def stop(*args, **kwargs):  # pylint: disable=unused-argument
    raise _Stop()
  monkeypatch.setattr(cli, '_load_libraries', stop)
  with pytest.raises(_Stop):
    cli.main(argv)
  return capsys.readouterr().err.splitlines()


def test_a_mapping_that_misses_a_class_folder_is_refused_before_tensorflow(xrays, tmp_path):
  """run and validate refuse at once, naming the folders the mapping misses, the mapping's
  classes and the folders -- not one 'unknown class' problem per image."""
  mapping = _mapping(tmp_path, {'COVID': 0, 'Normal': 1, 'Lung_Opacity': 2})
  stderr = refused_without_tensorflow(['run', '--image-dir', str(xrays), '--class-mapping',
                                       mapping, '--pipeline-root', str(tmp_path / 'out')])
  expected = ("the class mapping (option --class-mapping) does not name the class folder(s) "
              f"['Viral Pneumonia'] of {xrays}; the mapping names ['COVID', 'Lung_Opacity', "
              "'Normal'], the folders are ['COVID', 'Normal', 'Viral Pneumonia']")
  assert f'cxr-tfx run: error: {expected}' in stderr
  assert 'unknown class' not in stderr
  assert not os.path.exists(tmp_path / 'out')
  checked = run_cli('validate', '--image-dir', str(xrays), '--class-mapping', mapping)
  assert checked.returncode == 2 and f'cxr-tfx validate: error: {expected}' in checked.stderr
  assert checked.stdout == ''  # refused before any file is checked


def test_run_says_which_label_each_class_folder_got(xrays, tmp_path, monkeypatch, capsys):
  lines = _first_lines(monkeypatch, capsys, ['run', '--image-dir', str(xrays), '--pipeline-root',
                                             str(tmp_path / 'out')])
  assert lines[0].startswith('cxr-tfx run: CuratedSchemaGen → ImageExampleGen → ')
  assert f'on 12 images of the image folder {xrays}; outputs in ' in lines[0]
  assert lines[1] == ('classes: no --class-mapping, so labels follow the sorted class folders: '
                      'COVID=0, Normal=1, Viral Pneumonia=2 (pass --class-mapping to fix them)')
  # A mapping naming every folder fixes the labels: nothing to say. One with a class no folder
  # has (a span may lack a class) is allowed, and said.
  full = _mapping(tmp_path, {'Normal': 0, 'COVID': 1, 'Viral Pneumonia': 2})
  lines = _first_lines(monkeypatch, capsys, ['run', '--image-dir', str(xrays), '--class-mapping',
                                             full, '--pipeline-root', str(tmp_path / 'out')])
  assert not any(l.startswith('classes:') for l in lines), lines
  more = _mapping(tmp_path, {'Normal': 0, 'COVID': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3,
                             'Other': 4}, 'more.json')
  lines = _first_lines(monkeypatch, capsys, ['run', '--image-dir', str(xrays), '--class-mapping',
                                             more, '--pipeline-root', str(tmp_path / 'out')])
  assert lines[1] == (f'classes: the class mapping {more} names 2 class(es) with no folder in '
                      f'{xrays}: Lung_Opacity=3, Other=4; their labels stay reserved, and no '
                      'examples of them are written')


def _manifest(rows, splits, seed, path):
  """A split manifest as a run publishes it: assignment.assign's, written by its to_json."""
  dealt = assignment.assign(rows, splits, seed)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(dealt.manifest.to_json())
  return dealt


def _hashed_rows(folder):
  """The folder's rows with their images' sha256 (validate's check: files.load_row)."""
  found = validate.validate(index.Source(image_dir=str(folder)), IngestConfig({}), workers=1)
  return sorted((r for s in found.shards for r in s.rows), key=lambda r: r.line)


def test_run_says_the_membership_it_keeps_from_a_manifest(xrays, tmp_path, monkeypatch, capsys):
  splits = (SplitSpec('train', 2), SplitSpec('test', 1))
  manifest = str(tmp_path / 'split_manifest.json')
  _manifest(_hashed_rows(xrays)[:9], splits, 5, manifest)
  lines = _first_lines(monkeypatch, capsys, [
      'run', '--image-dir', str(xrays), '--pipeline-root', str(tmp_path / 'out'),
      '--splits', 'train=2,test=1', '--split-manifest', manifest])
  assert lines[2] == f'splits: membership of 9 images kept from {manifest} (seed 5)'
  lines = _first_lines(monkeypatch, capsys, ['run', '--image-dir', str(xrays), '--pipeline-root',
                                             str(tmp_path / 'out'), '--fresh-splits'])
  assert lines[2].startswith('splits: --fresh-splits: published split membership is ignored')
  (tmp_path / 'not-a-manifest.json').write_text('{"images": {}}')
  assert cli.main(['run', '--image-dir', str(xrays), '--pipeline-root', str(tmp_path / 'out'),
                   '--split-manifest', str(tmp_path / 'not-a-manifest.json')]) == 2
  err = capsys.readouterr().err
  assert 'not a cxr-tfx split manifest' in err and '(option --split-manifest)' in err


def test_split_manifest_and_fresh_splits_together_are_refused(xrays, tmp_path):
  for command in (['run', '--image-dir', str(xrays), '--pipeline-root', str(tmp_path / 'out')],
                  ['validate', '--image-dir', str(xrays)],
                  ['compile', '--image', 'r/cxr-tfx:t', '--output', str(tmp_path / 'p.yaml'),
                   '--pipeline-root', 'gs://b/r', '--csv', 'gs://b/index.csv',
                   '--class-mapping', _mapping(tmp_path, {'COVID': 0, 'Normal': 1})]):
    done = run_cli(*command, '--split-manifest', 'gs://b/split_manifest.json', '--fresh-splits')
    assert done.returncode == 2, (command, done.stderr)
    assert ('give --split-manifest (keep the split membership it publishes) or --fresh-splits '
            '(ignore published membership and deal every image afresh), not both.'
            in done.stderr), done.stderr
  assert not os.path.exists(tmp_path / 'out') and not os.path.exists(tmp_path / 'p.yaml')


def test_validate_checks_a_folder_as_it_checks_the_csv(demo_dataset):
  """The demo data's folder and its CSV: the same classes, files and planned shards (images are
  dealt by content, so the folder's image ids do not matter)."""
  folder = os.path.join(demo_dataset.root, 'COVID-19_Radiography_Dataset')
  by_folder = run_cli('validate', '--image-dir', folder, '--class-mapping',
                      demo_dataset.class_mapping_path, '--splits', 'train=3,test=1')
  by_csv = run_cli('validate', '--csv', demo_dataset.csv_path, '--splits', 'train=3,test=1')
  assert by_folder.returncode == by_csv.returncode == 0, by_folder.stderr + by_csv.stderr
  assert by_folder.stderr.startswith(
      f'cxr-tfx validate: {demo_dataset.num_rows} images of {folder}, class mapping '
      f'{demo_dataset.class_mapping_path}: every image and mask')

  def plan(out):
    return out[:out.index('\nfiles:')] + out[out.index('\nplanned'):]
  assert plan(by_folder.stdout) == plan(by_csv.stdout)
  assert 'problems: none' in by_folder.stdout
  unmapped = run_cli('validate', '--image-dir', folder, '--quiet')
  assert unmapped.returncode == 0 and unmapped.stderr == ''
  noisy = run_cli('validate', '--image-dir', folder)
  assert noisy.stderr.splitlines()[1] == (
      'classes: no --class-mapping, so labels follow the sorted class folders: COVID=0, '
      'Lung_Opacity=1, Normal=2, Viral Pneumonia=3 (pass --class-mapping to fix them)')
  for bad, words in ((['--image-dir', 'gs://b/xrays'], 'validate reads a local image folder'),
                     (['--image-dir', folder, '--csv', demo_dataset.csv_path],
                      'validate needs --csv (the CSV index to check) or --image-dir'),
                     (['--image-dir', folder, '--span', '1'], '--span 1 needs a span pattern')):
    done = run_cli('validate', *bad)
    assert done.returncode == 2 and words in done.stderr, (bad, done.stderr)


def test_validate_predicts_which_images_keep_their_split(xrays, tmp_path):
  """A manifest of 9 of the images (written by the pipeline's own code), then 2 images added
  and 1 removed: validate keeps each of the 8 left in its published split, deals the 5 others
  as new (3 not in the manifest, 2 added) and counts the one missing."""
  splits = (SplitSpec('train', 2), SplitSpec('test', 1))
  rows = _hashed_rows(xrays)
  published = _manifest(rows[:9], splits, 5, tmp_path / 'split_manifest.json').manifest
  gone = rows[0]
  os.remove(gone.image_path)
  _png(xrays / 'COVID' / 'images' / 'COVID-new.png', 501)
  _png(xrays / 'Normal' / 'images' / 'Normal-new.png', 502)
  manifest = str(tmp_path / 'split_manifest.json')

  config = IngestConfig({}, splits, split_manifest=manifest)
  found = validate.validate(index.Source(image_dir=str(xrays)), config, workers=1)
  assert not found.would_fail and found.examples_to_write == 13
  for shard in found.shards:
    for row in shard.rows:
      if row.image_sha256 in published.images:
        assert published.images[row.image_sha256][0] == shard.split, row.image_id
  assert (found.membership['kept'], found.membership['new'], found.membership['missing']) == (
      8, 5, 1)

  done = run_cli('validate', '--image-dir', str(xrays), '--splits', 'train=2,test=1',
                 '--split-manifest', manifest)
  assert done.returncode == 0, done.stderr
  assert f'splits: membership of 9 images kept from {manifest} (seed 5)' in done.stderr
  line = next(l for l in done.stdout.splitlines() if l.startswith('membership:'))
  assert line.startswith(f'membership: 8 images keep their split from {manifest} (seed 5), '
                         '5 new (train ')
  assert line.endswith(", 1 of the manifest's 9 images missing from this input")
  assert 'planned shards (seed 0, splits train=2,test=1), as `run` will write them:' in done.stdout
  # the per split and class counts are the shard table's, as without a manifest
  assert 'train  (all shards)' in done.stdout and 'test   (all shards)' in done.stdout

  fresh = run_cli('validate', '--image-dir', str(xrays), '--splits', 'train=2,test=1',
                  '--fresh-splits')
  assert fresh.returncode == 0, fresh.stderr
  assert ('membership: --fresh-splits: published split membership is ignored; every image is '
          'dealt afresh') in fresh.stdout
  none = run_cli('validate', '--image-dir', str(xrays), '--splits', 'train=2,test=1')
  assert 'membership: no --split-manifest, so every image is dealt afresh here' in none.stdout
  remote = run_cli('validate', '--image-dir', str(xrays), '--split-manifest',
                   'gs://b/split_manifest.json')
  assert remote.returncode == 2 and 'validate reads a local split manifest' in remote.stderr
  other = run_cli('validate', '--image-dir', str(xrays), '--splits', 'train=2,eval=1',
                  '--split-manifest', manifest)
  assert other.returncode == 2, other.stderr
  assert "the split manifest has split(s) ['test']" in other.stderr + other.stdout
