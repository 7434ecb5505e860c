"""Image-quality findings (pure: NumPy and OpenCV): CleanVision's set -- dark, light, blurry, low
information, odd size, odd aspect ratio, a grey/colour mix -- with thresholds for radiographs.

``measure`` runs in the Beam workers on the pixels they decode (uint8 grey as decoded, anything
else through ``perceptual.to_grey``), on a strided sample of at most SAMPLE_SIDE pixels a side
(cheap, and no averaging: the sample keeps the image's own noise and sharpness), summarised once
(``summarise``: the sample, its histogram and moments, which shortcut.properties shares);
``findings`` applies the per-image thresholds; ``dataset_findings`` what needs the whole set
(odd size, the grey/colour mix).

Radiographs are not photographs: a dark background around the body and a bright body are both
normal, so DARK and LIGHT look at the image's bright end and dark end rather than its mean; film
grain makes a sharp radiograph's Laplacian busy, so BLURRY is the Laplacian's energy relative to
the image's contrast.
"""
import collections
import dataclasses
import functools
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

DARK = 'dark'
LIGHT = 'light'
BLURRY = 'blurry'
LOW_INFORMATION = 'low_information'
ODD_SIZE = 'odd_size'
ODD_ASPECT_RATIO = 'odd_aspect_ratio'
GRAYSCALE_MIX = 'grayscale_mix'
FINDINGS = (DARK, LIGHT, BLURRY, LOW_INFORMATION, ODD_SIZE, ODD_ASPECT_RATIO, GRAYSCALE_MIX)

SAMPLE_SIDE = 96
SHARPNESS_STRIPS = 12  # full-resolution rows the Laplacian is measured on
_BINS = 64
COLOUR_MODES = frozenset({'RGB', 'RGBA', 'P', 'CMYK', 'YCbCr'})

# Measure names (keys of measure()'s dict).
MEAN = 'mean'
P01 = 'p01'  # 1st percentile of grey, [0, 1]
P99 = 'p99'  # 99th percentile
SHARPNESS = 'sharpness'  # Laplacian std / grey std on the sample (higher: sharper)
ENTROPY = 'entropy'  # bits, 64-bin histogram of the sample (0 for a blank image, 6 at most)
WIDTH = 'width'
HEIGHT = 'height'
ASPECT = 'aspect'  # width / height
COLOUR = 'colour'  # 1.0 for a colour mode (RGB, RGBA, P...), else 0.0


@dataclasses.dataclass(frozen=True)
class QualityThresholds:
  """When an image is reported; defaults for radiographs, checked on the demo data and on
  bench/near_duplicates.py's second generator (no finding on either)."""
  # DARK: the 99th percentile of grey is below this: even the brightest structures (bone) are
  # dark. Synthetic radiographs measure 0.63-1.0 (demo data) and 0.70-0.96 (bench/'s second
  # generator); 0.35 is an image exposed ~3x too little.
  dark_p99: float = 0.35
  # LIGHT: the 1st percentile is above this: no dark region at all (no air, no lung field).
  # Synthetic radiographs measure 0.0-0.57 and 0.23-0.31.
  light_p01: float = 0.6
  # BLURRY: sharpness (Laplacian std / grey std, on full-resolution rows) below this.
  # Synthetic radiographs measure 0.20-0.61 and 0.31-0.36 (grain and edges); a Gaussian blur of
  # one pixel brings them to ~0.05.
  blurry_sharpness: float = 0.12
  # LOW_INFORMATION: histogram entropy below this many bits (of 6): nearly one grey level
  # (blank, a test pattern, a failed export). Synthetic radiographs measure 4.3-5.6.
  low_information_bits: float = 2.0
  # ODD_ASPECT_RATIO: width / height beyond this factor either way (chest films are 0.8-1.25).
  odd_aspect_ratio: float = 1.6
  # ODD_SIZE: sqrt(width * height) this factor away from the dataset's median, either way.
  odd_size_factor: float = 2.0
  # GRAYSCALE_MIX: the dataset has grey and colour images and this image's kind is the
  # minority, at most this share of the images.
  grayscale_mix_share: float = 0.5


