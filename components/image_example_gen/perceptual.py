"""Perceptual fingerprints of decoded images, and the pixel check of a near-duplicate pair (pure:
NumPy and OpenCV).

A radiograph re-exported, resized, re-compressed, brightness-shifted or cropped has other bytes
than the original, so the content hash (``image_sha256``) misses it. The Beam workers call
``fingerprint(pixels)`` on the pixels they decode anyway and keep the ``Fingerprint``
(``to_text``); ``near_duplicates.py`` buckets the fingerprints by ``candidate_keys`` and keeps
the pairs the pixel check (``is_near_duplicate``) confirms.

A fingerprint holds:

- ``thumb``: a THUMB_SIZE x THUMB_SIZE grey thumbnail, the exact area average of the image
  (``area_thumbnail``: the integral image read at the cells' fractional corners), tone-normalised:
  its 2nd percentile -> 0, its 80th -> STORED_HIGH, linear above up to 1 (headroom for the crop
  check). Exact matters: distinct renders of one template correlate up to 0.998 on the
  thumbnail, and an approximate average (block sums split at the cell edges) moves a resized
  copy about as far from its original.
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

The pixel check: the correlation of the two thumbnails, both clipped at their 80th percentile (a
brightened copy saturates its brightest few percent; both then lose the same bright fifth),
frames as they are (``direct_similarity``, held to NEAR_DUPLICATE_THRESHOLD: re-encoded, resized,
re-compressed, brightness-shifted copies); and, when one image is smaller than the other in each
dimension by at most MAX_CROP, at the offset where the smaller lies inside the larger at the same
pixel scale (``crop_similarity``, held to CROP_THRESHOLD: a crop), found on the row and column
profiles (``profile_scores`` does this first stage for many pairs at once) and refined in 2-D. A
crop resized afterwards to the original's size is not looked for: it needs a free scale, and
with one, distinct radiographs -- which all look alike -- align too well.
"""
import base64
import dataclasses
import functools
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from components import errors

THUMB_SIZE = 32  # the stored thumbnail's side (bytes: THUMB_SIZE ** 2, one per pixel)
HASH_SIZE = 8  # phash: the HASH_SIZE x HASH_SIZE lowest frequencies -> 64 bits
CONTENT_HASH_SIZE = 6  # chash: the 6 x 6 lowest frequencies but the mean -> 35 bits
CONTENT_HASH_BITS = CONTENT_HASH_SIZE ** 2 - 1
# The pixel check's default: the clipped thumbnails of a pair, frames as they are, correlate at
# least this much (1 = identical). Measured (bench/results/near_duplicates.md): re-encoded,
# resized, re-compressed and brightness-shifted copies >= 0.9993; the closest pair of distinct
# renders among all 224 million pairs of the 21,165 demo images 0.9977, distinct films of the
# second generator at most 0.9915. Both sides are ~2x away from 0.9988 in 1 - correlation.
NEAR_DUPLICATE_THRESHOLD = 0.9988
# The crop check's threshold (``crop_similarity``): a crop, re-toned on its own frame and
# matched to a window resampled from the larger image's cells, matches less closely than a whole
# copy. Measured: the bench's crops >= 0.9978; distinct films of a size that allows a crop, at
# most 0.9916 through the crop check (the second generator), 0.9837 (demo renders).
CROP_THRESHOLD = 0.996
MAX_CROP = 0.25  # a crop is looked for when the smaller image keeps >= 75% of each side
BANDS = 7  # candidate keys: the content hash cut into BANDS bands (5 bits each)
# The thumbnail's tone: its TONE_LOW quantile -> 0, its TONE_HIGH quantile -> STORED_HIGH, the
# rest linear and clipped at 1 (headroom for the crop check). The comparison clips at
# STORED_HIGH: a brightened copy saturates its brightest few percent, and both images of a pair
# then lose the same bright fifth.
TONE_LOW, TONE_HIGH = 0.02, 0.80
STORED_HIGH = 0.8
_STORED_HIGH_LEVEL = round(STORED_HIGH * 255)
CROP_STEPS = 49  # offsets tried per axis for a crop (row and column profiles)
# Thumbnail cells: the crop check blurs both views this much (the window is resampled from the
# larger image's cells; a blur of 1 cell lets distinct pairs through).
CROP_BLUR = 0.5
CROP_CANDIDATES = 3  # the best offsets per axis whose combinations are compared in 2-D
# A crop's row and column profiles correlate with the original's at its offset at least this
# much (the bench's crops: >= 0.98); below, the pair is no crop and the 2-D check is skipped.
CROP_PROFILE_MIN = 0.97
_HIGH_PASS_SIGMA = 1.0  # thumbnail cells
_FRAME_SPREAD = 1.5  # the content frame spans centroid +- this many standard deviations
_MIN_CONTRAST = 2 / 255
_TEXT_VERSION = 'pf2'
_OLD_VERSIONS = ('pf1',)  # texts from before the exact area thumbnail: not comparable
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


