"""Near-duplicate groups from perceptual fingerprints: locality-sensitive buckets, each candidate
pair checked on the thumbnails, groups = connected components of the confirmed pairs.

``NearDuplicateGroups`` is the Beam form (ImageExampleGen's job), ``group_pairs`` the in-memory
form (``cxr-tfx validate``, the tests' reference); both call ``verify_bucket``, so they agree.

Never all pairs: every fingerprint goes to perceptual.BANDS buckets (``candidate_keys``), and
only members of a bucket are compared. Chest radiographs all look alike, so buckets are not
small. Direct pairs (frames as they are: re-encoded, resized, re-compressed, re-exposed
copies): a bucket of up to MAX_BUCKET members is compared all-pairs (one matrix product), a
larger one in sorted neighbourhoods (members in the order of their projection on the bucket's
first principal axis, each compared with the next WINDOW): at most n * WINDOW pairs.
Crop pairs (``crop_candidates``): by size class, only between images whose sizes allow a
same-scale crop (a bucket of one size has none), with content hashes within CROP_HAMMING bits;
each such pair is scored by the crop check's first stage for many pairs at once (row and column
profiles, ``perceptual.profile_scores``; at most CROP_SCAN images of a larger class per image),
and a pair is crop-checked when each of the two is among the other's CROP_NEIGHBOURS best.
So the work is O(N * BANDS * (WINDOW + CROP_SCAN cheap scores + CROP_NEIGHBOURS crop checks))
for N images at most, linear in N; a pair sharing several buckets is checked in each (crop
checks are remembered, a confirmed pair found twice is one edge for the union-find). The
direct check holds the pair's correlation to ``threshold``, the crop check to
perceptual.CROP_THRESHOLD.

Union-find: the confirmed pairs go to one CombineFn (``_Components``), whose accumulator is a
parent map over the keys that appear in a pair (only near-duplicates: not every image); it is
lifted into each bundle and merged once. At 1M images with 5% in near-duplicate groups that is
~50,000 keys of 64 characters: ~10 MB on one worker.
"""
import collections
from typing import Dict, Iterable, List

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from components.image_example_gen import perceptual
from components.image_example_gen.near_duplicate_pairs import _find  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import _groups  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import _order  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import _pooling  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import _union  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import BATCH_VALUES  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import candidate_buckets  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import candidate_pairs  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import components  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import CROP_CACHE  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import crop_candidates  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import CROP_CHUNK  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import CROP_HAMMING  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import CROP_NEIGHBOURS  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import CROP_SCAN  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import group_pairs  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import MAX_BUCKET  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import Member  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import Pair  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import POWER_ITERATIONS  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import verify_bucket  # noqa: F401
from components.image_example_gen.near_duplicate_pairs import WINDOW  # noqa: F401


class _Components(beam.CombineFn):
  """Union-find over confirmed pairs: accumulator {key: parent}; output the groups."""

  def create_accumulator(self) -> Dict[str, str]:
    return {}

  def add_input(self, parent: Dict[str, str], pair: Pair) -> Dict[str, str]:
    _union(parent, *pair)
    return parent

  def merge_accumulators(self, accumulators: Iterable[Dict[str, str]]) -> Dict[str, str]:
    merged: Dict[str, str] = {}
    for acc in accumulators:
      for x in list(acc):
        _union(merged, x, _find(acc, x))
    return merged

  def extract_output(self, parent: Dict[str, str]) -> List[List[str]]:
    return _groups(parent)


class _BucketBatches(beam.DoFn):
  """(sha256, fingerprint text) -> (bucket key, [(sha256, phash, chash, thumb, width, height),
  ...]): each image under its BANDS buckets, batched per bucket within a bundle (flushed every
  BATCH_VALUES values), so the shuffle moves a few thousand lists rather than BANDS elements per
  image -- the per-element cost of a GroupByKey dominates otherwise. The text is parsed once per
  image. Batch pipelines (the global window) only, as ImageExampleGen's job is."""

  def start_bundle(self):
    self._batches: Dict[str, list] = collections.defaultdict(list)
    self._values = 0

  def process(self, element):
    key, text = element
    fp = perceptual.Fingerprint.from_text(text)
    value = (key, fp.phash, fp.chash, fp.thumb, fp.width, fp.height)
    for bucket in perceptual.candidate_keys(fp):
      self._batches[bucket].append(value)
    self._values += perceptual.BANDS
    if self._values >= BATCH_VALUES:
      yield from self._flush()

  def _flush(self):
    batches, self._batches, self._values = self._batches, collections.defaultdict(list), 0
    yield from batches.items()

  def finish_bundle(self):
    for element in self._flush():
      yield WindowedValue(element, MIN_TIMESTAMP, [GlobalWindow()])


class _Verify(beam.DoFn):
  """(bucket key, Iterable[batch]) -> the bucket's confirmed pairs; crop checks remembered
  across the buckets this worker verifies."""

  def __init__(self, threshold: float):
    self._threshold = threshold
    self._crop_checked: Dict[Pair, bool] = {}

  def setup(self):
    self._crop_checked = {}

  def process(self, element):
    bucket, batches = element
    yield from verify_bucket(bucket, ((key, perceptual.Fingerprint(*fields))
                                      for batch in batches for key, *fields in batch),
                             self._threshold, self._crop_checked)


@beam.ptransform_fn
def NearDuplicateGroups(pcoll, threshold: float = perceptual.NEAR_DUPLICATE_THRESHOLD):  # pylint: disable=invalid-name
  """PCollection[(image sha256 hex, fingerprint text)] -> PCollection[List[str]]: each
  near-duplicate group's sorted keys (size >= 2). A key may come several times (identical
  bytes under several rows): it counts once."""
  return (
      pcoll
      # (bucket key, [(sha256, phash, chash, thumb bytes, width, height), ...]): a bundle's
      # members of the bucket
      | 'Buckets.Keys' >> beam.ParDo(_BucketBatches())
      # (bucket key, Iterable[[(sha256, phash, chash, thumb bytes, width, height), ...]])
      | 'Buckets.Group' >> beam.GroupByKey()
      # (sha256, sha256): a confirmed pair, once per bucket the two share
      | 'Buckets.Verify' >> beam.ParDo(_Verify(threshold))
      # List[List[str]]: one element, the groups (union-find on one worker, see above)
      | 'Groups.UnionFind' >> beam.CombineGlobally(_Components())
      # List[str]: one group
      | 'Groups.Each' >> beam.FlatMap(lambda groups: groups))
