"""ImageExampleGen's work, outside TFX: index -> shard plan -> Beam job that writes each shard.

Memory stays bounded: the plan holds only ids, paths and labels; each shard is one Beam element
whose DoFn reads the files of that shard one row at a time while writing, so peak memory is one
example, not the dataset. Shards are the unit of parallel work on every Beam runner.

Each shard is written to ``<examples>/.staging/`` and renamed into ``Split-<name>/`` only when
complete, so a killed run never leaves a half-written shard where readers glob.
"""
import dataclasses
import hashlib
import json
import os
from typing import Callable, Dict, List, Sequence

from absl import logging
import apache_beam as beam
import tensorflow as tf

from components import features
from components.image_example_gen import assignment
from components.image_example_gen import duplicates as duplicates_lib
from components.image_example_gen import index
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.summary import QUARANTINE_FILE, SUMMARY_FILE, IngestSummary

SPLIT_DIR_PREFIX = 'Split-'  # TFX's layout: <examples uri>/Split-<name>/
STAGING_DIR = '.staging'
METRICS_NAMESPACE = 'ImageExampleGen'
EXAMPLES_WRITTEN = 'examples_written'
# A gzip container with zlib level 0 (stored blocks): stock TFX/TFDV/tf.data readers read it as
# GZIP, but nothing is deflated. PNG payloads do not compress (level 1 saved 0.01% of the bytes
# in bench/) while deflating them cost ~0.8 ms per 47 KB record, 12x the rest of the write.
TFRECORD_OPTIONS = dict(compression_type='GZIP', compression_level=0)


class FileChangedError(RuntimeError):
  """An image's bytes differ between the check pass and the write pass."""


class ReconciliationError(RuntimeError):
  """Rows in != examples written: something was lost between the index and the shards."""


def split_uri(examples_uri: str, split: str) -> str:
  return os.path.join(examples_uri, f'{SPLIT_DIR_PREFIX}{split}')


def read_bytes(path: str) -> bytes:
  with index.open_binary(path) as f:
    return f.read()


def make_example(row: index.IndexRow, image: bytes, mask: bytes) -> tf.train.Example:
  """The seed's record (image, mask, class) plus the key image_id and the hash image_sha256."""
  feature = tf.train.Feature
  return tf.train.Example(features=tf.train.Features(feature={
      features.IMAGE: feature(bytes_list=tf.train.BytesList(value=[image])),
      features.MASK: feature(bytes_list=tf.train.BytesList(value=[mask])),
      features.LABEL: feature(int64_list=tf.train.Int64List(value=[row.label])),
      features.IMAGE_ID: feature(bytes_list=tf.train.BytesList(
          value=[row.image_id.encode('utf-8')])),
      features.IMAGE_SHA256: feature(bytes_list=tf.train.BytesList(
          value=[row.image_sha256.encode('ascii')])),
  }))


def serialize_row(row: index.IndexRow) -> bytes:
  """Reads a row's files and returns its serialized example (deterministic map order)."""
  image = read_bytes(row.image_path)
  if row.image_sha256 and hashlib.sha256(image).hexdigest() != row.image_sha256:
    raise FileChangedError(f'line {row.line}: {row.image_path} changed after it was checked '
                           '(its sha256 differs); rerun to ingest the current file.')
  mask = read_bytes(row.mask_path) if row.mask_path else b''
  return make_example(row, image, mask).SerializeToString(deterministic=True)


class _WriteShardFn(beam.DoFn):
  """Shard plan -> one complete TFRecord file. Yields (split, shard index, records written)."""

  def __init__(self, examples_uri: str):
    self._examples_uri = examples_uri
    self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, EXAMPLES_WRITTEN)

  def process(self, shard: assignment.Shard):
    final_path = os.path.join(split_uri(self._examples_uri, shard.split), shard.file_name)
    staging_path = os.path.join(self._examples_uri, STAGING_DIR,
                                f'{shard.split}-{shard.file_name}')
    tf.io.gfile.makedirs(os.path.dirname(staging_path))
    options = tf.io.TFRecordOptions(**TFRECORD_OPTIONS)
    with tf.io.TFRecordWriter(staging_path, options) as writer:
      for row in shard.rows:
        writer.write(serialize_row(row))
    tf.io.gfile.makedirs(os.path.dirname(final_path))
    tf.io.gfile.rename(staging_path, final_path, overwrite=True)
    self._written.inc(len(shard.rows))
    yield shard.split, shard.index, len(shard.rows)


