"""Near-duplicate grouping without Beam (NumPy only, so `cxr-tfx validate` uses it): the
buckets, the pixel check of a bucket's pairs (``verify_bucket``) and the union-find, and
``group_pairs``, all of it in memory. near_duplicates.py's module docstring explains the method;
its ``NearDuplicateGroups`` runs the same functions in Beam, so the two agree."""
import collections
import functools
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from components.image_example_gen import perceptual

MAX_BUCKET = 128  # members compared all-pairs; above, sorted neighbourhoods
WINDOW = 8  # neighbours each member of a large bucket is compared with
CROP_CACHE = 100_000  # crop-check results a worker remembers (then starts over)
BATCH_VALUES = 20000  # bucket members a worker holds before it emits them (~25 MB)
POWER_ITERATIONS = 4  # for a large bucket's first principal axis
# Content-hash bits (of perceptual.CONTENT_HASH_BITS) two images may differ in for the crop
# check to run: the bench's crops (2-8% off each side) differ in 0-8.
CROP_HAMMING = 10
# Crop candidates in one bucket (crop_candidates): an image is scanned against at most CROP_SCAN
# images of each larger size class that allows it to be their crop; a pair is crop-checked when
# each is among the other's CROP_NEIGHBOURS best by the profile screen (the other side within
# a chunk of CROP_CHUNK smaller images: a [CROP_CHUNK, CROP_SCAN] score matrix at most).
CROP_SCAN = 4096
CROP_NEIGHBOURS = 4
CROP_CHUNK = 256

Pair = Tuple[str, str]  # (key, key), the smaller first


Member = Tuple[str, perceptual.Fingerprint]  # (key, fingerprint)


