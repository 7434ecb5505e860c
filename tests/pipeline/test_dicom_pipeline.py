"""DICOM and image folders end to end: ImageExampleGen -> StatisticsGen (curated schema from
CuratedSchemaGen) -> Transform, under TFX's LocalDagRunner with a SQLite ML Metadata store.

Two cases, one run each (module fixtures): a CSV mixing PNG and DICOM rows, and a folder in the
COVID-19 Radiography layout (``<Class>/images``, ``<Class>/masks``) with DICOM and PNG images and
no CSV. The Transform graph decodes the rendered 16-bit PNGs like any PNG: the training tensor
of a DICOM record is the independent rendering / 65535, resized."""
import csv
import json
import os

import numpy as np
from PIL import Image
import pytest

from tests.support import dicom_files as df

CLASSES = ('COVID', 'Normal', 'Viral Pneumonia', 'Lung_Opacity')  # the curated schema's 0..3


def _png(path, seed, size=(40, 36), mask=False):
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if mask:
    pixels = np.zeros(size, np.uint8)
    pixels[5:20, 4:15] = 255
  else:
    pixels = rng.integers(0, 255, size).astype(np.uint8)
  Image.fromarray(pixels).save(path)


def _dicom(path, seed, **kw):
  kw.setdefault('rows', 48)
  kw.setdefault('columns', 40)
  df.write(path, df.radiograph(seed=seed, **kw))


def _run(root, name, example_gen, class_mapping):
  """Runs the four components; -> {output: artifact URI} read back through the run's context."""

  from tfx import v1 as tfx

  from components.schema_gen.component import CuratedSchemaGen
  from components.transform.component import make_transform
  from pipeline import configs
  from pipeline import mlmd
  metadata = os.path.join(root, 'metadata.sqlite')
  schema_gen = CuratedSchemaGen(schema_file=configs.SCHEMA_FILE, class_mapping=class_mapping)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'], schema=schema_gen.outputs['schema'])
  transform = make_transform(example_gen.outputs['examples'], schema_gen.outputs['schema'])
  tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
      pipeline_name=name, pipeline_root=os.path.join(root, 'root'),
      components=[example_gen, schema_gen, statistics_gen, transform],
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          metadata)))
  store = mlmd.sqlite_store(metadata)
  run = mlmd.latest_run(store, name)
  uris = {key: mlmd.run_output(store, run, name, component, key).uri for key, component in (
      ('examples', 'ImageExampleGen'), ('statistics', 'StatisticsGen'),
      ('schema', configs.SCHEMA_GEN), ('transform_graph', 'Transform'))}
  execution = mlmd.run_execution(store, run, name, 'ImageExampleGen')
  uris['input_fingerprint'] = execution.custom_properties['input_fingerprint'].string_value
  return uris


@pytest.fixture(scope='module')
def csv_run(tmp_path_factory):
  """A CSV of 8 PNG and 8 DICOM rows (MONOCHROME1 and 2, 12 and 16 bits, RLE, a real CR)."""
  from components.image_example_gen.component import ImageExampleGen
  root = str(tmp_path_factory.mktemp('dicom_csv'))
  data = os.path.join(root, 'data')
  rows, dicoms = [], {}
  for i in range(8):
    name = CLASSES[i % 4]
    _png(os.path.join(data, f'png/{i}.png'), i)
    _png(os.path.join(data, f'png/m{i}.png'), i, mask=True)
    rows.append((f'png/{i}.png', f'png/m{i}.png' if i % 2 else '', name))
    path = os.path.join(data, f'dcm/{i}.dcm')
    if i == 7:
      df.write(path, df.read(df.sample(df.SAMPLE_CR_MONOCHROME1)))
    else:
      _dicom(path, i, photometric='MONOCHROME1' if i % 3 == 0 else 'MONOCHROME2',
             bits_stored=16 if i % 2 else 12, window=(2048, 4096) if i % 2 == 0 else None,
             compress='rle' if i == 5 else '', patient_id=f'PAT-{i}')
    dicoms[f'dcm/{i}.dcm'] = path
    rows.append((f'dcm/{i}.dcm', '', name))
  csv_path = os.path.join(data, 'index.csv')
  with open(csv_path, 'w', newline='') as f:
    csv.writer(f).writerows([('image_path', 'mask_path', 'class')] + rows)
  mapping = {c: i for i, c in enumerate(CLASSES)}
  example_gen = ImageExampleGen(csv_path=csv_path, class_mapping=mapping,
                                splits=[('train', 1), ('test', 1)])
  return _run(root, 'dicom-csv', example_gen, mapping), dicoms


