"""The notebook loop cxr-tfx replaces, reimplemented with the same algorithm for comparison.

Write: pandas ``read_csv`` + ``df.sample(frac=1)`` (unseeded in the notebook; seeded here so
runs compare) + ``iterrows`` + one ``tf.train.Example{image, mask, class}`` per row, written
round-robin to 10 uncompressed ``TFRecordWriter`` shards. Read: ``parse_single_example`` per
record, ``decode_png(channels=3)`` and a ``tf.cond`` zero mask when the mask bytes are empty.
"""
import json
import os
from typing import Dict, Optional

NUM_SHARDS = 10


def write(csv_path: str, class_mapping_path: str, out_dir: str, seed: int = 0,
          compression: Optional[str] = None, level: Optional[int] = None) -> Dict[str, int]:
  """-> {'records': n, 'bytes': total file size}."""
  import pandas as pd
  import tensorflow as tf
  with open(class_mapping_path) as f:
    mapping = json.load(f)
  root = os.path.dirname(csv_path)
  df = pd.read_csv(csv_path, keep_default_na=False).sample(frac=1, random_state=seed)
  os.makedirs(out_dir, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type=compression or '',
                                  compression_level=level) if compression else None
  suffix = '.gz' if compression else ''
  writers = [tf.io.TFRecordWriter(os.path.join(out_dir, f'shard-{i:02d}.tfrecord{suffix}'),
                                  options) for i in range(NUM_SHARDS)]
  n = 0
  for i, (_, row) in enumerate(df.iterrows()):
    with open(os.path.join(root, row['image_path']), 'rb') as f:
      image = f.read()
    mask = b''
    if row['mask_path']:
      with open(os.path.join(root, row['mask_path']), 'rb') as f:
        mask = f.read()
    example = tf.train.Example(features=tf.train.Features(feature={
        'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        'mask': tf.train.Feature(bytes_list=tf.train.BytesList(value=[mask])),
        'class': tf.train.Feature(int64_list=tf.train.Int64List(value=[mapping[row['class']]])),
    }))
    writers[i % NUM_SHARDS].write(example.SerializeToString())
    n += 1
  for w in writers:
    w.close()
  size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
  return {'records': n, 'bytes': size}


def parse_function(proto):
  import tensorflow as tf
  feature_description = {
      'image': tf.io.FixedLenFeature([], tf.string),
      'mask': tf.io.FixedLenFeature([], tf.string),
      'class': tf.io.FixedLenFeature([], tf.int64),
  }
  parsed = tf.io.parse_single_example(proto, feature_description)
  image = tf.io.decode_png(parsed['image'], channels=3)
  mask = tf.cond(tf.equal(tf.strings.length(parsed['mask']), 0),
                 lambda: tf.zeros_like(image[:, :, :1]),
                 lambda: tf.io.decode_png(parsed['mask'], channels=1))
  return image, mask, parsed['class']


def read(shard_dir: str):
  """Iterates every record through the notebook's reader -> (records, seconds to the first)."""
  import time

  import tensorflow as tf
  start = time.monotonic()
  files = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir))
  n, first = 0, None
  for _ in tf.data.TFRecordDataset(files).map(parse_function):
    n += 1
    if first is None:
      first = time.monotonic() - start
  return n, first
