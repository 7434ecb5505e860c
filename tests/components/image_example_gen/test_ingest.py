"""ImageExampleGen's Beam job and executor on small real PNG datasets, with real Beam."""
import collections
import hashlib
import os

import pytest

from tests.testutil import load_mapping, read_csv_rows, read_examples, seed_parse_function, shuffled_copy

SPLITS = (('train', 8), ('eval', 1), ('test', 1))


def _ingest(csv_path, mapping, out_dir, seed=0, splits=SPLITS):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import ingest  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.config import IngestConfig, SplitSpec  # pylint: disable=g-import-not-at-top
  config = IngestConfig(mapping, tuple(SplitSpec(*s) for s in splits), seed)
  return ingest.run_ingest(csv_path, config, out_dir, beam.Pipeline)


def _shard_bytes(out_dir):
  files = {}
  for split in sorted(os.listdir(out_dir)):
    if split.startswith('Split-'):
      for name in sorted(os.listdir(os.path.join(out_dir, split))):
        with open(os.path.join(out_dir, split, name), 'rb') as f:
          files[f'{split}/{name}'] = f.read()
  return files


@pytest.fixture(scope='module')
def runs(demo_dataset, tmp_path_factory):
  """Three ingestions of one dataset: as is, CSV rows shuffled, and another seed."""
  mapping = load_mapping(demo_dataset.class_mapping_path)
  out = {k: str(tmp_path_factory.mktemp(k)) for k in ('base', 'shuffled', 'seed1')}
  summaries = {
      'base': _ingest(demo_dataset.csv_path, mapping, out['base']),
      'shuffled': _ingest(shuffled_copy(demo_dataset.csv_path, 'shuffled.csv'), mapping,
                          out['shuffled']),
      'seed1': _ingest(demo_dataset.csv_path, mapping, out['seed1'], seed=1),
  }
  return out, summaries, mapping


def test_writes_tfx_layout_one_file_per_shard(runs):
  out, _, _ = runs
  names = sorted(_shard_bytes(out['base']))
  assert names == ([f'Split-eval/data_tfrecord-00000-of-00001.gz',
                    f'Split-test/data_tfrecord-00000-of-00001.gz'] +
                   [f'Split-train/data_tfrecord-{k:05d}-of-00008.gz' for k in range(8)])
  assert not os.path.exists(os.path.join(out['base'], '.staging'))


def test_every_shard_holds_floor_or_ceil_of_each_class(runs, demo_dataset):
  out, summary, mapping = runs
  per_file = collections.defaultdict(collections.Counter)
  for split in ('train', 'eval', 'test'):
    for name, ex in read_examples(os.path.join(out['base'], f'Split-{split}', '*')):
      per_file[(split, name)][ex.features.feature['class'].int64_list.value[0]] += 1
  assert len(per_file) == 10
  for class_name, total in demo_dataset.class_counts.items():
    label = mapping[class_name]
    for key, counts in per_file.items():
      assert total // 10 <= counts[label] <= -(-total // 10), (class_name, key, counts)
  # and the recorded summary says exactly what the files hold
  assert {(s['split'], s['file']): s['class_counts'] for s in summary['base'].shards} == {
      k: {l: n for l, n in sorted(v.items())} for k, v in per_file.items()}


def test_bytes_round_trip_and_seed_features(runs, demo_dataset):
  out, summary, mapping = runs
  csv_dir = os.path.dirname(demo_dataset.csv_path)
  expected = {r['image_path']: r for r in read_csv_rows(demo_dataset.csv_path)}
  records = read_examples(os.path.join(out['base'], 'Split-*', '*'))
  assert len(records) == len(expected) == summary['base'].rows_in == summary[
      'base'].examples_written
  seen_empty_mask = False
  for _, ex in records:
    f = ex.features.feature
    assert sorted(f) == ['class', 'image', 'image_id', 'image_sha256', 'mask']
    row = expected[f['image_id'].bytes_list.value[0].decode()]
    with open(os.path.join(csv_dir, row['image_path']), 'rb') as img:
      image = img.read()
    assert f['image'].bytes_list.value[0] == image
    assert f['image_sha256'].bytes_list.value[0].decode() == hashlib.sha256(image).hexdigest()
    if row['mask_path']:
      with open(os.path.join(csv_dir, row['mask_path']), 'rb') as mask:
        assert f['mask'].bytes_list.value[0] == mask.read()
    else:
      assert f['mask'].bytes_list.value == [b'']
      seen_empty_mask = True
    assert f['class'].int64_list.value == [mapping[row['class']]]
  assert seen_empty_mask