@pytest.fixture(scope='module')
def folder_run(tmp_path_factory):
  """<Class>/images + <Class>/masks, no CSV: PNG images with masks, and DICOM images."""
  from components.image_example_gen.component import ImageExampleGen
  root = str(tmp_path_factory.mktemp('dicom_folder'))
  data = os.path.join(root, 'COVID-19_Radiography_Dataset')
  dicoms = {}
  for c, name in enumerate(CLASSES):
    for k in range(3):
      _png(os.path.join(data, name, 'images', f'{name}-{k}.png'), 10 * c + k)
      _png(os.path.join(data, name, 'masks', f'{name}-{k}.png'), 0, mask=True)
    path = os.path.join(data, name, 'images', f'{name}-dx.dcm')
    _dicom(path, 100 + c, window=(1800, 3000))
    dicoms[f'{name}/images/{name}-dx.dcm'] = path
  with open(os.path.join(data, 'README.md.txt'), 'w') as f:
    f.write('the real dataset has metadata files at the top: not images')
  from components.image_example_gen import folders
  example_gen = ImageExampleGen(image_dir=data, splits=[('train', 1), ('test', 1)])
  # What a runner does: the schema's classes are the folder's (ImageExampleGen derives the same)
  mapping = folders.list_image_dir(data).default_class_mapping()
  return _run(root, 'dicom-folder', example_gen, mapping), dicoms


def _transformed(uris):
  """{image_id: transformed features} over every split, through make_dataset."""
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  out = {}
  dataset = make_dataset(os.path.join(uris['examples'], 'Split-*', '*'),
                         tft.TFTransformOutput(uris['transform_graph']), batch_size=4,
                         label_keys=('class',))
  for features, labels in dataset:
    for k, image_id in enumerate(features['image_id'].numpy()):
      out[image_id.decode()] = dict(image=features['image'][k].numpy(),
                                    mask=features['mask'][k].numpy(), label=int(labels[k]))
  return out


def _expected_tensor(dicom_path):
  """The independent rendering (test_dicom.reference) / 65535, resized as Transform does."""
  import tensorflow as tf

  from tests.components.image_example_gen.test_dicom import reference
  pixels = reference(df.read(dicom_path)).astype(np.float32) / 65535.0
  return np.clip(tf.image.resize(pixels[..., None], (256, 256)).numpy(), 0.0, 1.0)


def _statistics_are_valid(uris, dicom_rows):
  import tensorflow_data_validation as tfdv
  schema = tfdv.load_schema_text(os.path.join(uris['schema'], 'schema.pbtxt'))
  seen = 0
  for split in ('train', 'test'):
    stats = tfdv.load_stats_binary(os.path.join(uris['statistics'], f'Split-{split}',
                                                'FeatureStats.pb'))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info, split
    by_name = {f.path.step[0]: f for f in stats.datasets[0].features}
    seen += by_name['dicom_bits_stored'].num_stats.common_stats.num_non_missing
    assert 'dicom_photometric' in by_name and 'dicom_transfer_syntax' in by_name
  assert seen == dicom_rows


def test_csv_mixing_png_and_dicom_runs_through_transform(csv_run):
  uris, dicoms = csv_run
  _statistics_are_valid(uris, len(dicoms))
  tensors = _transformed(uris)
  assert len(tensors) == 16
  for image_id, t in tensors.items():
    assert t['image'].shape == (256, 256, 1) and t['mask'].shape == (256, 256, 1)
    if image_id in dicoms:
      np.testing.assert_allclose(t['image'], _expected_tensor(dicoms[image_id]), atol=1e-6)
      assert not t['mask'].any()
  # MONOCHROME1 rendered bright-is-dense: the real CR's window puts its range in the middle.
  assert 0.2 < tensors['dcm/7.dcm']['image'].mean() < 0.8


def test_folder_without_csv_runs_through_transform(folder_run):
  uris, dicoms = folder_run
  _statistics_are_valid(uris, len(dicoms))
  with open(os.path.join(uris['examples'], 'class_mapping.json')) as f:
    mapping = json.load(f)
  assert mapping == {name: i for i, name in enumerate(sorted(CLASSES))}  # sorted folders
  tensors = _transformed(uris)
  assert len(tensors) == 16
  for image_id, t in tensors.items():
    assert t['label'] == mapping[image_id.split('/')[0]]
    if image_id in dicoms:
      np.testing.assert_allclose(t['image'], _expected_tensor(dicoms[image_id]), atol=1e-6)
      assert not t['mask'].any()  # no masks/<stem>.* for the DICOM images
    else:
      assert t['mask'].any()  # matched by stem in <Class>/masks
  # The driver fingerprinted the listed files for caching (16 images, 12 masks).
  assert 'referenced files (path/size/mtime): 28, sha256:' in uris['input_fingerprint']
  with open(os.path.join(uris['examples'], 'ingest_summary.json')) as f:
    summary = json.load(f)
  assert summary['folder_ignored']['files that are not images'] == 1  # README.md.txt
  assert summary['dicom']['files'] == {'image': 4}
