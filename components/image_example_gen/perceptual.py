"""Perceptual fingerprints of decoded images, and the pixel check of a near-duplicate pair (pure:
NumPy only).

A radiograph re-exported, resized, re-compressed, brightness-shifted or cropped has other bytes
than the original, so the content hash (``image_sha256``) misses it. The Beam workers call
``fingerprint(to_grey(pixels))`` on the pixels they decode anyway and keep the ``Fingerprint``
(``to_text``); ``near_duplicates.py`` buckets the fingerprints by ``candidate_keys`` and keeps
the pairs the pixel check (``is_near_duplicate``) confirms.

A fingerprint holds:

- ``thumb``: a THUMB_SIZE x THUMB_SIZE grey thumbnail (area averages), tone-normalised: its 2nd
  percentile -> 0, its 80th -> STORED_HIGH, linear above up to 1 (headroom for the crop check).
- ``phash``: the 64-bit DCT hash of the frame (pHash: the 8x8 lowest frequencies of the 32x32
  thumbnail, each bit "above the median"), as imagehash computes it on its 32x32 resize.
- ``chash``: a CONTENT_HASH_BITS-bit DCT hash in a content frame: the thumbnail resampled around
  the centroid of its detail (the energy of the high-pass thumbnail, tapered towards the edges),
  scaled by that detail's spread, then its 6x6 lowest frequencies but the mean. A crop of a few
  percent moves the frame but hardly the content frame, so a crop keeps most ``chash`` bits
  (and shares a band of them with its original: ``candidate_keys``) while its ``phash`` does
  not.
- ``width``, ``height``: the decoded size (a pure crop keeps the pixel scale).

Written here, not taken from imagehash: imagehash works on PIL images (the workers hold NumPy
arrays) and has neither the content frame nor the pixel check, and its phash alone costs ~3x
this whole fingerprint (bench/results/near_duplicates.md).

The pixel check (``similarity``): the correlation of the two thumbnails, both clipped at their
80th percentile (a brightened copy saturates its brightest few percent; both then lose the same
bright fifth), at the better of two alignments: the frames as they are (re-encoded, resized,
re-compressed, brightness-shifted copies), and, when one image is smaller than the other in
each dimension by at most MAX_CROP, the offset at which the smaller lies inside the larger at
the same pixel scale (a crop), found on the row and column profiles and refined in 2-D. A crop
resized afterwards to the original's size is not looked for: it needs a free scale, and with
one, distinct radiographs -- which all look alike -- align too well.
"""
import base64
import dataclasses
import functools
from typing import List, Optional, Sequence, Tuple

import numpy as np

THUMB_SIZE = 32  # the stored thumbnail's side (bytes: THUMB_SIZE ** 2, one per pixel)
HASH_SIZE = 8  # phash: the HASH_SIZE x HASH_SIZE lowest frequencies -> 64 bits
CONTENT_HASH_SIZE = 6  # chash: the 6 x 6 lowest frequencies but the mean -> 35 bits
CONTENT_HASH_BITS = CONTENT_HASH_SIZE ** 2 - 1
# The pixel check's default: the clipped thumbnails of a pair correlate at least this much
# (1 = identical). Measured on the bench's planted sets (bench/results/near_duplicates.md):
# copies >= 0.998, crops >= 0.995; distinct synthetic radiographs, which share their whole
# anatomy, at most 0.988 (demo) and 0.994 (the second generator). Higher: fewer look-alikes
# grouped, and crops missed first.
NEAR_DUPLICATE_THRESHOLD = 0.995
MAX_CROP = 0.25  # a crop is looked for when the smaller image keeps >= 75% of each side
BANDS = 5  # candidate keys: the content hash cut into BANDS bands
# The thumbnail's tone: its TONE_LOW quantile -> 0, its TONE_HIGH quantile -> STORED_HIGH, the
# rest linear and clipped at 1 (headroom for the crop check). The comparison clips at
# STORED_HIGH: a brightened copy saturates its brightest few percent, and both images of a pair
# then lose the same bright fifth.
TONE_LOW, TONE_HIGH = 0.02, 0.80
STORED_HIGH = 0.8
_STORED_HIGH_LEVEL = round(STORED_HIGH * 255)
CROP_STEPS = 49  # offsets tried per axis for a crop (row and column profiles)
# Thumbnail cells: the crop check blurs both views this much (the window is resampled from the
# larger image's cells). Measured: crops >= 0.996, distinct pairs through the crop check at
# most 0.993 (the second generator); a blur of 1 cell lets distinct pairs through.
CROP_BLUR = 0.5
CROP_CANDIDATES = 3  # the best offsets per axis whose combinations are compared in 2-D
# A crop's row and column profiles correlate with the original's at its offset at least this
# much (the bench's crops: >= 0.98); below, the pair is no crop and the 2-D check is skipped.
CROP_PROFILE_MIN = 0.97
_HIGH_PASS_SIGMA = 1.0  # thumbnail cells
_FRAME_SPREAD = 1.5  # the content frame spans centroid +- this many standard deviations
_MIN_CONTRAST = 2 / 255
_TEXT_VERSION = 'pf1'
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as PIL's convert('L')