@dataclasses.dataclass(frozen=True)
class Summary:
  """What quality.measure and shortcut.properties both need of an image, computed once."""
  sample: np.ndarray  # the strided sample: uint8 levels, or float32 grey in [0, 1]
  scale: float  # the sample's values times this are grey in [0, 1] (1/255 for uint8)
  counts: np.ndarray  # the sample's 256-bin histogram
  mean: float  # of the sample, grey in [0, 1]
  std: float
  p01: float  # its 1st and 99th percentiles (``quantile``)
  p99: float


_LEVELS = np.arange(256, dtype=np.float32)
_LEVELS_SQUARED = _LEVELS ** 2  # exact in float32 (at most 65025)


def is_grey8(image: np.ndarray) -> bool:
  """Decoded 8-bit grey pixels ([H, W] uint8): measured as they are, without a float copy."""
  return image.dtype == np.uint8 and image.ndim == 2


def summarise(image: np.ndarray) -> Summary:
  """The sample, histogram and moments of an image: uint8 grey [H, W] as decoded (the moments
  then come exactly from the histogram), or ``perceptual.to_grey``'s float output."""
  s = sample(image)
  if is_grey8(image):
    counts = np.bincount(s.ravel(), minlength=256).astype(np.float32)  # exact in float32
    n = max(int(s.size), 1)
    mean = float(counts @ _LEVELS) / n
    std = math.sqrt(max(float(counts @ _LEVELS_SQUARED) / n - mean * mean, 0.0))
    mean, std, scale = mean / 255, std / 255, 1.0 / 255
  else:
    counts = histogram(s)
    (mean, std), scale = moments(s), 1.0
  return Summary(s, scale, counts, mean, std, *quantiles(counts, (0.01, 0.99)))


def sample(grey: np.ndarray) -> np.ndarray:
  """Every k-th pixel of every k-th row, at most SAMPLE_SIDE a side (no averaging), as one
  contiguous array (the operations on it run several times faster than on a view): uint8 for
  uint8 grey, else float32."""
  h, w = grey.shape
  step = max(1, math.ceil(max(h, w) / SAMPLE_SIDE))
  dtype = np.uint8 if grey.dtype == np.uint8 else np.float32
  return np.ascontiguousarray(grey[::step, ::step], dtype=dtype)


def moments(a: np.ndarray) -> Tuple[float, float]:
  """(mean, standard deviation) of a contiguous array, by two dot products (np.std makes
  several passes)."""
  flat = a.ravel()
  n = max(flat.size, 1)
  mean = float(flat.sum(dtype=np.float64)) / n
  return mean, math.sqrt(max(float(np.dot(flat, flat)) / n - mean * mean, 0.0))


def histogram(sample: np.ndarray) -> np.ndarray:
  """256-bin histogram of grey values in [0, 1] (counts, int64)."""
  levels = sample * np.float32(255.0)
  levels += np.float32(0.5)  # grey is in [0, 1] (to_grey): levels in [0.5, 255.5], no clip
  return np.bincount(levels.astype(np.uint8).ravel(), minlength=256)


def quantile(counts: np.ndarray, q: float) -> float:
  """The q quantile (nearest rank, 1/255 resolution) from a 256-bin histogram."""
  return quantiles(counts, (q,))[0]


def quantiles(counts: np.ndarray, qs: Sequence[float]) -> Tuple[float, ...]:
  """``quantile`` for several q at once (one cumulative sum)."""
  cumulative = np.cumsum(counts)
  at = np.searchsorted(cumulative, np.asarray(qs) * (cumulative[-1] - 1) + 1)
  return tuple(float(x) / 255.0 for x in at)


@functools.lru_cache(maxsize=4096)
def _strip_rows(h: int) -> np.ndarray:
  """The rows of SHARPNESS_STRIPS strips over the middle 80%: row - 1, row, row + 1 for each."""
  rows = np.unique(np.linspace(0.1 * h, 0.9 * h, SHARPNESS_STRIPS).astype(np.int64).clip(1, h - 2))
  return np.stack((rows - 1, rows, rows + 1), axis=1).ravel()


