"""Tiny real shard files, TFDV statistics and a generated schema, and ClassBalance run on them
once per session (real Beam, real TFDV). Heavy imports stay inside the fixtures."""
import collections
import hashlib
import io
import os

import numpy as np
from PIL import Image
import pytest

MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
SPLITS = ('train', 'eval', 'test')
# (split, shard file, {label: count}); train shard 2 is skewed: no Normal, twice the COVID.
LAYOUT = [
    ('train', 'data_tfrecord-00000-of-00003.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('train', 'data_tfrecord-00001-of-00003.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('train', 'data_tfrecord-00002-of-00003.gz', {0: 12, 1: 0, 2: 4, 3: 4}),
    ('eval', 'data_tfrecord-00000-of-00001.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('test', 'data_tfrecord-00000-of-00001.gz', {0: 5, 1: 5, 2: 5, 3: 5, 7: 1}),  # 7: unknown
]
SKEWED = 'shard train/data_tfrecord-00002-of-00003.gz'
LEAKED = 81  # record k=81 (in test) carries the bytes of k=1 (train): leakage
IMAGE_SIZE = 24
EVAL_MASK_SIZE = 16  # eval's masks are smaller than their images; train has masks on odd k,
# eval on every record, test on none (so two splits' mask presence is off the whole's)


def png(seed, shape=(IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8):
  buf = io.BytesIO()
  pixels = np.random.RandomState(seed).randint(0, 255, shape).astype(dtype)
  Image.fromarray(pixels).save(buf, format='PNG')
  return buf.getvalue()


def mask_png(size, seed):
  pixels = np.zeros((size, size), np.uint8)
  pixels[:, : (seed % size) + 1] = 255  # coverage varies with the seed
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format='PNG')
  return buf.getvalue()


def example(image_id, label, image, mask):
  import tensorflow as tf
  f = tf.train.Feature
  return tf.train.Example(features=tf.train.Features(feature={
      'image': f(bytes_list=tf.train.BytesList(value=[image])),
      'mask': f(bytes_list=tf.train.BytesList(value=[mask])),
      'class': f(int64_list=tf.train.Int64List(value=[label])),
      'image_id': f(bytes_list=tf.train.BytesList(value=[image_id.encode()])),
      'image_sha256': f(bytes_list=tf.train.BytesList(
          value=[hashlib.sha256(image).hexdigest().encode()])),
  })).SerializeToString(deterministic=True)


def generated_schema(mapping):
  """The curated schema with its class list taken from ``mapping`` (CuratedSchemaGen's rule)."""
  from components.schema_gen import class_domain
  from tests.components.schema_gen.test_class_domain import template
  return class_domain.apply_mapping(template(), mapping)[0]


class Inputs(collections.namedtuple('Inputs', 'base examples stats schema records')):
  """Folders of the examples, statistics and schema; records: {(split, shard): [(id, label)]}."""


@pytest.fixture(scope='session')
def balance_inputs(tmp_path_factory):
  import tensorflow as tf
  import tensorflow_data_validation as tfdv

  from components.class_balance import executor
  base = tmp_path_factory.mktemp('class_balance')
  examples, stats, schema_dir = (str(base / n) for n in ('examples', 'statistics', 'schema'))
  os.makedirs(schema_dir)
  schema = generated_schema(MAPPING)
  tfdv.write_schema_text(schema, os.path.join(schema_dir, 'schema.pbtxt'))
  records = {}
  k = 0
  for split, name, counts in LAYOUT:
    os.makedirs(os.path.join(examples, f'Split-{split}'), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(examples, f'Split-{split}', name), 'GZIP') as w:
      for label, n in counts.items():
        for _ in range(n):
          k += 1
          image = png(1 if k == LEAKED else k)
          mask = {'train': mask_png(IMAGE_SIZE, k) if k % 2 else b'',
                  'eval': mask_png(EVAL_MASK_SIZE, k), 'test': b''}[split]
          image_id = f'{split}/img{k}.png'
          w.write(example(image_id, label, image, mask))
          records.setdefault((split, name), []).append((image_id, label))
  for split in SPLITS:
    s = tfdv.generate_statistics_from_tfrecord(
        os.path.join(examples, f'Split-{split}', '*'), stats_options=tfdv.StatsOptions(schema=schema))
    os.makedirs(os.path.join(stats, f'Split-{split}'))
    with open(os.path.join(stats, f'Split-{split}', executor.STATS_FILE), 'wb') as f:
      f.write(s.SerializeToString())
  return Inputs(base, examples, stats, schema_dir, records)


def with_summary(inputs, name, **fields):
  """A copy of ``inputs``' shard files with an ingest summary that agrees with them, ``fields``
  added to its JSON (keys an older IngestSummary may lack too) -> the copy's folder."""
  import json
  import shutil

  from components.image_example_gen.summary import IngestSummary
  from components.image_example_gen.summary import SUMMARY_FILE
  examples = str(inputs.base / f'examples_{name}')
  shutil.copytree(inputs.examples, examples)
  shards = []
  for (split, shard, _), records in zip(LAYOUT, inputs.records.values()):
    counts = collections.Counter(label for _, label in records)
    shards.append(dict(split=split, index=len(shards), file=shard, count=len(records),
                       class_counts=dict(counts)))
  written = sum(s['count'] for s in shards)
  summary = IngestSummary(
      csv_path='/data/index-3.csv', seed=0, splits=[], rows_in=written,
      examples_written=written, shards=shards,
      class_names={label: n for n, label in MAPPING.items()})
  data = dict(json.loads(summary.to_json()), **fields)
  with open(os.path.join(examples, SUMMARY_FILE), 'w') as f:
    json.dump(data, f)
  return examples


def run_balance(inputs, out_name, examples=None, **config):
  """executor.run on ``inputs`` (real Beam, DirectRunner) -> (BalanceResult, paths)."""
  import apache_beam as beam

  from components.class_balance import executor
  from components.class_balance.config import BalanceConfig
  return executor.run(inputs.stats, SPLITS, examples or inputs.examples, inputs.schema,
                      str(inputs.base / out_name), BalanceConfig(**config), beam.Pipeline)


@pytest.fixture(scope='session')
def balance_run(balance_inputs):
  """ClassBalance on examples without an ingest summary (duplicates grouped by its own job)."""
  return run_balance(balance_inputs, 'out')