def is_current(text: str) -> bool:
  """Whether a fingerprint text is of this version (texts of older versions cannot be compared
  with it: FingerprintVersionError)."""
  return text.startswith(_TEXT_VERSION + ':')


class FingerprintVersionError(errors.CxrError, ValueError):
  """A fingerprint text of an older version: the message says how to re-ingest."""


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
    """'pf2:<phash hex>:<chash hex>:<W>x<H>:<thumb base64>': ASCII, ~1.4 KB."""
    return (f'{_TEXT_VERSION}:{self.phash:016x}:{self.chash:016x}:{self.width}x{self.height}:'
            + base64.b64encode(self.thumb).decode('ascii'))

  @classmethod
  def from_text(cls, text: str) -> 'Fingerprint':
    """The fingerprint of a ``to_text`` text. A text of an older version (fingerprints published
    next to a split manifest by an earlier cxr-tfx) raises FingerprintVersionError: its
    thumbnail was computed otherwise and cannot be compared with this version's."""
    version = text.split(':', 1)[0]
    if version in _OLD_VERSIONS:
      raise FingerprintVersionError(
          f'a perceptual fingerprint of version {version!r} (published with an earlier split '
          f'manifest, {text[:24]!r}...) cannot be compared with this version\'s '
          f'({_TEXT_VERSION!r}: another thumbnail). Re-ingest the prior spans with '
          '--fresh-splits (new fingerprints are published), or run with --near-duplicates off.')
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