def _sharpness(grey: np.ndarray, std: float) -> float:
  """Laplacian std / grey std: the Laplacian at full resolution on SHARPNESS_STRIPS rows spread
  over the image's middle 80% (a strided sample would miss a blur of a few pixels). ``std`` is
  in the units of ``grey``'s values (levels for uint8)."""
  h, w = grey.shape
  if h < 3 or w < 3 or std <= 1e-6:
    return 0.0
  strips = grey[_strip_rows(h)]  # [3k, w]: each strip's row above, the row, the row below
  # The 4-neighbour Laplacian of every row (cv2: one pass); each strip's middle row has its own
  # neighbours above and below, and the border columns are left out.
  lap = cv2.Laplacian(strips, cv2.CV_32F, ksize=1)[1::3, 1:-1]
  return float(cv2.meanStdDev(np.ascontiguousarray(lap))[1][0, 0]) / std


def measure(grey: np.ndarray, width: int, height: int, mode: str,
            summary: Optional[Summary] = None) -> Dict[str, float]:
  """The quality measures of one image (``perceptual.to_grey``'s output, or uint8 grey pixels as
  decoded; its decoded size and PIL mode), on the strided sample (``summary``: summarise(grey),
  computed here unless given)."""
  summary = summary if summary is not None else summarise(grey)
  counts = summary.counts
  sharpness = _sharpness(grey, summary.std / summary.scale)
  coarse = counts.reshape(_BINS, 256 // _BINS).sum(axis=1)
  p = coarse[coarse > 0] / counts.sum()
  entropy = float(-(p * np.log2(p)).sum())
  return {MEAN: summary.mean, P01: summary.p01, P99: summary.p99,
          SHARPNESS: sharpness, ENTROPY: entropy, WIDTH: float(width), HEIGHT: float(height),
          ASPECT: float(width) / max(float(height), 1.0),
          COLOUR: 1.0 if mode in COLOUR_MODES else 0.0}


def findings(measures: Dict[str, float],
             thresholds: QualityThresholds = QualityThresholds()) -> Tuple[str, ...]:
  """The per-image finding codes (in FINDINGS order) of one image's measures."""
  out = []
  if measures[P99] < thresholds.dark_p99:
    out.append(DARK)
  if measures[P01] > thresholds.light_p01:
    out.append(LIGHT)
  low_info = measures[ENTROPY] < thresholds.low_information_bits
  if measures[SHARPNESS] < thresholds.blurry_sharpness and not low_info:
    out.append(BLURRY)  # a blank image is low information, not blurry
  if low_info:
    out.append(LOW_INFORMATION)
  aspect = measures[ASPECT]
  if aspect > thresholds.odd_aspect_ratio or aspect < 1 / thresholds.odd_aspect_ratio:
    out.append(ODD_ASPECT_RATIO)
  return tuple(out)


def dataset_findings(measures: Mapping[str, Dict[str, float]],
                     thresholds: QualityThresholds = QualityThresholds()
                     ) -> Dict[str, Tuple[str, ...]]:
  """{key: codes} of what needs the whole set, for the images it applies to: ODD_SIZE (size
  far from the median size) and GRAYSCALE_MIX (the minority of grey vs colour images)."""
  if not measures:
    return {}
  sides = {k: math.sqrt(m[WIDTH] * m[HEIGHT]) for k, m in measures.items()}
  median = float(np.median(list(sides.values())))
  kinds = collections.Counter(m[COLOUR] for m in measures.values())
  minority = None
  if len(kinds) == 2:
    kind, count = min(kinds.items(), key=lambda kv: (kv[1], kv[0]))
    if count / len(measures) <= thresholds.grayscale_mix_share:
      minority = kind
  out: Dict[str, Tuple[str, ...]] = {}
  for key, m in measures.items():
    codes = []
    if median > 0 and max(sides[key] / median, median / max(sides[key], 1e-9)) > \
        thresholds.odd_size_factor:
      codes.append(ODD_SIZE)
    if minority is not None and m[COLOUR] == minority:
      codes.append(GRAYSCALE_MIX)
    if codes:
      out[key] = tuple(codes)
  return out
