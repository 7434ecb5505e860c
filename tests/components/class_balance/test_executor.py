"""ClassBalance's executor on tiny real shard files, with real TFDV statistics and real Beam."""
import hashlib
import io
import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest

from tests.testutil import REPO

# (split, shard file, {label: count}); train shard 2 is skewed: no Normal, twice the COVID.
LAYOUT = [
    ('train', 'data_tfrecord-00000-of-00003.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('train', 'data_tfrecord-00001-of-00003.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('train', 'data_tfrecord-00002-of-00003.gz', {0: 12, 1: 0, 2: 4, 3: 4}),
    ('eval', 'data_tfrecord-00000-of-00001.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
    ('test', 'data_tfrecord-00000-of-00001.gz', {0: 5, 1: 5, 2: 5, 3: 5}),
]
SKEWED = 'shard train/data_tfrecord-00002-of-00003.gz'


def _png(seed, shape=(8, 8), dtype=np.uint8):
  buf = io.BytesIO()
  pixels = np.random.RandomState(seed).randint(0, 255, shape).astype(dtype)
  Image.fromarray(pixels).save(buf, format='PNG')
  return buf.getvalue()


def _example(image_id, label, image, mask, sha=None):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  f = tf.train.Feature
  return tf.train.Example(features=tf.train.Features(feature={
      'image': f(bytes_list=tf.train.BytesList(value=[image])),
      'mask': f(bytes_list=tf.train.BytesList(value=[mask])),
      'class': f(int64_list=tf.train.Int64List(value=[label])),
      'image_id': f(bytes_list=tf.train.BytesList(value=[image_id.encode()])),
      'image_sha256': f(bytes_list=tf.train.BytesList(
          value=[(sha or hashlib.sha256(image).hexdigest()).encode()])),
  })).SerializeToString(deterministic=True)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  """Examples (with a cross-split duplicate and a tampered hash), TFDV statistics, schema."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  from components.class_balance import executor  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp('cb')
  examples, stats, schema = (str(base / n) for n in ('examples', 'statistics', 'schema'))
  os.makedirs(schema)
  shutil.copy(os.path.join(REPO, 'schemas', 'schema.pbtxt'), schema)
  k = 0
  for split, name, counts in LAYOUT:
    os.makedirs(os.path.join(examples, f'Split-{split}'), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(examples, f'Split-{split}', name), 'GZIP') as w:
      for label, n in counts.items():
        for _ in range(n):
          k += 1
          image = _png(k)
          sha = None
          if split == 'test' and k == 81:
            image = _png(1)  # the very first train image again, under another name: leakage
          if split == 'eval' and k == 61:
            sha = '0' * 64  # bytes that no longer match their recorded hash
          mask = _png(k, (4, 4)) if k % 2 else b''
          w.write(_example(f'{split}/img{k}.png', label, image, mask, sha))
  schema_proto = tfdv.load_schema_text(os.path.join(schema, 'schema.pbtxt'))
  for split in ('train', 'eval', 'test'):
    s = tfdv.generate_statistics_from_tfrecord(
        os.path.join(examples, f'Split-{split}', '*'),
        stats_options=tfdv.StatsOptions(schema=schema_proto))
    os.makedirs(os.path.join(stats, f'Split-{split}'))
    with open(os.path.join(stats, f'Split-{split}', executor.STATS_FILE), 'wb') as f:
      f.write(s.SerializeToString())
  return base, examples, stats, schema


def _run(inputs, out_name, **config):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.class_balance import executor  # pylint: disable=g-import-not-at-top
  from components.class_balance.config import BalanceConfig  # pylint: disable=g-import-not-at-top
  base, examples, stats, schema = inputs
  return executor.run(stats, ('train', 'eval', 'test'), examples, schema, str(base / out_name),
                      BalanceConfig(**config), beam.Pipeline)


@pytest.fixture(scope='module')
def result(inputs):
  return _run(inputs, 'out')


def test_only_the_skewed_shard_fails_and_the_finding_says_where(result):
  res, _ = result
  from components.class_balance import balance  # pylint: disable=g-import-not-at-top
  shard_findings = [f for f in res.findings if f.shard]
  assert {(f.check, f.scope, f.class_name) for f in shard_findings
          if f.kind == balance.KIND_BALANCE} == {(balance.LINF, SKEWED, 'COVID'),
                                                  (balance.JS, SKEWED, 'COVID')}
  ok_units = {m.unit.name for m in res.measurements if m.ok}
  assert {'split eval', 'split test', 'shard train/data_tfrecord-00000-of-00003.gz',
          'shard train/data_tfrecord-00001-of-00003.gz'} <= ok_units
  assert res.whole_counts == {0: 32, 1: 20, 2: 24, 3: 24}
  assert res.imbalance_ratio == pytest.approx(32 / 20)
  assert res.verdict.startswith('NOT balanced')


def test_measurements_are_tfdvs_and_equal_the_definitions(result):
  from components.class_balance import balance  # pylint: disable=g-import-not-at-top
  res, _ = result
  for m in res.measurements:
    p = balance.distribution(res.whole_counts, res.whole_counts)
    q = balance.distribution(m.unit.counts, res.whole_counts)
    assert m.linf == pytest.approx(balance.linf(q, p)[0], abs=1e-9), m.unit.name
    assert m.js == pytest.approx(balance.js_divergence(q, p), abs=1e-9), m.unit.name


def test_leakage_and_integrity_findings(result):
  from components.class_balance import balance  # pylint: disable=g-import-not-at-top
  res, _ = result
  assert res.duplicates_across_splits == [{
      'image_sha256': hashlib.sha256(_png(1)).hexdigest(), 'splits': ['test', 'train'],
      'image_ids': ['test/img81.png', 'train/img1.png']}]
  sha = [f for f in res.findings if f.check == balance.SHA256_MISMATCH]
  assert [(f.split, f.message) for f in sha] == [
      ('eval', "shard eval/data_tfrecord-00000-of-00001.gz: image 'eval/img61.png' does not "
               'match its image_sha256')]


def test_outputs_are_tfdv_anomalies_json_and_html(result):
  from tensorflow_data_validation.utils import anomalies_util  # pylint: disable=g-import-not-at-top
  res, paths = result
  out = os.path.dirname(paths['json'])
  train = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-train', 'SchemaDiff.pb'))
  paths_measured = sorted('/'.join(d.path.step) for d in train.drift_skew_info)
  assert paths_measured == ['class'] + [f'class/data_tfrecord-0000{i}-of-00003.gz'
                                        for i in range(3)]
  assert 'class/data_tfrecord-00002-of-00003.gz' in train.anomaly_info
  assert 'image_sha256' in train.anomaly_info  # the leaked image is in train (and test)
  eval_ = anomalies_util.load_anomalies_binary(os.path.join(out, 'Split-eval', 'SchemaDiff.pb'))
  assert 'does not match its image_sha256' in eval_.anomaly_info['image_sha256'].description
  assert list(eval_.anomaly_info) == ['image_sha256']  # eval is balanced: no 'class' anomaly
  with open(paths['json']) as f:
    report = json.load(f)
  assert report['verdict'] == res.verdict and len(report['units']) == 8
  assert report['image_statistics']['all']['COVID']['image_sizes'] == {'8x8': 32}
  assert report['image_statistics']['train']['Normal']['mask_sizes'] == {'4x4': 4}  # odd k of 6-10, 26-30
  with open(paths['html']) as f:
    page = f.read()
  assert res.verdict in page and '<svg' in page and 'facets' in page
  assert 'data_tfrecord-00002-of-00003.gz' in page


def test_fail_on_imbalance_stops_with_split_shard_class_and_measure(inputs):
  from components.class_balance import report  # pylint: disable=g-import-not-at-top
  with pytest.raises(report.ImbalanceError) as e:
    res, paths = _run(inputs, 'strict', fail_on_imbalance=True)
    report.raise_if_imbalanced(res, paths['html'])
  message = str(e.value)
  assert SKEWED in message and "'COVID'" in message and 'L-infinity' in message
  assert os.path.exists(os.path.join(str(inputs[0]), 'strict', 'balance_report.html'))


def test_loose_thresholds_pass_the_skewed_shard(inputs):
  res, _ = _run(inputs, 'loose', max_linf=0.5, max_js=0.5)
  assert not res.balance_findings
  assert res.verdict == 'balanced (1 integrity finding, 1 leakage finding)'
