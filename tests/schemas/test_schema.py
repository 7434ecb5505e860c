"""The curated schema matches the class mapping and what ImageExampleGen really writes."""
import os

import pytest

from tests.testutil import REPO, load_mapping

SCHEMA = os.path.join(REPO, 'schemas', 'schema.pbtxt')


def _schema():
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
  with open(SCHEMA) as f:
    return text_format.Parse(f.read(), schema_pb2.Schema())


def test_class_domain_and_names_match_the_demo_mapping(demo_dataset):
  from components.class_balance.report import class_names_from_schema  # pylint: disable=g-import-not-at-top
  mapping = load_mapping(demo_dataset.class_mapping_path)
  assert class_names_from_schema(_schema()) == {v: k for k, v in mapping.items()}
  label = next(f for f in _schema().feature if f.name == 'class')
  assert label.int_domain.is_categorical and label.int_domain.min == 0
  assert label.int_domain.max == len(mapping) - 1


def test_feature_set_is_what_the_component_writes():
  from components import features  # pylint: disable=g-import-not-at-top
  schema = _schema()
  assert sorted(f.name for f in schema.feature) == sorted(features.ALL)
  for f in schema.feature:
    assert f.presence.min_fraction == 1.0 and list(d.size for d in f.shape.dim) == [1], f.name
  images = {f.name for f in schema.feature if f.HasField('image_domain')}
  assert images == {features.IMAGE, features.MASK}  # no top-k over image bytes (tfx#3256)


@pytest.fixture(scope='module')
def real_output(demo_dataset, tmp_path_factory):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import ingest  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  out = str(tmp_path_factory.mktemp('examples'))
  ingest.run_ingest(demo_dataset.csv_path, IngestConfig(
      load_mapping(demo_dataset.class_mapping_path), splits=(('train', 3), ('test', 1))),
      out, beam.Pipeline)
  return out


def test_real_output_has_no_anomalies_and_bytes_get_no_top_k(real_output):
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
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
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  from tests.testutil import read_examples  # pylint: disable=g-import-not-at-top
  records = [ex for _, ex in read_examples(os.path.join(real_output, 'Split-test', '*'))]
  del records[0].features.feature['mask']
  path = str(tmp_path / 'broken.tfrecord')
  with tf.io.TFRecordWriter(path) as w:
    for ex in records:
      w.write(ex.SerializeToString())
  stats = tfdv.generate_statistics_from_tfrecord(path)
  anomalies = tfdv.validate_statistics(stats, _schema())
  assert 'mask' in anomalies.anomaly_info