def test_seed_notebook_reader_reads_the_output(runs):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out, summary, _ = runs
  files = sorted(tf.io.gfile.glob(os.path.join(out['base'], 'Split-train', '*')))
  ds = tf.data.TFRecordDataset(files, compression_type='GZIP').map(seed_parse_function)
  n = 0
  for image, mask, label in ds:
    assert image.shape == (299, 299, 3)
    assert mask.shape in ((256, 256, 1), (299, 299, 1))  # the seed's own zero-mask size
    assert 0 <= int(label) < 4
    n += 1
  assert n == sum(s['count'] for s in summary['base'].shards if s['split'] == 'train')


def test_csv_row_order_does_not_change_a_single_byte(runs):
  out, _, _ = runs
  base, shuffled = _shard_bytes(out['base']), _shard_bytes(out['shuffled'])
  assert base.keys() == shuffled.keys()
  for name in base:
    assert base[name] == shuffled[name], name


def test_another_seed_gives_another_assignment_of_the_same_records(runs):
  out, _, _ = runs
  def ids_per_file(d):
    return {(k, ex.features.feature['image_id'].bytes_list.value[0])
            for k, ex in read_examples(os.path.join(d, 'Split-*', '*'))}
  base, seed1 = ids_per_file(out['base']), ids_per_file(out['seed1'])
  assert base != seed1
  assert sorted(i for _, i in base) == sorted(i for _, i in seed1)


def test_ten_splits_of_one_shard(demo_dataset, tmp_path):
  splits = tuple((f's{i}', 1) for i in range(10))
  summary = _ingest(demo_dataset.csv_path, load_mapping(demo_dataset.class_mapping_path),
                    str(tmp_path), splits=splits)
  assert [s['split'] for s in summary.shards] == [f's{i}' for i in range(10)]
  assert sorted(os.listdir(tmp_path)) == sorted(
      [f'Split-s{i}' for i in range(10)] + ['ingest_summary.json', 'quarantine.json'])


def test_executor_publishes_a_standard_examples_artifact(demo_dataset, tmp_path):
  """The TFX executor itself, fed the exec properties the component declares."""
  from google.protobuf import message  # pylint: disable=g-import-not-at-top
  from tfx.components.util import examples_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import executor, spec  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.component import ImageExampleGen  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.summary import IngestSummary  # pylint: disable=g-import-not-at-top

  component = ImageExampleGen(demo_dataset.csv_path,
                              load_mapping(demo_dataset.class_mapping_path), seed=3)
  exec_properties = {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
                     for k, v in component.exec_properties.items() if v is not None}
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path)
  executor.Executor().Do({}, {spec.EXAMPLES_KEY: [examples]}, exec_properties)

  assert examples.split_names == '["train", "eval", "test"]'
  assert examples_utils.get_payload_format(examples) == 6  # FORMAT_TF_EXAMPLE
  summary = IngestSummary.from_json(examples.get_string_custom_property(spec.SUMMARY_PROPERTY))
  assert summary.seed == examples.get_int_custom_property(spec.SEED_PROPERTY) == 3
  assert summary.rows_in == examples.get_int_custom_property(spec.ROWS_IN_PROPERTY) == (
      demo_dataset.num_rows)
  assert len(os.listdir(tmp_path / 'Split-train')) == 8