def to_grey(pixels: np.ndarray) -> np.ndarray:
  """A decoded image, [H, W] or [H, W, C] (C in 1..4), uint8 or uint16 (or already float in
  [0, 1]), -> float32 grey [H, W] in [0, 1]. Colour: luma (ITU-R 601); alpha dropped."""
  a = np.asarray(pixels)
  if a.ndim == 3:
    channels = a.shape[2]
    if channels in (1, 2):  # grey, grey + alpha
      a = a[:, :, 0]
    elif channels in (3, 4):
      scale = _LUMA / np.float32(_full_scale(a.dtype))
      out = a[:, :, :3] @ scale
      return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
    else:
      raise ValueError(f'an image has 1 to 4 channels, got shape {a.shape}')
  elif a.ndim != 2:
    raise ValueError(f'an image is [H, W] or [H, W, C], got shape {a.shape}')
  out = a.astype(np.float32)
  out *= np.float32(1.0 / _full_scale(a.dtype))
  return out


def _full_scale(dtype) -> float:
  if dtype == np.uint8:
    return 255.0
  if dtype == np.uint16:
    return 65535.0
  if np.issubdtype(dtype, np.floating):
    return 1.0
  raise ValueError(f'pixels must be uint8, uint16 or float in [0, 1], got {dtype}')


@dataclasses.dataclass(frozen=True)
class Fingerprint:
  """An image's perceptual fingerprint (see the module docstring). ``thumb``: THUMB_SIZE**2
  bytes, row-major, tone-normalised grey; ``phash`` 64 bits, ``chash`` CONTENT_HASH_BITS."""
  phash: int
  chash: int
  thumb: bytes
  width: int
  height: int

  def to_text(self) -> str:
    """'pf1:<phash hex>:<chash hex>:<W>x<H>:<thumb base64>': ASCII, ~1.4 KB."""
    return (f'{_TEXT_VERSION}:{self.phash:016x}:{self.chash:016x}:{self.width}x{self.height}:'
            + base64.b64encode(self.thumb).decode('ascii'))

  @classmethod
  def from_text(cls, text: str) -> 'Fingerprint':
    try:
      version, phash, chash, size, thumb = text.split(':')
      width, height = size.split('x')
      fp = cls(int(phash, 16), int(chash, 16), base64.b64decode(thumb, validate=True),
               int(width), int(height))
    except ValueError as e:
      raise ValueError(f'not a fingerprint: {text[:60]!r}… ({e})') from e
    if version != _TEXT_VERSION or len(fp.thumb) != THUMB_SIZE ** 2:
      raise ValueError(f'not a {_TEXT_VERSION} fingerprint with a {THUMB_SIZE}x{THUMB_SIZE} '
                       f'thumbnail: {text[:60]!r}…')
    return fp

  def thumbnail(self) -> np.ndarray:
    """The thumbnail as float32 [THUMB_SIZE, THUMB_SIZE] in [0, 1]."""
    return np.frombuffer(self.thumb, np.uint8).reshape(THUMB_SIZE, THUMB_SIZE) / np.float32(255)