@beam.ptransform_fn
def WriteShards(pipeline: beam.Pipeline, shards: Sequence[assignment.Shard],  # pylint: disable=invalid-name
                examples_uri: str) -> Dict[str, beam.PCollection]:
  """One labelled branch per split: Create(plans) -> Reshuffle -> ParDo(write shard)."""
  written = {}
  for split in dict.fromkeys(s.split for s in shards):
    plans = [s for s in shards if s.split == split]
    written[split] = (
        pipeline
        # PCollection[Shard]: a few hundred bytes per row (ids, paths, labels), no image bytes.
        | f'PlanShards[{split}]' >> beam.Create(plans)
        # Spreads shards over workers on distributed runners.
        | f'Distribute[{split}]' >> beam.Reshuffle()
        # PCollection[(split, shard index, records written)]
        | f'WriteShard[{split}]' >> beam.ParDo(_WriteShardFn(examples_uri)))
  return written


@dataclasses.dataclass
class Plan:
  """Everything decided before a byte of output is written."""
  rows_in: int
  quarantined: List[index.Problem]  # bad rows and dropped duplicates, by line
  shards: List[assignment.Shard]
  duplicates: List[duplicates_lib.DuplicateGroup]


def plan(csv_path: str, config: IngestConfig) -> Plan:
  """Reads and checks the index (file headers, content hashes), applies the duplicate policy,
  then assigns shards. Raises before anything is written under the 'fail' policies."""
  checked = index.read_index(csv_path, config.class_mapping, quarantine=config.quarantine,
                             allowed_roots=config.allowed_roots, max_pixels=config.max_pixels,
                             group_column=config.group_column)
  rows, dropped, groups = duplicates_lib.apply_policy(checked.rows, config.duplicates)
  return Plan(checked.rows_in, sorted(checked.quarantined + dropped, key=lambda p: p.line),
              assignment.assign_shards(rows, config.splits, config.seed), groups)


def run_ingest(csv_path: str, config: IngestConfig, examples_uri: str,
               make_pipeline: Callable[[], beam.Pipeline]) -> IngestSummary:
  """Plans, writes every shard with Beam, reconciles counts, writes the summary."""
  the_plan = plan(csv_path, config)
  shards = the_plan.shards
  rows_in, quarantined = the_plan.rows_in, len(the_plan.quarantined)
  logging.info('ImageExampleGen: %s rows from %s (%s quarantined) -> %s shards', rows_in,
               csv_path, quarantined, len(shards))

  pipeline = make_pipeline()
  _ = pipeline | 'WriteShards' >> WriteShards(shards, examples_uri)  # pylint: disable=no-value-for-parameter
  result = pipeline.run()
  result.wait_until_finish()
  written = _counter(result, EXAMPLES_WRITTEN)
  staging = os.path.join(examples_uri, STAGING_DIR)
  if tf.io.gfile.exists(staging):
    tf.io.gfile.rmtree(staging)
  missing = [s for s in shards if not tf.io.gfile.exists(
      os.path.join(split_uri(examples_uri, s.split), s.file_name))]
  if missing or written + quarantined != rows_in:
    raise ReconciliationError(
        f'rows in ({rows_in}) != examples written ({written}) + rows quarantined '
        f'({quarantined}); missing shard files: {[s.split + "/" + s.file_name for s in missing]}')
  with tf.io.gfile.GFile(os.path.join(examples_uri, QUARANTINE_FILE), 'w') as f:
    json.dump([p.to_dict() for p in the_plan.quarantined], f, indent=1)

  names = {label: name for name, label in config.class_mapping.items()}
  split_of = {r.image_id: s.split for s in shards for r in s.rows}
  summary = IngestSummary(
      csv_path=csv_path, seed=config.seed,
      splits=[dataclasses.asdict(s) for s in config.splits],
      class_names=dict(sorted(names.items())), rows_in=rows_in, examples_written=written,
      rows_quarantined=quarantined, on_bad_record=config.on_bad_record,
      group_column=config.group_column,
      max_class_deviation=round(assignment.max_class_deviation(shards), 3),
      duplicate_images=duplicates_lib.cross_split(the_plan.duplicates, split_of),
      shards=[dict(split=s.split, index=s.index, file=s.file_name, count=len(s.rows),
                   class_counts=s.class_counts()) for s in shards])
  with tf.io.gfile.GFile(os.path.join(examples_uri, SUMMARY_FILE), 'w') as f:
    f.write(summary.to_json())
  return summary


def _counter(result: beam.runners.runner.PipelineResult, name: str) -> int:
  query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(
      METRICS_NAMESPACE).with_name(name))
  return sum(c.committed for c in query['counters'])
