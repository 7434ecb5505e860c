"""What the profile's proposed ImageExampleGen fixes would buy, measured before they are made.

``components/image_example_gen/`` is not edited here. The same ingestion runs three ways, each
in its own process (DirectRunner in_memory, as TFX runs it; no TFX driver or ML Metadata around
it), each timed as plan (everything before the Beam job) + write (the Beam job):

  current    ``ingest.run_ingest`` as it is.
  proposed   the same plan and the same ``serialize_row``, with two changes the profile points
             at:
             1. the allowed-root check resolves each directory once (``realpath`` of the
                parent, cached; the file itself is resolved only if it is a symlink) and
                compares prefixes, instead of ``os.path.realpath`` (an ``lstat`` per path
                component) and ``commonpath`` per file;
             2. the shard plans are staged as files next to the shards and only the
                ``(split, index)`` keys go through Beam (``Create(keys, reshuffle=False)`` and
                one ``Reshuffle``): the plan is no longer pickled, bz2-compressed and copied
                into the pipeline graph, the runner and the coders.

  single_pass  ``proposed`` plus the file checks moved into the write: the plan is made from
             the CSV alone (assignment depends only on seed and image_id), and each row's
             paths, headers, pixel count and sha256 are checked as its bytes are read for
             writing, so every file is read and hashed once instead of twice. Shards are
             still staged and published only when all are written, so a bad row still leaves
             nothing visible. This covers the default policies (on_bad_record=fail,
             duplicates=report: duplicate groups can be formed from the hashes the write
             returns); quarantine and duplicates=drop change the plan and keep the check pass.

Rows, order and serialization are unchanged, so all must write byte-identical shard files
(the parent compares their sha256).
"""
import dataclasses
import functools
import hashlib
import os
import pickle
import time
from typing import Dict, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components.image_example_gen import assignment
from components.image_example_gen import image_header
from components.image_example_gen import index
from components.image_example_gen import ingest

PLAN_DIR = '.plans'


def _real_dir(path: str) -> str:
  return os.path.realpath(path)


_real_dir = functools.lru_cache(maxsize=4096)(_real_dir)  # one entry per distinct folder


def within_cached(path: str, roots: Sequence[str]) -> bool:
  """``index._within`` for local paths with one ``lstat`` per file (URIs: unchanged)."""
  if index.is_uri(path):
    return _ORIGINAL_WITHIN(path, roots)
  folder, name = os.path.split(os.path.abspath(path))
  real = os.path.join(_real_dir(folder), name)
  if os.path.islink(real):
    real = os.path.realpath(real)
  for root in roots:
    if index.is_uri(root):
      continue
    r = _real_dir(root)
    if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
      return True
  return False


_ORIGINAL_WITHIN = index._within  # pylint: disable=protected-access


def _plan_path(examples_uri: str, split: str, shard_index: int) -> str:
  return os.path.join(examples_uri, '.staging', PLAN_DIR, f'{split}-{shard_index:05d}.pkl')


class WriteFromPlanFn(ingest._WriteShardFn):  # pylint: disable=protected-access
  """(split, index) -> the staged plan -> the same shard file as ingest._WriteShardFn."""

  def process(self, key):  # pylint: disable=arguments-renamed
    with tf.io.gfile.GFile(_plan_path(self._examples_uri, *key), 'rb') as f:
      shard = pickle.load(f)
    yield from super().process(shard)


class CheckAndWriteFn(ingest._WriteShardFn):  # pylint: disable=protected-access
  """(split, index) -> the staged plan -> checks each row's files as it writes them."""

  def __init__(self, examples_uri: str, roots: Sequence[str], max_pixels: int):
    super().__init__(examples_uri)
    self._roots = list(roots)
    self._max_pixels = max_pixels

  def _checked_bytes(self, row: index.IndexRow, path: str, what: str) -> bytes:
    if not within_cached(path, self._roots):
      raise ValueError(f'line {row.line}: the {what} resolves outside {self._roots} ({path})')
    data = ingest.read_bytes(path)
    header = image_header.inspect_image_bytes(data[:image_header.HEAD_BYTES],
                                              data[-image_header.TAIL_BYTES:], len(data))
    if header.pixels > self._max_pixels:
      raise ValueError(f'line {row.line}: too large {what} ({path})')
    return data

  def process(self, key):  # pylint: disable=arguments-renamed
    with tf.io.gfile.GFile(_plan_path(self._examples_uri, *key), 'rb') as f:
      shard = pickle.load(f)
    final_path = os.path.join(ingest.split_uri(self._examples_uri, shard.split), shard.file_name)
    staging_path = os.path.join(self._examples_uri, ingest.STAGING_DIR,
                                f'{shard.split}-{shard.file_name}')
    tf.io.gfile.makedirs(os.path.dirname(staging_path))
    with tf.io.TFRecordWriter(staging_path, tf.io.TFRecordOptions(**ingest.TFRECORD_OPTIONS)) as w:
      for row in shard.rows:
        image = self._checked_bytes(row, row.image_path, 'image')
        mask = self._checked_bytes(row, row.mask_path, 'mask') if row.mask_path else b''
        row = dataclasses.replace(row, image_sha256=hashlib.sha256(image).hexdigest())
        w.write(ingest.make_example(row, image, mask).SerializeToString(deterministic=True))
    tf.io.gfile.makedirs(os.path.dirname(final_path))
    tf.io.gfile.rename(staging_path, final_path, overwrite=True)
    self._written.inc(len(shard.rows))
    yield shard.split, shard.index, len(shard.rows)