def area_thumbnail(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
  """The exact area average of an image to [size, size] float32 grey in [0, 1]: the integral
  image (cv2.integral, one pass in C), read at the cells' fractional corners by bilinear
  interpolation -- exact for pixels taken as constant over their square. ``pixels``: uint8 grey
  [H, W] (or [H, W, 1]) directly, else ``to_grey``'s float output (or anything it takes).
  (cv2.resize's INTER_AREA gives the same averages but takes ~5x longer at a non-integer
  factor; an image smaller than ``size`` is upsampled by the same weights: nearest.)"""
  a = np.asarray(pixels)
  if a.ndim == 3 and a.shape[2] == 1:
    a = a[:, :, 0]
  if a.dtype == np.uint8 and a.ndim == 2:
    # int32 sums while they cannot overflow (up to ~8.4 million pixels), else float64 (exact)
    depth = cv2.CV_32S if a.size * 255 < 2 ** 31 else cv2.CV_64F
    integral, scale = cv2.integral(a, sdepth=depth), 1.0 / 255
  else:
    grey = a if a.ndim == 2 and a.dtype == np.float32 else to_grey(a)
    integral, scale = cv2.integral(grey, sdepth=cv2.CV_64F), 1.0
  h, w = a.shape[:2]
  at, weights = _corner_taps(h, w, size)
  # [size + 1, size + 1]: the integral at the cells' corners, bilinear within a pixel (the four
  # whole-pixel corners around each: one gather, one weighted sum in float64).
  corners = np.einsum('kij,kij->ij', integral.ravel()[at], weights)
  sums = corners[1:, 1:] - corners[:-1, 1:]
  sums -= corners[1:, :-1]
  sums += corners[:-1, :-1]
  sums *= scale * size * size / (h * w)
  return sums.astype(np.float32)


@functools.lru_cache(maxsize=256)
def _corner_taps(h: int, w: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
  """([4, size + 1, size + 1] flat indices into an [h + 1, w + 1] integral image, their
  bilinear weights, float64): the cell edges at i * h / size (rows) and j * w / size (columns),
  each between the whole pixels y0 and y0 + 1 (x0 and x0 + 1). Built from each side's edges
  (cached apart: a dataset of many sizes has far fewer heights and widths than shapes)."""
  y0, wy = _edges(h, size)
  x0, wx = _edges(w, size)
  offsets = np.array([0, 1, w + 1, w + 2])[:, None, None]  # the four corners around a point
  at = (y0 * (w + 1))[None, :, None] + x0[None, None, :] + offsets
  return at, wy[[0, 0, 1, 1], :, None] * wx[[0, 1, 0, 1], None, :]


@functools.lru_cache(maxsize=4096)
def _edges(n: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
  """The size + 1 cell edges over n pixels: (whole pixel index y0, at most n - 1; [2, size + 1]
  weights of y0 and y0 + 1)."""
  e = np.arange(size + 1) * (n / size)
  whole = np.minimum(np.floor(e).astype(np.int64), n - 1)
  fraction = e - whole
  return whole, np.stack((1 - fraction, fraction))


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
  out = (t - np.float32(lo)).astype(np.float32, copy=False)
  out *= np.float32(top / max(hi - lo, _MIN_CONTRAST))
  np.maximum(out, np.float32(0), out=out)
  return np.minimum(out, np.float32(1), out=out)


def high_pass(t: np.ndarray) -> np.ndarray:
  """t minus its Gaussian blur (sigma _HIGH_PASS_SIGMA cells; cv2.GaussianBlur, edges
  reflected)."""
  return t - cv2.GaussianBlur(t, (0, 0), _HIGH_PASS_SIGMA)


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
  # |high_pass(t)|, tapered
  energy = np.multiply(cv2.absdiff(t, cv2.GaussianBlur(t, (0, 0), _HIGH_PASS_SIGMA)), _taper(n))
  m = cv2.moments(energy)  # the energy's raw and central moments, pixel centres at integers
  if m['m00'] <= 0:
    cy = cx = n / 2
    sy = sx = n / 4
  else:  # cell centres at j + 0.5
    cy, cx = m['m01'] / m['m00'] + 0.5, m['m10'] / m['m00'] + 0.5
    sy = math.sqrt(max(m['mu02'] / m['m00'], 1.0))
    sx = math.sqrt(max(m['mu20'] / m['m00'], 1.0))
  # The window: n samples per axis at centre + _FRAME_SPREAD * spread * (cell centres spread
  # over [-1, 1]), bilinear with the edges clamped -- an axis-aligned affine map (cv2.warpAffine
  # reads the source at M @ (x, y, 1) for each output cell).
  step_y, step_x = 2 * _FRAME_SPREAD * sy / n, 2 * _FRAME_SPREAD * sx / n
  inverse = np.array([[step_x, 0.0, cx - 0.5 - _FRAME_SPREAD * sx + step_x / 2],
                      [0.0, step_y, cy - 0.5 - _FRAME_SPREAD * sy + step_y / 2]])
  window = cv2.warpAffine(t, inverse, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
  d = _dct_matrix(n, CONTENT_HASH_SIZE)
  return _bits((d @ window @ d.T).ravel()[1:])


@functools.lru_cache(maxsize=4)
def _taper(n: int) -> np.ndarray:
  s = (np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2).astype(np.float32)
  return np.outer(s, s)


# --- The fingerprint ---------------------------------------------------------------------------


def fingerprint(grey: np.ndarray) -> Fingerprint:
  """The fingerprint of an image: ``to_grey``'s output ([H, W] float32 in [0, 1]) or the decoded
  pixels themselves (uint8 grey is read as it is, without a float copy)."""
  h, w = np.shape(grey)[:2]
  return from_area_thumbnail(area_thumbnail(grey), w, h)


def from_area_thumbnail(area: np.ndarray, width: int, height: int) -> Fingerprint:
  """The fingerprint from the image's area-average thumbnail ([THUMB_SIZE, THUMB_SIZE] grey in
  [0, 1], ``area_thumbnail``) and its size: ``fingerprint`` less the downscale."""
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
  stored = np.frombuffer(b''.join(fp.thumb for fp in fps), np.uint8).reshape(len(fps), n_cells)
  # Stored in the comparison's tone already, but for the headroom: clip it.
  t = np.minimum(stored, np.uint8(_STORED_HIGH_LEVEL)).astype(np.float32)
  t -= t.mean(axis=1, keepdims=True)
  norms = np.sqrt(np.einsum('ij,ij->i', t, t))[:, None]
  t /= np.where(norms > 0, norms, np.float32(1))
  return t


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


SCREEN_STEPS = 17  # offsets per axis tried by profile_scores (the crop screen)


def profiles(fps: Sequence[Fingerprint]) -> Tuple[np.ndarray, np.ndarray]:
  """([n, THUMB_SIZE] row profiles, [n, THUMB_SIZE] column profiles) of stored thumbnails: the
  crop check's first stage compares these."""
  t = _thumbs(fps)
  return t.mean(axis=2), t.mean(axis=1)


def profile_scores(small: Tuple[np.ndarray, np.ndarray], big: Tuple[np.ndarray, np.ndarray],
                   kept: Tuple[float, float], pairs: Tuple[np.ndarray, np.ndarray]
                   ) -> np.ndarray:
  """[len(pairs[0])]: how well small image i fits as a same-scale crop of big image j, for each
  (i, j) of ``pairs``, by its row and column profiles alone (``profiles`` of the smaller images,
  all of one size, and of the larger ones, all of one size; ``kept``: (height ratio, width
  ratio)): the lower of the two best profile correlations over SCREEN_STEPS offsets per axis --
  the crop check's first stage for many pairs at once, which ranks crop candidates."""
  i, j = pairs
  out = np.full(len(i), np.inf, np.float32)
  for target, sampled, ratio in zip(small, big, kept):  # rows, then columns
    target = _centred_unit(target)  # [smalls, THUMB_SIZE]
    windows = _centred_unit((sampled @ _profile_windows(round(ratio, 6))).reshape(
        len(sampled), -1, THUMB_SIZE))  # [bigs, steps, THUMB_SIZE]
    for start in range(0, len(i), 4096):
      ii, jj = i[start:start + 4096], j[start:start + 4096]
      best = np.einsum('pk,psk->ps', target[ii], windows[jj]).max(axis=1)
      np.minimum(out[start:start + 4096], best, out=out[start:start + 4096])
  return out


def _thumbs(fps: Sequence[Fingerprint]) -> np.ndarray:
  return np.frombuffer(b''.join(fp.thumb for fp in fps), np.uint8).reshape(
      len(fps), THUMB_SIZE, THUMB_SIZE).astype(np.float32)


def _centred_unit(x: np.ndarray) -> np.ndarray:
  """x less its mean along the last axis, scaled to unit length there (0 stays 0)."""
  x = x - x.mean(axis=-1, keepdims=True)
  norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
  return x / np.where(norm > 0, norm, np.float32(1))


@functools.lru_cache(maxsize=256)
def _profile_windows(kept: float) -> np.ndarray:
  """[THUMB_SIZE, SCREEN_STEPS * THUMB_SIZE]: a profile -> its linear resampling over the
  windows [offset, offset + kept] (offsets evenly over [0, 1 - kept]), edges clamped."""
  offsets = np.linspace(0.0, 1.0 - kept, SCREEN_STEPS) if kept < 1 else np.zeros(1)
  centres = (np.arange(THUMB_SIZE) + 0.5) / THUMB_SIZE
  at = np.clip((offsets[:, None] + kept * centres[None, :]) * THUMB_SIZE - 0.5, 0,
               THUMB_SIZE - 1).ravel()
  weights = np.maximum(0.0, 1 - np.abs(at[None, :] - np.arange(THUMB_SIZE)[:, None]))
  if weights.shape[1] < SCREEN_STEPS * THUMB_SIZE:  # kept == 1: one window, repeated
    weights = np.tile(weights, (1, SCREEN_STEPS))
  return weights.astype(np.float32)


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


def crop_similarity(a: Fingerprint, b: Fingerprint) -> Optional[float]:
  """The crop alignment's score of a pair, either image as the crop (the better), or None when
  their sizes rule a same-scale crop out."""
  scores = [s for s in (_crop_similarity(a, b), _crop_similarity(b, a)) if s is not None]
  return max(scores) if scores else None


def similarity(a: Fingerprint, b: Fingerprint) -> float:
  """The better of the direct correlation and, when the sizes allow one, the crop alignment's
  (see the module docstring; the two are held to different thresholds by is_near_duplicate)."""
  crop = crop_similarity(a, b)
  return max(direct_similarity(a, b), crop if crop is not None else -1.0)


def is_near_duplicate(a: Fingerprint, b: Fingerprint,
                      threshold: float = NEAR_DUPLICATE_THRESHOLD,
                      crop_threshold: float = CROP_THRESHOLD) -> bool:
  """The pixel check: ``direct_similarity(a, b) >= threshold``, or, when that falls short and
  the sizes allow a crop, ``crop_similarity(a, b) >= crop_threshold``."""
  if direct_similarity(a, b) >= threshold:
    return True
  crop = crop_similarity(a, b)
  return crop is not None and crop >= crop_threshold
