"""The curated schema matches the class mapping and what ImageExampleGen really writes."""
import os

import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import REPO

SCHEMA = os.path.join(REPO, 'schemas', 'schema.pbtxt')


def _schema():
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  with open(SCHEMA) as f:
    return text_format.Parse(f.read(), schema_pb2.Schema())


def test_the_classes_come_from_the_mapping(demo_dataset):
  """The file lists no classes (the class mapping is their one source of truth); CuratedSchemaGen
  gives it the demo mapping's: labels 0..K-1, categorical, one "<label>=<name>" tag each."""
  from components.schema_gen import class_domain
  mapping = load_mapping(demo_dataset.class_mapping_path)
  assert class_domain.stated_domain(class_domain.class_feature(_schema())).empty
  schema, how = class_domain.apply_mapping(_schema(), mapping)
  assert how == class_domain.GENERATED
  assert class_domain.class_names_from_schema(schema) == {v: k for k, v in mapping.items()}
  label = class_domain.class_feature(schema)
  assert label.int_domain.is_categorical and label.int_domain.min == 0
  assert label.int_domain.max == len(mapping) - 1


def test_feature_set_is_what_the_component_writes():
  from components import features
  schema = _schema()
  assert sorted(f.name for f in schema.feature) == sorted(features.ALL + features.OPTIONAL)
  for f in schema.feature:
    if f.name in features.ALL:
      assert f.presence.min_fraction == 1.0 and list(d.size for d in f.shape.dim) == [1], f.name
    else:  # written on some records only (DICOM facts, group hash)
      assert not f.HasField('presence') and not f.HasField('shape'), f.name
      assert 'SERVING' in f.not_in_environment, f.name
  images = {f.name for f in schema.feature if f.HasField('image_domain')}
  assert images == {features.IMAGE, features.MASK}  # no top-k over image bytes (tfx#3256)


@pytest.fixture(scope='module')
def real_output(demo_dataset, tmp_path_factory):
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  out = str(tmp_path_factory.mktemp('examples'))
  ingest.run_ingest(demo_dataset.csv_path, IngestConfig(
      load_mapping(demo_dataset.class_mapping_path), splits=(('train', 3), ('test', 1))),
      out, beam.Pipeline)
  return out


def test_real_output_has_no_anomalies_and_bytes_get_no_top_k(real_output):
  import tensorflow_data_validation as tfdv
  schema = _schema()
  for split in ('train', 'test'):
    stats = tfdv.generate_statistics_from_tfrecord(
        os.path.join(real_output, f'Split-{split}', '*'),
        stats_options=tfdv.StatsOptions(schema=schema))
    anomalies = tfdv.validate_statistics(stats, schema)
    assert not anomalies.anomaly_info, (split, anomalies.anomaly_info)
    by_name = {f.path.step[0]: f for f in stats.datasets[0].features}
    assert not by_name['image'].string_stats.top_values  # image_domain: no top-k of bytes
    assert by_name['class'].string_stats.rank_histogram.buckets  # categorical label


def test_a_record_without_its_mask_feature_is_an_anomaly(real_output, tmp_path):
  """The schema is not vacuous: drop 'mask' from one record and validation objects."""
  import tensorflow as tf
  import tensorflow_data_validation as tfdv

  from tests.support.testutil import read_examples
  records = [ex for _, ex in read_examples(os.path.join(real_output, 'Split-test', '*'))]
  del records[0].features.feature['mask']
  path = str(tmp_path / 'broken.tfrecord')
  with tf.io.TFRecordWriter(path) as w:
    for ex in records:
      w.write(ex.SerializeToString())
  stats = tfdv.generate_statistics_from_tfrecord(path)
  anomalies = tfdv.validate_statistics(stats, _schema())
  assert 'mask' in anomalies.anomaly_info


def test_serving_environment_holds_only_the_image(real_output, tmp_path):
  """SERVING: only `image` is expected; TFDV finds no anomaly in image-only requests there,
  and validation without an environment (what ExampleValidator runs) still demands every
  feature (test_a_record_without_its_mask_feature_is_an_anomaly)."""
  import tensorflow as tf
  import tensorflow_data_validation as tfdv

  from tests.support.testutil import read_examples
  schema = _schema()
  assert list(schema.default_environment) == ['TRAINING', 'SERVING']
  in_serving = [f.name for f in schema.feature if 'SERVING' not in f.not_in_environment]
  assert in_serving == ['image']
  requests = []
  for _, ex in read_examples(os.path.join(real_output, 'Split-test', '*')):
    request = tf.train.Example()
    request.features.feature['image'].CopyFrom(ex.features.feature['image'])
    requests.append(request.SerializeToString())
  stats = tfdv.generate_statistics_from_tfrecord(_write(requests, str(tmp_path)))
  assert not tfdv.validate_statistics(stats, schema, environment='SERVING').anomaly_info
  assert set(tfdv.validate_statistics(stats, schema, environment='TRAINING').anomaly_info) == {
      'mask', 'class', 'image_id', 'image_sha256'}


def _write(records, folder):
  import tensorflow as tf
  path = os.path.join(folder, 'serving_requests.tfrecord')
  with tf.io.TFRecordWriter(path) as w:
    for r in records:
      w.write(r)
  return path
