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
# check to run: the bench's crops (2-8% off each side) differ in 2-8.
CROP_HAMMING = 10

Pair = Tuple[str, str]  # (key, key), the smaller first


Member = Tuple[str, perceptual.Fingerprint]  # (key, fingerprint)


@functools.lru_cache(maxsize=1)
def _pooling() -> np.ndarray:
  """[THUMB_SIZE**2, 64]: a flattened thumbnail -> its 8x8 block means (one matrix product)."""
  side = perceptual.THUMB_SIZE
  block = np.kron(np.eye(8, dtype=np.float32), np.ones((side // 8, 1), np.float32))  # [side, 8]
  return (np.einsum('ia,jb->ijab', block, block).reshape(side * side, 64)
          / np.float32((side // 8) ** 2))


def _order(vectors: np.ndarray) -> np.ndarray:
  """The members of a large bucket in the order of their projection on the bucket's first
  principal axis (a few power iterations from a fixed start: deterministic): copies whose
  frames match (re-encoded, resized, re-compressed, re-exposed), whose vectors are nearly equal,
  land next to each other. A crop's vector is a few percent out of place: in a large bucket it
  is usually not within WINDOW of its original (bench/results/near_duplicates.md)."""
  centred = vectors @ _pooling()  # [n, 64]: 8x8 block means (the first axis is coarse anyway)
  centred -= centred.mean(axis=0)
  axis = centred[int(np.argmax(np.einsum('ij,ij->i', centred, centred)))]
  for _ in range(POWER_ITERATIONS):
    axis = centred.T @ (centred @ axis)
    norm = float(np.linalg.norm(axis))
    if norm == 0:
      break
    axis /= norm
  return np.argsort(centred @ axis, kind='stable')


def verify_bucket(bucket: str, members: Iterable[Member],
                  threshold: float = perceptual.NEAR_DUPLICATE_THRESHOLD,
                  crop_checked: Optional[Dict[Pair, bool]] = None) -> List[Pair]:
  """The confirmed near-duplicate pairs among one bucket's members ((key, fingerprint); a key
  seen twice -- identical bytes -- counts once). ``bucket`` is the bucket's key (for errors and
  tracing only); ``crop_checked`` remembers crop checks across the buckets a worker verifies (a
  pair shares up to BANDS buckets, and the crop check is the costly one)."""
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
  fps = [unique[k] for k in keys]
  # Pairs that pass as they are, and pairs whose sizes allow a pure crop: one image no larger
  # than the other on either axis, smaller on one, by at most MAX_CROP (checked one by one).
  heights = np.array([fp.height for fp in fps], np.float64)
  widths = np.array([fp.width for fp in fps], np.float64)
  ky, kx = heights[i] / heights[j], widths[i] / widths[j]
  nested = ((ky <= 1) & (kx <= 1)) | ((ky >= 1) & (kx >= 1))
  ky, kx = np.minimum(ky, 1 / ky), np.minimum(kx, 1 / kx)
  direct = scores >= threshold
  crop = (nested & (ky >= 1 - perceptual.MAX_CROP) & (kx >= 1 - perceptual.MAX_CROP)
          & ((ky < 1) | (kx < 1)) & ~direct)
  out = []
  look = direct | crop
  for a, b, passed in zip(i[look].tolist(), j[look].tolist(), direct[look].tolist()):
    pair = (keys[a], keys[b]) if keys[a] < keys[b] else (keys[b], keys[a])
    if not passed:
      known = crop_checked.get(pair) if crop_checked is not None else None
      if known is None:
        fa, fb = fps[a], fps[b]
        known = (perceptual.hamming(fa.chash, fb.chash) <= CROP_HAMMING
                 and perceptual.similarity(fa, fb) >= threshold)
        if crop_checked is not None:
          if len(crop_checked) >= CROP_CACHE:
            crop_checked.clear()
          crop_checked[pair] = known
      if not known:
        continue
    out.append(pair)
  return out


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
