"""`cxr-tfx predict`: which SavedModel --model names, PNG / JPEG / DICOM files read the ingest
way, the table, the JSON lines, the masks written, and the errors.

The model is real and small (as tests/components/trainer/test_serving_limits.py builds it):
the repository's preprocessing_fn traced into a Transform graph by tf.Transform (no data: it has
no analyzers), the template model at 32x32 with 2 filters (untrained), exported by
``export_serving_model`` and laid out as a pipeline root's ``serving_model/<version>/``.
The trained demo model is scored in tests/pipeline/test_train.py.
"""
import argparse
import functools
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from tests.support import dicom_files
from tests.support.testutil import REPO

SIZE = 32
CLASS_NAMES = {0: 'clear', 1: 'cloudy'}


@pytest.fixture(scope='module')
def pipeline_root(tmp_path_factory):
  """A pipeline root whose serving folder holds versions 200 and 1000 of one small model."""
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata
  from tensorflow_transform.tf_metadata import metadata_io

  from components.trainer import export
  from components.trainer import model as model_lib
  from components.transform import preprocessing
  work = tmp_path_factory.mktemp('predict')
  with open(os.path.join(REPO, 'schemas', 'schema.pbtxt')) as f:
    metadata = dataset_metadata.DatasetMetadata(text_format.Parse(f.read(), schema_pb2.Schema()))
  graph = str(work / 'transform_graph')
  preprocessing_fn = functools.partial(preprocessing.preprocessing_fn,
                                       custom_config={'image_size': [SIZE, SIZE], 'channels': 1})
  with tft_beam.Context(temp_dir=str(work / 'tmp'), force_tf_compat_v1=False):
    transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
    _ = transform_fn | tft_beam.WriteTransformFn(graph)
  metadata_io.write_metadata(metadata, os.path.join(graph, 'metadata'))
  model = model_lib.build_model((SIZE, SIZE, 1), len(CLASS_NAMES), filters=2)
  root = work / 'root'
  newest = export.export_serving_model(model, tft.TFTransformOutput(graph), CLASS_NAMES,
                                       str(root / 'serving_model' / '1000'))
  shutil.copytree(newest, root / 'serving_model' / '200')  # older, though larger as a string
  return str(root)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
  """{kind: path}: an 8-bit PNG, a JPEG, a DICOM radiograph, a PNG with the same stem in
  another folder, and a text file."""
  folder = tmp_path_factory.mktemp('images')
  pixels = (np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8)
  paths = {'png': str(folder / 'chest.png'), 'jpeg': str(folder / 'chest.jpg'),
           'dicom': str(folder / 'scan.dcm'), 'text': str(folder / 'notes.txt')}
  Image.fromarray(pixels).save(paths['png'])
  Image.fromarray(pixels).save(paths['jpeg'], quality=90)
  dicom_files.write(paths['dicom'], dicom_files.radiograph(rows=40, columns=48))
  os.makedirs(folder / 'other')
  paths['png_again'] = str(folder / 'other' / 'chest.png')
  Image.fromarray(255 - pixels).save(paths['png_again'])
  with open(paths['text'], 'w') as f:
    f.write('not an image\n')
  return paths


def _run(*argv):
  """`cxr-tfx predict ARGV` through its parser and handler -> exit code."""
  from pipeline import progress
  from pipeline.cli.predict import _predict
  from pipeline.cli.predict import add_predict_parser
  parser = argparse.ArgumentParser(prog='cxr-tfx')
  add_predict_parser(parser.add_subparsers(dest='command'))
  return _predict(parser.parse_args(['predict', *argv]), progress.Display(quiet=True))


def test_model_is_a_version_a_serving_folder_a_root_or_a_trainer_model(pipeline_root, tmp_path):
  from components.trainer.predict import find_saved_model
  from components.trainer.predict import PredictError
  serving = os.path.join(pipeline_root, 'serving_model')
  newest = os.path.join(serving, '1000')  # numerically newest: TF Serving's pick
  assert find_saved_model(pipeline_root) == newest
  assert find_saved_model(serving) == newest
  assert find_saved_model(os.path.join(serving, '200')) == os.path.join(serving, '200')
  trainer_model = tmp_path / 'Trainer' / 'model' / '7'
  shutil.copytree(newest, trainer_model / 'Format-Serving')
  assert find_saved_model(str(trainer_model)) == str(trainer_model / 'Format-Serving')
  with pytest.raises(PredictError, match='holds no SavedModel.*--model'):
    find_saved_model(str(tmp_path / 'Trainer'))
  with pytest.raises(PredictError, match='does not exist'):
    find_saved_model(str(tmp_path / 'nowhere'))


