"""ImageExampleGen's Beam job and executor on small real PNG datasets, with real Beam."""
import collections
import hashlib
import io
import os

import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import read_csv_rows
from tests.support.testutil import read_examples
from tests.support.testutil import seed_parse_function
from tests.support.testutil import shard_files
from tests.support.testutil import shuffled_copy

SPLITS = (('train', 8), ('eval', 1), ('test', 1))


def _ingest(csv_path, mapping, out_dir, seed=0, splits=SPLITS, beam_args=(), **kw):
  import apache_beam as beam
  from apache_beam.options.pipeline_options import PipelineOptions

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  from components.image_example_gen.config import SplitSpec
  config = IngestConfig(mapping, tuple(SplitSpec(*s) for s in splits), seed, **kw)
  return ingest.run_ingest(csv_path, config, out_dir,
                           lambda: beam.Pipeline(options=PipelineOptions(list(beam_args))))


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
  names = sorted(shard_files(out['base']))
  assert names == (['Split-eval/data_tfrecord-00000-of-00001.gz',
                    'Split-test/data_tfrecord-00000-of-00001.gz'] +
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
    assert sorted(f) == ['class', 'image', 'image_fingerprint', 'image_id', 'image_sha256',
                         'mask']
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
  import tensorflow as tf
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
  base, shuffled = shard_files(out['base']), shard_files(out['shuffled'])
  assert base.keys() == shuffled.keys()
  for name in base:
    assert base[name] == shuffled[name], name


class _NoImageOpened:
  """Makes every open of a .png in this process raise: the launcher may read the CSV only."""

  def __init__(self, monkeypatch):
    import builtins
    self.attempts = []
    for owner, name in ((builtins, 'open'), (os, 'open'), (io, 'open')):
      monkeypatch.setattr(owner, name, self._guard(getattr(owner, name)))

  def _guard(self, real):
    def guarded(path, *args, **kwargs):
      if str(path).endswith('.png'):
        self.attempts.append(str(path))
        raise AssertionError(f'the launcher opened an image: {path}')
      return real(path, *args, **kwargs)
    return guarded


def test_multi_processing_workers_write_the_same_bytes_and_the_launcher_opens_no_image(
    runs, demo_dataset, tmp_path, monkeypatch):
  """DirectRunner multi_processing: the per-file work runs in 2 worker processes; this
  (launcher) process refuses to open any image, and the shards are byte-identical."""
  out, _, mapping = runs
  guard = _NoImageOpened(monkeypatch)
  summary = _ingest(demo_dataset.csv_path, mapping, str(tmp_path), beam_args=(
      '--direct_running_mode=multi_processing', '--direct_num_workers=2'))
  assert not guard.attempts
  assert summary.examples_written == demo_dataset.num_rows
  assert shard_files(str(tmp_path)) == shard_files(out['base'])


@pytest.mark.portable
def test_portable_runner_job_service_and_worker_pool_write_the_same_bytes(
    runs, demo_dataset, tmp_path, portable_beam_args):
  """The path Flink, Spark and Dataflow Runner v2 use: a job service over gRPC and an external
  worker pool in other processes. Reconciliation reads the job's output, not its metrics."""
  out, _, mapping = runs
  summary = _ingest(demo_dataset.csv_path, mapping, str(tmp_path), beam_args=portable_beam_args)
  assert summary.examples_written == demo_dataset.num_rows
  assert shard_files(str(tmp_path)) == shard_files(out['base'])


def test_shards_are_concatenated_chunks_that_every_reader_reads_as_one_stream(
    demo_dataset, tmp_path, monkeypatch):
  """With chunks smaller than shards, a shard is its chunks' gzip members concatenated in
  order; tf.data reads it as one stream, every record once."""
  from components.image_example_gen import ingest
  mapping = load_mapping(demo_dataset.class_mapping_path)
  monkeypatch.setattr(ingest, 'CHUNK_ROWS', 3)
  summary = _ingest(demo_dataset.csv_path, mapping, str(tmp_path), splits=(('train', 2),))
  with open(tmp_path / 'Split-train' / 'data_tfrecord-00000-of-00002.gz', 'rb') as f:
    assert f.read().count(b'\x1f\x8b\x08') >= 2  # more than one gzip member
  records = read_examples(str(tmp_path / 'Split-train' / '*'))
  assert len(records) == summary.examples_written == demo_dataset.num_rows
  assert len({ex.features.feature['image_id'].bytes_list.value[0] for _, ex in records}) == len(
      records)


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
      [f'Split-s{i}' for i in range(10)]
      + ['ingest_summary.json', 'quarantine.json', 'split_fingerprints.jsonl.gz',
         'split_manifest.json'])


def test_executor_publishes_a_standard_examples_artifact(demo_dataset, tmp_path):
  """The TFX executor itself, fed the exec properties the component declares."""
  from google.protobuf import message
  from tfx.components.util import examples_utils
  from tfx.types import standard_artifacts
  from tfx.utils import proto_utils

  from components.image_example_gen import executor
  from components.image_example_gen import spec
  from components.image_example_gen.component import ImageExampleGen
  from components.image_example_gen.summary import IngestSummary

  component = ImageExampleGen(demo_dataset.csv_path,
                              class_mapping=load_mapping(demo_dataset.class_mapping_path), seed=3)
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


def test_shard_size_sets_file_counts_and_keeps_every_image_in_its_split(runs, demo_dataset,
                                                                         tmp_path):
  """--shard-size: each split's files come from its bytes (the check pass's), every class
  spread within one record over them; every image is in the split the shard counts put it in."""
  out, summaries, mapping = runs
  summary = _ingest(demo_dataset.csv_path, mapping, str(tmp_path), shard_size='1MB')
  sized = summary.shard_files
  assert sized['target_bytes'] == 1_000_000
  assert sized['files']['train'] == -(-sized['bytes']['train'] // 1_000_000) > 1
  assert sorted(shard_files(str(tmp_path))) == sorted(
      f'Split-{split}/data_tfrecord-{k:05d}-of-{n:05d}.gz'
      for split, n in sized['files'].items() for k in range(n))
  assert f"train {sized['files']['train']} files" in sized['described']

  def split_of(d):
    return {ex.features.feature['image_id'].bytes_list.value[0]: split
            for split in ('train', 'eval', 'test')
            for _, ex in read_examples(os.path.join(d, f'Split-{split}', '*'))}
  assert split_of(str(tmp_path)) == split_of(out['base'])
  assert summary.membership['manifest_digest'] == summaries['base'].membership['manifest_digest']
  per_file = collections.defaultdict(collections.Counter)
  for split in sized['files']:
    for name, ex in read_examples(os.path.join(str(tmp_path), f'Split-{split}', '*')):
      per_file[(split, name)][ex.features.feature['class'].int64_list.value[0]] += 1
  for split in sized['files']:
    files = [c for (s, _), c in per_file.items() if s == split]
    for label in mapping.values():
      counts = [c[label] for c in files]
      assert max(counts) - min(counts) <= 1, (split, label, counts)
