"""Shared test helpers. Heavy imports (TensorFlow, TFX, Beam) stay inside functions."""
import csv
import json
import os
import random
import sys
from typing import Dict, List, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(os.path.dirname(sys.executable), 'cxr-tfx')

# The seed notebook's reader, verbatim; only the dataset around it adds compression_type='GZIP'.


def seed_parse_function(proto):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
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


def read_csv_rows(csv_path: str) -> List[Dict[str, str]]:
  with open(csv_path, newline='', encoding='utf-8') as f:
    return list(csv.DictReader(f))


def write_csv_rows(csv_path: str, rows: Sequence[Dict[str, str]],
                   fieldnames: Sequence[str] = ('image_path', 'mask_path', 'class')) -> str:
  with open(csv_path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
  return csv_path


def shuffled_copy(csv_path: str, name: str, seed: int = 1234) -> str:
  """The same rows in another order, next to the original (so relative paths still resolve)."""
  rows = read_csv_rows(csv_path)
  random.Random(seed).shuffle(rows)
  return write_csv_rows(os.path.join(os.path.dirname(csv_path), name), rows)


def read_examples(pattern: str) -> List[Tuple[str, 'tf.train.Example']]:
  """[(file name, Example)] for every record of every file matching the glob, in file order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = []
  for path in sorted(tf.io.gfile.glob(pattern)):
    for raw in tf.data.TFRecordDataset(path, compression_type='GZIP').as_numpy_iterator():
      out.append((os.path.basename(path), tf.train.Example.FromString(raw)))
  return out


def load_mapping(path: str) -> Dict[str, int]:
  with open(path, encoding='utf-8') as f:
    return json.load(f)
