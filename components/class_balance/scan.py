"""ClassBalance's Beam job: one read of the shard files, aggregated in the graph.

Shard files are the unit of reading (one element each, redistributed); each record becomes a
small ``RecordFacts`` keyed by (split, shard file, label), and a ``CombinePerKey`` with the typed
``ClassStatsCombineFn`` folds them into one ``ClassStats`` per key: class counts per shard (the
check of what was written) and image/mask statistics. No image is decoded except a sample of
masks (coverage) and a few records per class of the first shard of each split (thumbnails).
Cross-split duplicates come from ImageExampleGen's summary (its job grouped every sha256); only
without a summary does this job group the records' ``image_sha256`` itself (``GroupByKey``).
The images the summary's pixel findings list (near-duplicate group members, image-quality
examples: at most a few thousand ids, passed in) are picked out by ``image_id`` on the way and
rendered as small thumbnails.

The job writes its results -- a few hundred small JSON lines, never image bytes (thumbnails as
``data:`` URIs) -- as one manifest file that the executor reads back
(``scan_result.read_manifest_lines``) and removes.
"""
import collections
import json
import os
from typing import Iterable, List, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components import features
from components.class_balance import image_stats
from components.class_balance.scan_result import CLASS_STATS
from components.class_balance.scan_result import DUPLICATE
from components.class_balance.scan_result import LISTED_IMAGE
from components.class_balance.scan_result import NO_LABEL
from components.class_balance.scan_result import read_manifest_lines
from components.class_balance.scan_result import SAMPLE
from components.class_balance.scan_result import SAMPLES_PER_CLASS
from components.class_balance.scan_result import ScanResult
from components.class_balance.scan_result import SHARD_ERROR

SCAN_DIR = '.scan'  # under the output artifact, removed once read
MANIFEST_FILE = 'manifest.jsonl'
# ReadShardFn's outputs: FACTS (main), SAMPLE, HASHES (for DUPLICATE entries), SHARD_ERROR.
FACTS = 'facts'
HASHES = 'hashes'


def shard_files(examples_uri: str, split: str) -> List[str]:
  return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f'Split-{split}', '*')))


def _compression(path: str) -> str:
  return 'GZIP' if path.endswith('.gz') else ''


def _bytes(feature, key: str) -> bytes:
  values = feature[key].bytes_list.value if key in feature else ()
  return values[0] if values else b''


def _text(feature, key: str) -> str:
  return _bytes(feature, key).decode('utf-8', 'replace')


class ReadShardFn(beam.DoFn):
  """(split, shard path) -> per record ((split, shard file, label), RecordFacts).

  Tagged outputs: SAMPLE (label, {order, split, shard, image_id, image, mask}) for the first
  SAMPLES_PER_CLASS records of each class of the shards in ``sample_shards`` (order: the split's
  position, the shard file, the record's index); HASHES (sha256, (split, image_id)) when
  ``emit_hashes``; LISTED_IMAGE (image_id, split, shard, image) for the records whose image_id
  is in ``listed_ids``; SHARD_ERROR (split, shard, message) when a file stops reading (a
  corrupt record: TFRecord CRCs are checked on every read).
  """

  def __init__(self, coverage_sample: int, sample_shards: Sequence[str], emit_hashes: bool,
               split_order: Sequence[str] = (), listed_ids: Sequence[str] = ()):
    self._coverage_sample = coverage_sample
    self._sample_shards = frozenset(sample_shards)
    self._listed_ids = frozenset(listed_ids)
    self._split_order = {split: i for i, split in enumerate(split_order)}
    self._emit_hashes = emit_hashes
    self._records = beam.metrics.Metrics.counter('cxr_class_balance', 'records_read')

  def process(self, element: Tuple[str, str]):
    split, path = element
    shard = os.path.basename(path)
    decoded, sampled = collections.Counter(), collections.Counter()
    sampling = path in self._sample_shards
    try:
      for index, raw in enumerate(tf.compat.v1.io.tf_record_iterator(
          path, tf.compat.v1.io.TFRecordOptions(_compression(path)))):
        feature = tf.train.Example.FromString(raw).features.feature
        labels = feature[features.LABEL].int64_list.value if features.LABEL in feature else ()
        label = int(labels[0]) if labels else NO_LABEL
        image, mask = _bytes(feature, features.IMAGE), _bytes(feature, features.MASK)
        decode = bool(mask) and (self._coverage_sample == 0
                                 or decoded[label] < self._coverage_sample)
        decoded[label] += decode
        self._records.inc()
        yield (split, shard, label), image_stats.record_facts(image, mask, decode)
        if sampling and sampled[label] < SAMPLES_PER_CLASS:
          sampled[label] += 1
          yield beam.pvalue.TaggedOutput(SAMPLE, (label, dict(
              order=(self._split_order.get(split, len(self._split_order)), shard, index),
              split=split, shard=shard, image_id=_text(feature, features.IMAGE_ID),
              image=image, mask=mask)))
        if self._emit_hashes:
          yield beam.pvalue.TaggedOutput(HASHES, (_text(feature, features.IMAGE_SHA256),
                                                  (split, _text(feature, features.IMAGE_ID))))
        if self._listed_ids:
          image_id = _text(feature, features.IMAGE_ID)
          if image_id in self._listed_ids:
            yield beam.pvalue.TaggedOutput(LISTED_IMAGE, (image_id, split, shard, image))
    except tf.errors.OpError as e:  # DataLossError (CRC, truncation), NotFound, ...
      yield beam.pvalue.TaggedOutput(SHARD_ERROR, (split, shard, f'{type(e).__name__}: '
                                                                 f'{e.message}'))


