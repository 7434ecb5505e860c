"""The split manifest of Examples written before split manifests existed, rebuilt from their
records: each record's ``image_sha256`` (and ``group_hash``) and the ``Split-<name>`` folder it
is in. Given to the first run after upgrading (``--split-manifest``), it keeps every image in the
split it had, instead of the one-time re-deal by content.

    python -m components.image_example_gen.migrate EXAMPLES_DIR OUT.json

EXAMPLES_DIR is an ImageExampleGen output (``<pipeline root>/ImageExampleGen/examples/<id>``,
local or a tf.io.gfile URI). Reads every record once, in this process (a one-time step; only
two small features are parsed). Group hashes are kept only when the records carry them; they
were salted as the run that wrote them was (``--group-salt``), which the manifest records.
"""
import json
import os
import sys
from typing import List, Optional

import tensorflow as tf

from components import features
from components.image_example_gen import assignment
from components.image_example_gen.config import DEFAULT_GROUP_SALT
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.summary import SUMMARY_FILE

SPLIT_PREFIX = 'Split-'


def manifest_from_examples(examples_uri: str, group_salt: str = '') -> assignment.SplitManifest:
  """Every record's image sha256 -> the split its folder names; seed, splits and span from the
  output's ``ingest_summary.json``. AssignmentError when the folder holds no such output."""
  summary_path = os.path.join(examples_uri, SUMMARY_FILE)
  if not tf.io.gfile.exists(summary_path):
    raise assignment.AssignmentError(
        f'{examples_uri}: no {SUMMARY_FILE}: not an ImageExampleGen output (give '
        '<pipeline root>/ImageExampleGen/examples/<id>)')
  with tf.io.gfile.GFile(summary_path) as f:
    summary = json.load(f)
  splits = tuple(SplitSpec(s['name'], s['num_shards']) for s in summary['splits'])
  span = int(summary.get('membership', {}).get('span', 0))
  spec = {features.IMAGE_SHA256: tf.io.FixedLenFeature([], tf.string),
          features.GROUP_HASH: tf.io.FixedLenFeature([], tf.string, default_value='')}
  images, groups = {}, {}
  for split in splits:
    paths = sorted(tf.io.gfile.glob(os.path.join(examples_uri, SPLIT_PREFIX + split.name, '*')))
    records = tf.data.TFRecordDataset(paths, compression_type='GZIP').batch(512).map(
        lambda batch: tf.io.parse_example(batch, spec))
    for batch in records.as_numpy_iterator():
      for sha, group in zip(batch[features.IMAGE_SHA256], batch[features.GROUP_HASH]):
        images.setdefault(sha.decode('ascii'), (split.name, span))
        if group:
          groups.setdefault(group.decode('ascii'), split.name)
  return assignment.SplitManifest(
      int(summary['seed']), splits, images, groups,
      assignment.salt_check(group_salt or DEFAULT_GROUP_SALT) if groups else '')


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) not in (2, 3):
    print(__doc__.strip(), file=sys.stderr)
    return 2
  examples_uri, out = argv[0], argv[1]
  try:
    manifest = manifest_from_examples(examples_uri, argv[2] if len(argv) == 3 else '')
  except assignment.AssignmentError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  with tf.io.gfile.GFile(out, 'w') as f:
    f.write(manifest.to_json())
  print(f'{out}: {len(manifest.images):,} images, {len(manifest.groups):,} groups '
        f'(seed {manifest.seed}); give it to the next run with --split-manifest {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