@functools.lru_cache(maxsize=1)
def _pooling() -> np.ndarray:
  """[THUMB_SIZE, 8]: sums of THUMB_SIZE / 8 consecutive cells."""
  return np.kron(np.eye(8, dtype=np.float32),
                 np.ones((perceptual.THUMB_SIZE // 8, 1), np.float32))


def _order(vectors: np.ndarray) -> np.ndarray:
  """The members of a large bucket in the order of their projection on the bucket's first
  principal axis (a few power iterations from a fixed start: deterministic): copies whose
  frames match (re-encoded, resized, re-compressed, re-exposed), whose vectors are nearly equal,
  land next to each other. A crop's vector is a few percent out of place: in a large bucket it
  is usually not within WINDOW of its original, so crops are looked for apart
  (``crop_candidates``)."""
  n, pool, side = len(vectors), _pooling(), perceptual.THUMB_SIZE
  # [n, 64]: 8x8 block sums (the first axis is coarse anyway), by two 2-D matrix products: the
  # columns' blocks, then (transposed) the rows'
  columns = (vectors.reshape(n * side, side) @ pool).reshape(n, side, 8)
  centred = (columns.transpose(0, 2, 1).reshape(n * 8, side) @ pool).reshape(n, 64)
  centred -= centred.mean(axis=0)
  axis = centred[int(np.argmax(np.einsum('ij,ij->i', centred, centred)))]
  for _ in range(POWER_ITERATIONS):
    axis = centred.T @ (centred @ axis)
    norm = float(np.linalg.norm(axis))
    if norm == 0:
      break
    axis /= norm
  return np.argsort(centred @ axis, kind='stable')


def _popcount(x: np.ndarray) -> np.ndarray:
  """Bits set in each of an int64 array's values (content hashes: < 2**48)."""
  table = _popcount_table()
  return table[x & 0xFFFF] + table[(x >> 16) & 0xFFFF] + table[(x >> 32) & 0xFFFF]


@functools.lru_cache(maxsize=1)
def _popcount_table() -> np.ndarray:
  return np.array([bin(v).count('1') for v in range(1 << 16)], np.int64)


def crop_candidates(fps: Sequence[perceptual.Fingerprint]) -> Tuple[np.ndarray, np.ndarray]:
  """(i, j) index arrays of the pairs among fps to crop-check. By size class (one per distinct
  width x height): for each pair of classes whose sizes allow a same-scale crop (the smaller no
  larger on either axis, smaller on one, by at most MAX_CROP), the pairs whose content hashes
  are within CROP_HAMMING bits, scored by the crop check's first stage
  (``perceptual.profile_scores``, at least CROP_PROFILE_MIN), kept when each is among the
  other's CROP_NEIGHBOURS best (the larger image's best among a chunk of CROP_CHUNK smaller
  ones). An image is scanned against at most CROP_SCAN images of a larger class, so the work is
  at most n x CROP_SCAN popcounts and profile scores per bucket and larger class (nothing for a
  bucket of one size), and at most CROP_NEIGHBOURS crop checks per image and larger class."""
  sizes: Dict[Tuple[int, int], List[int]] = collections.defaultdict(list)
  for k, fp in enumerate(fps):
    sizes[(fp.width, fp.height)].append(k)
  none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
  if len(sizes) < 2:
    return none
  keep = 1 - perceptual.MAX_CROP
  hashes = np.array([fp.chash for fp in fps], np.int64)
  classes = sorted((size, np.array(members, np.int64)) for size, members in sizes.items())
  out_i: List[np.ndarray] = []
  out_j: List[np.ndarray] = []
  rows, cols = perceptual.profiles(fps)  # [n, THUMB_SIZE] each
  for (w, h), small in classes:
    for (bw, bh), big in classes:
      if (bw, bh) == (w, h) or not (keep * bw <= w <= bw and keep * bh <= h <= bh):
        continue
      big = big[:CROP_SCAN]
      kept = (h / bh, w / bw)
      for start in range(0, len(small), CROP_CHUNK):
        part = small[start:start + CROP_CHUNK]
        close = _popcount(hashes[part][:, None] ^ hashes[big][None, :]) <= CROP_HAMMING
        a, b = np.nonzero(close)
        if not a.size:
          continue
        scores = np.full(close.shape, -1.0, np.float32)
        ua, ia = np.unique(a, return_inverse=True)  # only the images in a close pair
        ub, ib = np.unique(b, return_inverse=True)
        scores[a, b] = perceptual.profile_scores(
            (rows[part[ua]], cols[part[ua]]), (rows[big[ub]], cols[big[ub]]), kept, (ia, ib))
        chosen_a, chosen_b = _mutual_best(scores, a, b)
        out_i.append(part[chosen_a])
        out_j.append(big[chosen_b])
  if not out_i:
    return none
  return np.concatenate(out_i), np.concatenate(out_j)


def _mutual_best(scores: np.ndarray, a: np.ndarray, b: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray]:
  """The (a, b) entries of a score matrix that are at least CROP_PROFILE_MIN and among the
  CROP_NEIGHBOURS best of their row and of their column (ties admitted)."""
  k = CROP_NEIGHBOURS
  row_kth = (np.partition(scores, -k, axis=1)[:, -k] if scores.shape[1] > k
             else np.full(scores.shape[0], -np.inf, np.float32))
  col_kth = (np.partition(scores, -k, axis=0)[-k] if scores.shape[0] > k
             else np.full(scores.shape[1], -np.inf, np.float32))
  chosen = scores[a, b]
  ok = (chosen >= perceptual.CROP_PROFILE_MIN) & (chosen >= row_kth[a]) & (chosen >= col_kth[b])
  return a[ok], b[ok]


def verify_bucket(bucket: str, members: Iterable[Member],
                  threshold: float = perceptual.NEAR_DUPLICATE_THRESHOLD,
                  crop_checked: Optional[Dict[Pair, bool]] = None,
                  crop_threshold: float = perceptual.CROP_THRESHOLD) -> List[Pair]:
  """The confirmed near-duplicate pairs among one bucket's members ((key, fingerprint); a key
  seen twice -- identical bytes -- counts once). ``bucket`` is the bucket's key (for errors and
  tracing only); ``crop_checked`` remembers crop checks across the buckets a worker verifies (a
  pair shares up to BANDS buckets, and the crop check is the costly one).

  Direct pairs: all pairs of a bucket of up to MAX_BUCKET members (one matrix product), else
  each member with its WINDOW neighbours along the bucket's first principal axis (``_order``).
  Crop pairs: ``crop_candidates``, whatever the bucket's size."""
  unique: Dict[str, perceptual.Fingerprint] = {}
  for key, fp in members:
    unique.setdefault(key, fp)
  if len(unique) < 2:
    return []
  keys = sorted(unique)
  vectors = perceptual.unit_vectors([unique[k] for k in keys])  # [n, THUMB_SIZE**2]
  n = len(keys)
  if n <= MAX_BUCKET:
    i, j = np.triu_indices(n, 1)
    scores = (vectors @ vectors.T)[i, j]
  else:
    order = _order(vectors)
    keys = [keys[k] for k in order]
    vectors = vectors[order]
    steps = range(1, min(WINDOW, n - 1) + 1)
    i = np.concatenate([np.arange(n - step) for step in steps])
    j = np.concatenate([np.arange(step, n) for step in steps])
    scores = np.concatenate([np.einsum('ij,ij->i', vectors[:-step], vectors[step:])
                             for step in steps])
  out = {_pair(keys[a], keys[b]) for a, b in zip(i[scores >= threshold].tolist(),
                                                   j[scores >= threshold].tolist())}
  fps = [unique[k] for k in keys]
  small, big = crop_candidates(fps)
  for a, b in zip(small.tolist(), big.tolist()):
    pair = _pair(keys[a], keys[b])
    if pair in out:
      continue
    known = crop_checked.get(pair) if crop_checked is not None else None
    if known is None:
      fa, fb = fps[a], fps[b]
      known = (perceptual.direct_similarity(fa, fb) >= threshold
               or (perceptual.crop_similarity(fa, fb) or -1.0) >= crop_threshold)
      if crop_checked is not None:
        if len(crop_checked) >= CROP_CACHE:
          crop_checked.clear()
        crop_checked[pair] = known
    if known:
      out.add(pair)
  return sorted(out)


def _pair(a: str, b: str) -> Pair:
  return (a, b) if a < b else (b, a)


def components(pairs: Iterable[Pair]) -> List[List[str]]:
  """Connected components of pairs: each sorted, the list sorted by first key."""
  parent: Dict[str, str] = {}
  for a, b in pairs:
    _union(parent, a, b)
  return _groups(parent)


def _find(parent: Dict[str, str], x: str) -> str:
  root = x
  while parent.get(root, root) != root:
    root = parent[root]
  while parent.get(x, x) != root:
    parent[x], x = root, parent[x]
  return root


def _union(parent: Dict[str, str], a: str, b: str) -> None:
  parent.setdefault(a, a)
  parent.setdefault(b, b)
  ra, rb = _find(parent, a), _find(parent, b)
  if ra != rb:
    parent[max(ra, rb)] = min(ra, rb)


def _groups(parent: Dict[str, str]) -> List[List[str]]:
  by_root: Dict[str, List[str]] = collections.defaultdict(list)
  for x in list(parent):
    by_root[_find(parent, x)].append(x)
  return sorted(sorted(g) for g in by_root.values() if len(g) > 1)


def candidate_buckets(fingerprints: Dict[str, perceptual.Fingerprint]
                      ) -> Dict[str, List[Member]]:
  """{bucket key: [(key, fingerprint), ...]}: every fingerprint under its candidate_keys."""
  buckets: Dict[str, List[Member]] = collections.defaultdict(list)
  for key, fp in fingerprints.items():
    for bucket in perceptual.candidate_keys(fp):
      buckets[bucket].append((key, fp))
  return buckets


def group_pairs(fingerprints: Dict[str, perceptual.Fingerprint],
                threshold: float = perceptual.NEAR_DUPLICATE_THRESHOLD) -> List[List[str]]:
  """Near-duplicate groups ({key: fingerprint} -> sorted groups of sorted keys, size >= 2), in
  memory: the same buckets and checks as NearDuplicateGroups."""
  pairs: List[Pair] = []
  crop_checked: Dict[Pair, bool] = {}
  for bucket, members in candidate_buckets(fingerprints).items():
    pairs += verify_bucket(bucket, members, threshold, crop_checked)
  return components(pairs)


def candidate_pairs(sizes: Sequence[int]) -> int:
  """How many pairs buckets of these sizes compare (all pairs up to MAX_BUCKET members, else
  WINDOW neighbours each)."""
  return sum(n * (n - 1) // 2 if n <= MAX_BUCKET
             else sum(max(0, n - step) for step in range(1, WINDOW + 1)) for n in sizes)