class ClassStatsCombineFn(beam.CombineFn):
  """RecordFacts -> ClassStats (counts, sizes, modes, mask sizes, coverage histogram)."""

  def __init__(self, near_full: float):
    super().__init__()
    self._near_full = near_full

  def create_accumulator(self) -> image_stats.ClassStats:
    return image_stats.ClassStats()

  def add_input(self, accumulator: image_stats.ClassStats,
                element: image_stats.RecordFacts) -> image_stats.ClassStats:
    return accumulator.add(element, self._near_full)

  def merge_accumulators(self, accumulators: Iterable[image_stats.ClassStats]
                         ) -> image_stats.ClassStats:
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for acc in accumulators:
      merged.merge(acc)
    return merged

  def extract_output(self, accumulator: image_stats.ClassStats) -> image_stats.ClassStats:
    return accumulator


def _thumbnails(element):
  label, samples = element
  for sample in samples:
    yield SAMPLE, dict(label=label, split=sample['split'], shard=sample['shard'],
                       image_id=sample['image_id'], has_mask=bool(sample['mask']),
                       uri=image_stats.thumbnail(sample['image'], sample['mask']))


def _listed_thumbnail(image_id: str, split: str, shard: str, image: bytes):
  return LISTED_IMAGE, dict(image_id=image_id, split=split, shard=shard,
                            uri=image_stats.plain_thumbnail(image))


def _cross_split(element):
  sha, members = element
  members = sorted(set(members))
  if len({split for split, _ in members}) > 1:
    yield DUPLICATE, dict(sha256=sha, members=[dict(split=s, image_id=i) for s, i in members])