def _stage_plans(examples_uri: str, shards) -> None:
  for shard in shards:
    path = _plan_path(examples_uri, shard.split, shard.index)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'wb') as f:
      pickle.dump(shard, f, protocol=pickle.HIGHEST_PROTOCOL)


def _write_from_keys(examples_uri: str, shards, make_fn) -> int:
  pipeline = beam.Pipeline()
  for split in dict.fromkeys(s.split for s in shards):
    keys = [(s.split, s.index) for s in shards if s.split == split]
    _ = (pipeline
         | f'ShardKeys[{split}]' >> beam.Create(keys, reshuffle=False)
         | f'Distribute[{split}]' >> beam.Reshuffle()
         | f'WriteShard[{split}]' >> beam.ParDo(make_fn()))
  result = pipeline.run()
  result.wait_until_finish()
  tf.io.gfile.rmtree(os.path.join(examples_uri, ingest.STAGING_DIR))
  return ingest._counter(result, ingest.EXAMPLES_WRITTEN)  # pylint: disable=protected-access


def run_current(csv_path: str, config, examples_uri: str) -> Tuple[int, float]:
  """ingest.run_ingest as it is -> (records written, seconds in ingest.plan)."""
  plan, timing = ingest.plan, []

  def timed_plan(*args, **kwargs):
    start = time.monotonic()
    try:
      return plan(*args, **kwargs)
    finally:
      timing.append(time.monotonic() - start)

  ingest.plan = timed_plan  # this process only
  try:
    summary = ingest.run_ingest(csv_path, config, examples_uri, beam.Pipeline)
  finally:
    ingest.plan = plan
  return summary.examples_written, sum(timing)


def run_proposed(csv_path: str, config, examples_uri: str) -> Tuple[int, float]:
  """Plan with the cached root check, stage the plans, write shards from keys
  -> (records written, plan seconds)."""
  start = time.monotonic()
  index._within = within_cached  # pylint: disable=protected-access  (this process only)
  the_plan = ingest.plan(csv_path, config)
  _stage_plans(examples_uri, the_plan.shards)
  plan_seconds = time.monotonic() - start
  written = _write_from_keys(examples_uri, the_plan.shards,
                             lambda: WriteFromPlanFn(examples_uri))
  if written + len(the_plan.quarantined) != the_plan.rows_in:
    raise RuntimeError(f'rows in {the_plan.rows_in} != written {written} + quarantined')
  return written, plan_seconds


def run_single_pass(csv_path: str, config, examples_uri: str) -> Tuple[int, float]:
  """Plan from the CSV alone, check while writing -> (records written, plan seconds)."""
  start = time.monotonic()
  csv_dir = index.csv_folder(csv_path)
  parsed = index.parse_index(index.read_csv_text(csv_path), csv_dir, config.class_mapping,
                             csv_path, config.group_column)
  if parsed.quarantined:
    raise ValueError(f'{len(parsed.quarantined)} bad rows')
  shards = assignment.assign_shards(parsed.rows, config.splits, config.seed)
  _stage_plans(examples_uri, shards)
  plan_seconds = time.monotonic() - start
  roots = list(config.allowed_roots) or [csv_dir]
  written = _write_from_keys(examples_uri, shards, lambda: CheckAndWriteFn(
      examples_uri, roots, config.max_pixels))
  if written != parsed.rows_in:
    raise RuntimeError(f'rows in {parsed.rows_in} != written {written}')
  return written, plan_seconds


VARIANTS = {'current': run_current, 'proposed': run_proposed, 'single_pass': run_single_pass}


def shard_digests(examples_uri: str) -> Dict[str, str]:
  """Relative path of every shard file -> sha256 of its bytes."""
  out = {}
  for folder, _, files in os.walk(examples_uri):
    for name in files:
      if name.startswith('data_tfrecord'):
        with open(os.path.join(folder, name), 'rb') as f:
          out[os.path.relpath(os.path.join(folder, name), examples_uri)] = hashlib.sha256(
              f.read()).hexdigest()
  return out
