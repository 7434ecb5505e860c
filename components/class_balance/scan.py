"""One Beam pass over the written shard files: class counts, content hashes, image statistics.

Shard files are the unit of work (one element each), so the pass parallelises like the write.
Each worker writes its shard's result as JSON next to the output, and the executor reads them
back: results are small (counts, hashes, histograms), never image bytes.
"""
import hashlib
import json
import os
from typing import Dict, List, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components import features
from components.class_balance import image_stats

SCAN_DIR = '.scan'  # under the output artifact; removed once read


def shard_files(examples_uri: str, split: str) -> List[str]:
  return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f'Split-{split}', '*')))


def _compression(path: str) -> str:
  return 'GZIP' if path.endswith('.gz') else ''


def scan_shard(split: str, path: str, near_full: float) -> Dict[str, object]:
  """Reads one shard file -> {split, shard, class_counts, hashes, sha_mismatch, stats}."""
  counts: Dict[int, int] = {}
  hashes: List[Tuple[str, str]] = []
  mismatched: List[str] = []
  stats: Dict[int, Dict[str, object]] = {}
  for raw in tf.data.TFRecordDataset(path, compression_type=_compression(path)).as_numpy_iterator():
    feature = tf.train.Example.FromString(raw).features.feature
    label = int(feature[features.LABEL].int64_list.value[0])
    image = feature[features.IMAGE].bytes_list.value[0]
    mask = feature[features.MASK].bytes_list.value[0] if feature[features.MASK].bytes_list.value else b''
    image_id = feature[features.IMAGE_ID].bytes_list.value[0].decode('utf-8')
    recorded = (feature[features.IMAGE_SHA256].bytes_list.value[0].decode('ascii')
                if feature[features.IMAGE_SHA256].bytes_list.value else '')
    actual = hashlib.sha256(image).hexdigest()
    if recorded and recorded != actual:
      mismatched.append(image_id)
    counts[label] = counts.get(label, 0) + 1
    hashes.append((actual, image_id))
    image_stats.add_example(stats.setdefault(label, image_stats.new_accumulator()), image_id,
                            image, mask, near_full)
  return {'split': split, 'shard': os.path.basename(path),
          'class_counts': {str(c): n for c, n in sorted(counts.items())},
          'hashes': hashes, 'sha_mismatch': mismatched,
          'stats': {str(c): acc for c, acc in sorted(stats.items())}}


class _ScanShardFn(beam.DoFn):
  """(split, shard path) -> writes <scratch>/<split>--<shard>.json; yields its path."""

  def __init__(self, scratch_dir: str, near_full: float):
    self._scratch_dir = scratch_dir
    self._near_full = near_full

  def process(self, element: Tuple[str, str]):
    split, path = element
    result = scan_shard(split, path, self._near_full)
    out = os.path.join(self._scratch_dir, f'{split}--{os.path.basename(path)}.json')
    with tf.io.gfile.GFile(out, 'w') as f:
      json.dump(result, f)
    yield out


@beam.ptransform_fn
def ScanShards(pipeline: beam.Pipeline, examples_uri: str, splits: Sequence[str],  # pylint: disable=invalid-name
               scratch_dir: str, near_full: float) -> Dict[str, beam.PCollection]:
  """One labelled branch per split: Create(shard paths) -> Reshuffle -> ParDo(scan)."""
  out = {}
  for split in splits:
    out[split] = (
        pipeline
        # PCollection[(split, shard file path)]
        | f'ListShards[{split}]' >> beam.Create([(split, p) for p in shard_files(examples_uri, split)])
        | f'Distribute[{split}]' >> beam.Reshuffle()
        # PCollection[str]: path of the shard's JSON result
        | f'ScanShard[{split}]' >> beam.ParDo(_ScanShardFn(scratch_dir, near_full)))
  return out


def run_scan(examples_uri: str, splits: Sequence[str], scratch_dir: str, near_full: float,
             make_pipeline) -> List[Dict[str, object]]:
  """Runs the scan and returns the per-shard results, ordered by split then shard."""
  tf.io.gfile.makedirs(scratch_dir)
  pipeline = make_pipeline()
  _ = pipeline | 'ScanShards' >> ScanShards(examples_uri, splits, scratch_dir, near_full)  # pylint: disable=no-value-for-parameter
  pipeline.run().wait_until_finish()
  results = []
  for split in splits:
    for path in shard_files(examples_uri, split):
      with tf.io.gfile.GFile(
          os.path.join(scratch_dir, f'{split}--{os.path.basename(path)}.json')) as f:
        results.append(json.load(f))
  tf.io.gfile.rmtree(scratch_dir)
  return results