# --- Downscaling and filters (small matrices built once) ---------------------------------------


def box_downscale(grey: np.ndarray, size: int) -> np.ndarray:
  """Area average to [size, size] (float32): block sums of fy x fx pixels down to < 2x size
  first (one pass over the image), then exact area weights on the small array. Images smaller
  than size are upsampled by the same weights (nearest)."""
  h, w = grey.shape
  fy, fx = max(1, h // size), max(1, w // size)
  hh, ww = (h // fy) * fy, (w // fx) * fx
  small = np.asarray(grey, np.float32)
  if fy > 1:
    small = small[:hh].reshape(hh // fy, fy, w).sum(axis=1)
  if fx > 1:
    small = small[:, :ww].reshape(small.shape[0], ww // fx, fx).sum(axis=2)
  # The block sums drop the last h % fy rows (w % fx columns); the weights keep each output
  # cell where it is in the whole frame (h / fy small rows), so no copy is shifted against another.
  rows = _area_matrix(small.shape[0], size, h / fy)
  cols = _area_matrix(small.shape[1], size, w / fx)
  return (rows @ small @ cols.T) * np.float32(1.0 / (fy * fx))


@functools.lru_cache(maxsize=1024)
def _area_matrix(n: int, size: int, span: float) -> np.ndarray:
  """[size, n]: row i averages the input cells overlapping output cell i, by overlap; the output
  spans ``span`` input cells (>= n: the part beyond n is missing and left out)."""
  edges = np.arange(size + 1) * (span / size)
  j = np.arange(n)[None, :]
  m = np.clip(np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j), 0, None)
  m = m.astype(np.float32)
  return m / m.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=8)
def blur_matrix(n: int, sigma: float) -> np.ndarray:
  """[n, n] Gaussian blur along one axis, edges renormalised (no darkening at the border)."""
  x = np.arange(n, dtype=np.float64)
  k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
  k[k < 1e-6] = 0  # no denormal float32s: they make every product with them ~100x slower
  return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, k: int) -> np.ndarray:
  """[k, n]: the k lowest DCT-II basis vectors of length n."""
  j = np.arange(n)
  return np.cos(np.pi * (2 * j[None, :] + 1) * np.arange(k)[:, None] / (2 * n)).astype(np.float32)


def _quantiles(t: np.ndarray, low: float, high: float) -> Tuple[float, float]:
  """The low and high quantiles of t (nearest rank; np.partition, ~5x faster than np.quantile)."""
  flat = t.ravel()
  n = flat.size - 1
  lo_at, hi_at = int(round(low * n)), int(round(high * n))
  part = np.partition(flat, (lo_at, hi_at))
  return float(part[lo_at]), float(part[hi_at])


def _tone(t: np.ndarray, top: float = 1.0) -> np.ndarray:
  """t's TONE_LOW quantile -> 0, its TONE_HIGH quantile -> ``top``, clipped to [0, 1]."""
  lo, hi = _quantiles(t, TONE_LOW, TONE_HIGH)
  # A flat image (less than _MIN_CONTRAST between the quantiles: blank, or float noise of an
  # area average) stays flat instead of having its noise stretched into a pattern.
  return np.clip((t - lo) * np.float32(top / max(hi - lo, _MIN_CONTRAST)), 0.0,
                 1.0).astype(np.float32)


def high_pass(t: np.ndarray) -> np.ndarray:
  """t minus its Gaussian blur (sigma _HIGH_PASS_SIGMA cells)."""
  rows, cols = blur_matrix(t.shape[0], _HIGH_PASS_SIGMA), blur_matrix(t.shape[1],
                                                                        _HIGH_PASS_SIGMA)
  return t - rows @ t @ cols.T


def _bits(values: np.ndarray) -> int:
  """Bit i (most significant first) = values[i] above their median (np.median's: the mean of
  the two middle values for an even count)."""
  n = values.size
  part = np.partition(values, (n // 2 - 1, n // 2)) if n % 2 == 0 else np.partition(values, n // 2)
  median = (part[n // 2 - 1] + part[n // 2]) / 2 if n % 2 == 0 else part[n // 2]
  packed = np.packbits(values > median)  # pads the last byte with zeros on the right
  return int.from_bytes(packed.tobytes(), 'big') >> (packed.size * 8 - n)


def _dct_hash(t: np.ndarray) -> int:
  """pHash of a square array: DCT, the HASH_SIZE**2 lowest frequencies, bit = above their median
  (the DC term included, as imagehash does), first row first, most significant bit first."""
  d = _dct_matrix(t.shape[0], HASH_SIZE)
  return _bits((d @ t @ d.T).ravel())


def _content_hash(t: np.ndarray) -> int:
  """The DCT hash (CONTENT_HASH_SIZE lowest frequencies, the mean left out) of t resampled over
  its content frame: centroid of the high-pass energy +- _FRAME_SPREAD standard deviations on
  each axis (bilinear, edges clamped). The energy is tapered towards the frame's edges, so the
  strip a crop cuts off weighs little. (Few, small NumPy operations: this runs per image.)"""
  n = t.shape[0]
  energy = np.abs(high_pass(t))
  energy *= _taper(n)
  profiles = np.stack((energy.sum(axis=1), energy.sum(axis=0)))  # [2, n]: rows, columns
  total = float(profiles[0].sum())
  if total <= 0:
    centre, spread = np.full(2, n / 2), np.full(2, n / 4)
  else:
    first, second = (profiles @ _powers(n)).T / total  # [2] each: E[x], E[x^2] per axis
    centre, spread = first, np.sqrt(np.maximum(second - first ** 2, 1.0))
  # [2, n]: the sample positions of the window's rows, then its columns.
  positions = centre[:, None] + (_FRAME_SPREAD * spread)[:, None] * _unit_grid(n)[None, :] - 0.5
  interp = _interp_matrix(positions.ravel(), n)  # [2n, n]
  window = interp[:n] @ t @ interp[n:].T
  d = _dct_matrix(n, CONTENT_HASH_SIZE)
  return _bits((d @ window @ d.T).ravel()[1:])


@functools.lru_cache(maxsize=4)
def _powers(n: int) -> np.ndarray:
  """[n, 2]: cell centres and their squares (first and second moments in one product)."""
  c = np.arange(n, dtype=np.float32) + 0.5
  return np.stack((c, c * c), axis=1)


@functools.lru_cache(maxsize=4)
def _unit_grid(n: int) -> np.ndarray:
  """n cell centres spread over [-1, 1]."""
  return ((np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _taper(n: int) -> np.ndarray:
  s = (np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2).astype(np.float32)
  return np.outer(s, s)


def _interp_matrix(positions: np.ndarray, n: int) -> np.ndarray:
  """[len(positions), n]: linear interpolation at fractional cell positions (clamped): the hat
  function 1 - |x - j|."""
  x = np.clip(np.asarray(positions, np.float32), 0, n - 1)
  return np.maximum(np.float32(0), 1 - np.abs(x[:, None] - _cells(n)[None, :]))


@functools.lru_cache(maxsize=8)
def _cells(n: int) -> np.ndarray:
  return np.arange(n, dtype=np.float32)


def _bilinear_rows_cols(t: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
  return _interp_matrix(ys, t.shape[0]) @ t @ _interp_matrix(xs, t.shape[1]).T


# --- The fingerprint ---------------------------------------------------------------------------


def fingerprint(grey: np.ndarray) -> Fingerprint:
  """The fingerprint of a grey image (``to_grey``'s output, [H, W] float32 in [0, 1])."""
  h, w = grey.shape
  return from_area_thumbnail(box_downscale(grey, THUMB_SIZE), w, h)


def from_area_thumbnail(area: np.ndarray, width: int, height: int) -> Fingerprint:
  """The fingerprint from the image's area-average thumbnail ([THUMB_SIZE, THUMB_SIZE] grey in
  [0, 1], ``box_downscale``) and its size: ``fingerprint`` less the downscale."""
  thumb = _tone(area, STORED_HIGH)
  stored = np.round(thumb * 255).astype(np.uint8).tobytes()
  return Fingerprint(_dct_hash(thumb), _content_hash(thumb), stored, int(width), int(height))


def hamming(a: int, b: int) -> int:
  return bin(a ^ b).count('1')


def candidate_keys(fp: Fingerprint) -> List[str]:
  """LSH bucket keys: the content hash cut into BANDS bands ('c<band>:<bits hex>'). A copy keeps
  nearly every chash bit (a crop of a few percent most of them) and so shares a band with its
  original; two distinct radiographs share one less often, and a bucket too large for all pairs
  is searched in neighbourhoods (near_duplicates.py)."""
  out = []
  bits = CONTENT_HASH_BITS
  for i in range(BANDS):
    lo, hi = bits * i // BANDS, bits * (i + 1) // BANDS
    out.append(f'c{i}:{(fp.chash >> lo) & ((1 << (hi - lo)) - 1):x}')
  return out


# --- The pixel check ---------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
  x = (x - x.mean()).ravel()
  norm = float(np.linalg.norm(x))
  return x / norm if norm > 0 else x


@functools.lru_cache(maxsize=1024)
def _prepared(thumb: bytes) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(unit vector of the thumbnail, row profile, column profile) of a stored one."""
  t = np.frombuffer(thumb, np.uint8).reshape(THUMB_SIZE, THUMB_SIZE).astype(np.float32) / 255
  return (_unit(np.minimum(t, np.float32(_STORED_HIGH_LEVEL / 255))).astype(np.float32),
          t.mean(axis=1), t.mean(axis=0))


def unit_vector(fp: Fingerprint) -> np.ndarray:
  """The vector whose dot product with another's is their direct similarity: the re-toned
  thumbnail, centred, unit length, float32 [THUMB_SIZE**2]."""
  return unit_vectors([fp])[0]


def unit_vectors(fps: Sequence[Fingerprint]) -> np.ndarray:
  """``unit_vector`` of many fingerprints at once, [n, THUMB_SIZE**2] float32 (one partition and
  a few array operations for the lot: a bucket's pairs are then one matrix product)."""
  n_cells = THUMB_SIZE ** 2
  t = np.frombuffer(b''.join(fp.thumb for fp in fps), np.uint8).reshape(len(fps), n_cells)
  # Stored in the comparison's tone already, but for the headroom: clip it.
  t = np.minimum(t, np.uint8(_STORED_HIGH_LEVEL)).astype(np.float32)
  t -= t.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(t, axis=1, keepdims=True)
  return (t / np.where(norms > 0, norms, 1)).astype(np.float32)


def direct_similarity(a: Fingerprint, b: Fingerprint) -> float:
  """Correlation of the re-toned thumbnails, frames as they are."""
  return float(_prepared(a.thumb)[0] @ _prepared(b.thumb)[0])


def _window_matrix(offset: float, kept: float, n: int = THUMB_SIZE) -> np.ndarray:
  """[n, n]: area weights of the window [offset, offset + kept] (fractions of the frame) cut
  into n cells, over the n cells of the whole frame."""
  edges = (offset + kept * np.arange(n + 1) / n) * n
  j = np.arange(n)[None, :]
  m = np.clip(np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j), 0, None)
  return (m / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _best_offsets(kept: float, profile_big: np.ndarray, profile_small: np.ndarray
                  ) -> Tuple[np.ndarray, float]:
  """Along one axis: the CROP_CANDIDATES offsets (fractions of big's frame) at which big's
  profile, resampled over a window of ``kept``, best correlates with small's, and the best
  correlation."""
  if kept >= 1:
    offsets = np.zeros(1)
  else:
    offsets = np.linspace(0.0, 1.0 - kept, CROP_STEPS)
  centres = (np.arange(THUMB_SIZE) + 0.5) / THUMB_SIZE
  at = (offsets[:, None] + kept * centres[None, :]) * THUMB_SIZE - 0.5  # [steps, THUMB_SIZE]
  sampled = np.interp(at.ravel(), np.arange(THUMB_SIZE), profile_big).reshape(at.shape)
  sampled -= sampled.mean(axis=1, keepdims=True)
  target = profile_small - profile_small.mean()
  score = (sampled @ target) / (np.linalg.norm(sampled, axis=1) * np.linalg.norm(target) + 1e-9)
  best = np.argsort(-score, kind='stable')[:CROP_CANDIDATES]
  return offsets[best], float(score[best[0]])


def _crop_similarity(big: Fingerprint, small: Fingerprint) -> Optional[float]:
  """``small`` as a same-scale crop of ``big``: the best offsets on each axis (row and column
  profiles; a pair whose profiles do not match that well is no crop), then the best correlation
  of big's window at their combinations with small. None when the sizes rule a crop out (not
  smaller on both axes, or smaller by more than MAX_CROP)."""
  ky, kx = small.height / big.height, small.width / big.width
  if not (1 - MAX_CROP <= ky <= 1 and 1 - MAX_CROP <= kx <= 1) or (ky == 1 and kx == 1):
    return None
  target_vector, rows_s, cols_s = _prepared(small.thumb)
  _, rows_b, cols_b = _prepared(big.thumb)
  offsets_y, score_y = _best_offsets(ky, rows_b, rows_s)
  offsets_x, score_x = _best_offsets(kx, cols_b, cols_s)
  if min(score_y, score_x) < CROP_PROFILE_MIN:
    return None
  big_thumb = big.thumbnail()
  small_thumb = small.thumbnail()
  wxs = [_window_matrix(float(ox), kx) for ox in offsets_x]
  # Both views re-toned on their own quantiles (the window's frame had more dark border): the
  # stored headroom above the TONE_HIGH quantile is what makes this possible.
  # Both blurred by CROP_BLUR cells: the window is resampled from big's cells, which a small
  # offset smears; the blur makes both alike in that (it costs distinct pairs little).
  blur = blur_matrix(THUMB_SIZE, CROP_BLUR) if CROP_BLUR > 0 else None

  def view(t):
    t = _tone(t)
    return _unit(blur @ t @ blur.T if blur is not None else t)

  target = view(small_thumb)
  return max(float(view(wy @ big_thumb @ wx.T) @ target)
             for wy in (_window_matrix(float(oy), ky) for oy in offsets_y) for wx in wxs)


def similarity(a: Fingerprint, b: Fingerprint) -> float:
  """The pixel check's score in [-1, 1]: the better of the direct correlation and, when the sizes
  allow one, the crop alignment's (see the module docstring)."""
  best = direct_similarity(a, b)
  for big, small in ((a, b), (b, a)):
    crop = _crop_similarity(big, small)
    if crop is not None:
      best = max(best, crop)
  return best


def is_near_duplicate(a: Fingerprint, b: Fingerprint,
                      threshold: float = NEAR_DUPLICATE_THRESHOLD) -> bool:
  """``similarity(a, b) >= threshold``; the crop alignment only runs when the direct score falls
  short."""
  if direct_similarity(a, b) >= threshold:
    return True
  return similarity(a, b) >= threshold