def test_files_are_read_as_ingest_stores_them(images):
  from components.image_example_gen import dicom
  from components.trainer.predict import PredictError
  from components.trainer.predict import read_for_serving
  with open(images['png'], 'rb') as f:
    assert read_for_serving(images['png']) == f.read()  # PNG and JPEG: their own bytes
  with open(images['dicom'], 'rb') as f:
    rendered = dicom.render(f.read()).png  # ImageExampleGen's rendering, defaults and all
  assert read_for_serving(images['dicom']) == rendered
  assert Image.open(io.BytesIO(rendered)).size == (48, 40)
  with pytest.raises(PredictError, match='notes.txt: not a PNG, JPEG or DICOM file'):
    read_for_serving(images['text'])


def test_the_table_names_every_class_and_the_masks_are_written(pipeline_root, images, tmp_path,
                                                               capsys):
  files = [images[k] for k in ('png', 'jpeg', 'dicom', 'png_again')]
  masks = tmp_path / 'masks'
  assert _run('--model', pipeline_root, '--masks-out', str(masks), '--batch-size', '3',
              *files) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split('\t') == ['image', 'class', 'p(clear)', 'p(cloudy)', 'mask coverage',
                                  'mask']
  written = [str(masks / n) for n in ('chest_0_mask.png', 'chest_1_mask.png', 'scan_mask.png',
                                      'chest_3_mask.png')]
  assert [line.split('\t')[0] for line in lines[1:]] == files
  assert [line.split('\t')[-1] for line in lines[1:]] == written
  for line in lines[1:]:
    _, name, clear, cloudy, coverage, mask = line.split('\t')
    assert name in CLASS_NAMES.values()
    assert abs(float(clear) + float(cloudy) - 1) < 0.01
    assert coverage.endswith('%') and 0 <= float(coverage[:-1]) <= 100
    image = Image.open(mask)
    assert (image.size, image.mode) == ((SIZE, SIZE), 'L')
    assert set(np.unique(np.asarray(image))) <= {0, 255}


def test_json_lines_hold_what_the_model_said(pipeline_root, images, capsys):
  import tensorflow as tf

  from components.trainer.predict import read_for_serving
  assert _run('--model', pipeline_root, '--json', images['png'], images['dicom']) == 0
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  serve = tf.saved_model.load(os.path.join(pipeline_root, 'serving_model', '1000')).signatures[
      'serving_default']
  out = serve(image=tf.constant([read_for_serving(images['png']),
                                 read_for_serving(images['dicom'])]))
  for line, probabilities, mask in zip(lines, out['class_probabilities'].numpy(),
                                       out['mask'].numpy()):
    assert list(line['probabilities']) == ['clear', 'cloudy']
    np.testing.assert_allclose(list(line['probabilities'].values()), probabilities, atol=1e-6)
    assert line['class'] == CLASS_NAMES[int(probabilities.argmax())]
    assert line['mask_coverage'] == pytest.approx(float(np.mean(mask > 0.5)), abs=1e-4)
    assert line['mask'] == ''
  assert [line['path'] for line in lines] == [images['png'], images['dicom']]


def test_bad_input_is_a_clear_error(pipeline_root, images, tmp_path):
  from components.errors import ConfigError
  from components.trainer.predict import PredictError
  with pytest.raises(ConfigError, match='no such image file: .*missing.png'):
    _run('--model', pipeline_root, str(tmp_path / 'missing.png'))
  with pytest.raises(PredictError, match='notes.txt: not a PNG, JPEG or DICOM'):
    _run('--model', pipeline_root, images['png'], images['text'])
  with pytest.raises(ConfigError, match='--dicom-window'):
    _run('--model', pipeline_root, '--dicom-window', 'bright', images['png'])
  with pytest.raises(SystemExit):
    _run('--model', pipeline_root, '--dicom-output', 'png4', images['png'])


def test_help_examples_parse_and_the_command_line_stays_light():
  """The examples in `predict --help` parse; the parser and the command's modules import no
  TensorFlow (it loads when the files have been checked)."""
  import shlex

  from pipeline.cli.predict import _EXAMPLES
  from pipeline.cli.predict import add_predict_parser
  parser = argparse.ArgumentParser(prog='cxr-tfx')
  add_predict_parser(parser.add_subparsers(dest='command'))
  for example in _EXAMPLES:
    args = parser.parse_args(shlex.split(example, comments=True)[1:])
    assert args.command == 'predict' and args.model and args.images
  code = ('import sys\nimport pipeline.cli.predict, components.trainer.predict\n'
          'heavy = [m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules]\n'
          'assert not heavy, heavy')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