@beam.ptransform_fn
def ScanShards(pipeline: beam.Pipeline, shards: Sequence[Tuple[str, str]],  # pylint: disable=invalid-name
               manifest_path: str, coverage_sample: int, near_full: float,
               sample_shards: Sequence[str], emit_hashes: bool,
               split_order: Sequence[str] = (),
               listed_ids: Sequence[str] = ()) -> beam.pvalue.PDone:
  """Reads every shard once; writes the manifest (one JSON line per entry)."""
  read = (
      pipeline
      # PCollection[(split, shard file path)]
      | 'ListShards' >> beam.Create(list(shards))
      | 'DistributeShards' >> beam.Reshuffle()
      # FACTS: PCollection[((split, shard file, label), RecordFacts)], one per record;
      # SAMPLE: PCollection[(label, {order, split, shard, image_id, image, mask})], a few per
      # class and sampled shard;
      # HASHES: PCollection[(sha256, (split, image_id))] (only without an ingest summary);
      # LISTED_IMAGE: PCollection[(image_id, split, shard file, image bytes)] (only the
      # listed ids);
      # SHARD_ERROR: PCollection[(split, shard file, message)].
      | 'ReadShards' >> beam.ParDo(ReadShardFn(coverage_sample, sample_shards, emit_hashes,
                                               split_order, listed_ids))
      .with_outputs(SAMPLE, HASHES, LISTED_IMAGE, SHARD_ERROR, main=FACTS))
  entries = [
      read[FACTS]
      # PCollection[((split, shard file, label), ClassStats)]: one per shard and class
      | 'CombineClassStats' >> beam.CombinePerKey(ClassStatsCombineFn(near_full))
      # PCollection[(CLASS_STATS, {split, shard, label, stats})]
      | 'EncodeClassStats' >> beam.MapTuple(lambda key, acc: (CLASS_STATS, dict(
          split=key[0], shard=key[1], label=key[2], stats=acc.to_dict()))),
      read[SAMPLE]
      # PCollection[(label, [sample, ...])]: the first SAMPLES_PER_CLASS of each class in
      # (split, shard, record) order
      | 'FirstSamples' >> beam.combiners.Top.SmallestPerKey(SAMPLES_PER_CLASS,
                                                            key=lambda s: s['order'])
      # PCollection[(SAMPLE, {label, split, shard, image_id, has_mask, uri})]: thumbnails
      | 'RenderThumbnails' >> beam.FlatMap(_thumbnails),
      read[SHARD_ERROR]
      | 'EncodeShardErrors' >> beam.MapTuple(lambda split, shard, message: (SHARD_ERROR, dict(
          split=split, shard=shard, message=message))),
  ]
  if listed_ids:
    entries.append(
        read[LISTED_IMAGE]
        # PCollection[(LISTED_IMAGE, {image_id, split, shard, uri})]: gray JPEG thumbnails
        | 'RenderListedThumbnails' >> beam.MapTuple(_listed_thumbnail))
  if emit_hashes:
    entries.append(
        read[HASHES]
        # PCollection[(sha256, [(split, image_id), ...])]
        | 'GroupBySha256' >> beam.GroupByKey()
        # PCollection[(DUPLICATE, {sha256, members})]: the images found in several splits
        | 'CrossSplitDuplicates' >> beam.FlatMap(_cross_split))
  return (
      entries
      | 'Entries' >> beam.Flatten()
      # PCollection[str]: one JSON line per entry
      | 'EncodeEntries' >> beam.Map(lambda kv: json.dumps(list(kv), sort_keys=True))
      | 'WriteManifest' >> beam.io.WriteToText(manifest_path, num_shards=1,
                                               shard_name_template=''))


def run_scan(examples_uri: str, splits: Sequence[str], output_uri: str, coverage_sample: int,
             near_full: float, make_pipeline, emit_hashes: bool,
             thumbnails: bool = True, listed_ids: Sequence[str] = ()) -> ScanResult:
  """Runs the job over every shard file of ``splits`` and returns what it found.
  ``thumbnails=False`` samples no records (the drift baseline's scan needs statistics only);
  ``listed_ids``: image ids whose thumbnails to render (``ScanResult.listed_images``)."""
  listed = [(split, path) for split in splits for path in shard_files(examples_uri, split)]
  first = {}
  for split, path in listed if thumbnails else ():
    first.setdefault(split, path)
  scan_dir = os.path.join(output_uri, SCAN_DIR)
  manifest = os.path.join(scan_dir, MANIFEST_FILE)
  pipeline = make_pipeline()
  _ = pipeline | 'ScanShards' >> ScanShards(  # pylint: disable=no-value-for-parameter
      listed, manifest, coverage_sample, near_full, list(first.values()), emit_hashes,
      list(splits), sorted(listed_ids))
  pipeline.run().wait_until_finish()
  try:
    with tf.io.gfile.GFile(manifest) as f:
      return read_manifest_lines(f, [(s, os.path.basename(p)) for s, p in listed], emit_hashes)
  finally:
    tf.io.gfile.rmtree(scan_dir)
