"""What the profile's proposed ImageExampleGen fixes would buy, measured before they are made.

``components/image_example_gen/`` is not edited here. The same ingestion runs two ways, each in
its own process (DirectRunner in_memory, as TFX runs it; no TFX driver or ML Metadata around it):

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

Rows, order and serialization are unchanged, so both must write byte-identical shard files
(the parent compares their sha256).
"""
import functools
import hashlib
import os
import pickle
from typing import Dict, Sequence

import apache_beam as beam
import tensorflow as tf

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


def run_proposed(csv_path: str, config, examples_uri: str) -> int:
  """Plan with the cached root check, stage the plans, write shards from keys -> records."""
  index._within = within_cached  # pylint: disable=protected-access  (this process only)
  the_plan = ingest.plan(csv_path, config)
  for shard in the_plan.shards:
    path = _plan_path(examples_uri, shard.split, shard.index)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'wb') as f:
      pickle.dump(shard, f, protocol=pickle.HIGHEST_PROTOCOL)
  pipeline = beam.Pipeline()
  for split in dict.fromkeys(s.split for s in the_plan.shards):
    keys = [(s.split, s.index) for s in the_plan.shards if s.split == split]
    _ = (pipeline
         | f'ShardKeys[{split}]' >> beam.Create(keys, reshuffle=False)
         | f'Distribute[{split}]' >> beam.Reshuffle()
         | f'WriteShard[{split}]' >> beam.ParDo(WriteFromPlanFn(examples_uri)))
  result = pipeline.run()
  result.wait_until_finish()
  written = ingest._counter(result, ingest.EXAMPLES_WRITTEN)  # pylint: disable=protected-access
  tf.io.gfile.rmtree(os.path.join(examples_uri, ingest.STAGING_DIR))
  if written + len(the_plan.quarantined) != the_plan.rows_in:
    raise RuntimeError(f'rows in {the_plan.rows_in} != written {written} + quarantined')
  return written


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
