"""Image-level facts per record and their per-(split, shard, class) accumulator (pure Python,
NumPy and Pillow; no TensorFlow).

What ClassBalance learns from the bytes it reads anyway, without decoding images: size, format,
colour mode and bit depth from the file header (PNG IHDR, JPEG SOF: a few bytes), the mask's
size, and whether the mask's size differs from its image's. Decoding is kept to a sample: the
mask-coverage histogram decodes at most ``coverage_sample`` masks per shard file and class
(records are in ImageExampleGen's seeded hash order, so the first ones are a random sample), and
the report's thumbnails decode a few records per class (and the near-duplicate groups' and
image-quality examples' images the ingest summary lists). Exact per-class mask checks (empty, not
binary, wrong size) are ImageExampleGen's, read from its ingest summary.
"""
import base64
import dataclasses
import io
import struct
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

COVERAGE_BINS = 10  # histogram of mask foreground fraction: [0, 0.1), ..., [0.9, 1.0]
UNREADABLE = 'unreadable'
THUMBNAIL_SIZE = 112  # pixels, square; the image is letterboxed
PLAIN_THUMBNAIL_SIZE = 96  # near-duplicate and image-quality thumbnails (JPEG, tones as stored)
PLAIN_THUMBNAIL_QUALITY = 80  # JPEG quality: ~1.4 KB for a 96-pixel radiograph (PNG: ~4 KB)

_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_PNG_MODES = {0: 'L', 2: 'RGB', 3: 'P', 4: 'LA', 6: 'RGBA'}  # IHDR colour type -> Pillow's name
_JPEG_MODES = {1: 'L', 3: 'RGB', 4: 'CMYK'}
# JPEG start-of-frame markers (SOF0..SOF15 except DHT, JPG and DAC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class Header(NamedTuple):
  width: int
  height: int
  kind: str  # 'png L 8-bit', 'jpeg RGB 8-bit', ...

  @property
  def size(self) -> str:
    return f'{self.width}x{self.height}'


def _jpeg_header(data: bytes) -> Optional[Header]:
  i, n = 2, len(data)
  while i + 4 <= n:
    if data[i] != 0xFF:
      return None
    marker = data[i + 1]
    if marker == 0xFF:  # fill byte
      i += 1
      continue
    if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
      i += 2
      continue
    (length,) = struct.unpack('>H', data[i + 2:i + 4])
    if marker in _JPEG_SOF and i + 10 <= n:
      precision = data[i + 4]
      height, width = struct.unpack('>HH', data[i + 5:i + 9])
      mode = _JPEG_MODES.get(data[i + 9], f'{data[i + 9]}-component')
      return Header(width, height, f'jpeg {mode} {precision}-bit')
    if marker == 0xDA or length < 2:  # start of scan before any frame header: broken
      return None
    i += 2 + length
  return None


def header(data: bytes) -> Optional[Header]:
  """Size and kind from the file header alone (PNG IHDR, JPEG SOF); None if neither parses.
  ImageExampleGen accepts PNG and JPEG only, and has checked every file it wrote."""
  if data[:8] == _PNG_MAGIC and data[12:16] == b'IHDR' and len(data) >= 26:
    width, height = struct.unpack('>II', data[16:24])
    mode = _PNG_MODES.get(data[25], f'colour-type-{data[25]}')
    return Header(width, height, f'png {mode} {data[24]}-bit')
  if data[:2] == b'\xff\xd8':
    return _jpeg_header(data)
  return None


def _pixels(data: bytes):
  import numpy as np
  from PIL import Image
  with Image.open(io.BytesIO(data)) as img:
    return np.asarray(img)


def mask_coverage(mask: bytes) -> float:
  """Fraction of the mask's pixels that are non-zero (any channel). Decodes the mask."""
  import numpy as np
  pixels = _pixels(mask)
  if pixels.ndim == 3:
    pixels = pixels.max(axis=-1)
  return float(np.count_nonzero(pixels)) / pixels.size if pixels.size else 0.0


class RecordFacts(NamedTuple):
  """One record's image facts (small: what flows through the Beam graph per record)."""
  image_size: str  # 'WxH' or 'unreadable'
  image_kind: str  # 'png L 8-bit' ... or ''
  mask_size: str  # '' no mask, 'WxH' or 'unreadable'
  size_mismatch: bool  # both headers read and the sizes differ
  coverage: float  # mask foreground fraction if this mask was sampled and decoded, else -1


NOT_SAMPLED = -1.0


def record_facts(image: bytes, mask: bytes, decode_mask: bool) -> RecordFacts:
  """Header facts of one record; ``decode_mask`` also measures the mask's coverage."""
  image_header = header(image)
  mask_header = header(mask) if mask else None
  coverage = NOT_SAMPLED
  if mask and decode_mask:
    try:
      coverage = mask_coverage(mask)
    except (OSError, ValueError, SyntaxError):  # Pillow: undecodable despite a header
      coverage = NOT_SAMPLED
  return RecordFacts(
      image_size=image_header.size if image_header else UNREADABLE,
      image_kind=image_header.kind if image_header else '',
      mask_size=(mask_header.size if mask_header else UNREADABLE) if mask else '',
      size_mismatch=bool(image_header and mask_header and image_header.size != mask_header.size),
      coverage=coverage)


def _bump(d: Dict[str, int], key: str, n: int = 1) -> None:
  d[key] = d.get(key, 0) + n


@dataclasses.dataclass
class ClassStats:
  """Mergeable facts of the records of one (split, shard, class): the CombineFn's accumulator."""
  records: int = 0
  image_sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  image_modes: Dict[str, int] = dataclasses.field(default_factory=dict)
  unreadable: int = 0  # images or masks whose header did not parse
  masks: int = 0
  mask_sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  mask_size_mismatch: int = 0
  coverage_sampled: int = 0
  coverage_histogram: List[int] = dataclasses.field(
      default_factory=lambda: [0] * COVERAGE_BINS)
  coverage_sum: float = 0.0
  empty_sampled: int = 0
  near_full_sampled: int = 0

  def add(self, facts: RecordFacts, near_full: float) -> 'ClassStats':
    self.records += 1
    _bump(self.image_sizes, facts.image_size)
    if facts.image_kind:
      _bump(self.image_modes, facts.image_kind)
    self.unreadable += (facts.image_size == UNREADABLE) + (facts.mask_size == UNREADABLE)
    if facts.mask_size:
      self.masks += 1
      _bump(self.mask_sizes, facts.mask_size)
      self.mask_size_mismatch += facts.size_mismatch
    if facts.coverage >= 0:
      self.coverage_sampled += 1
      self.coverage_sum += facts.coverage
      self.coverage_histogram[min(int(facts.coverage * COVERAGE_BINS), COVERAGE_BINS - 1)] += 1
      if facts.coverage == 0:
        self.empty_sampled += 1
      elif facts.coverage >= near_full:
        self.near_full_sampled += 1
    return self

  def merge(self, other: 'ClassStats') -> 'ClassStats':
    for field in dataclasses.fields(self):
      mine, theirs = getattr(self, field.name), getattr(other, field.name)
      if isinstance(mine, dict):
        for key, n in theirs.items():
          _bump(mine, key, n)
      elif isinstance(mine, list):
        setattr(self, field.name, [a + b for a, b in zip(mine, theirs)])
      else:
        setattr(self, field.name, mine + theirs)
    return self

  def to_dict(self) -> Dict[str, object]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, object]) -> 'ClassStats':
    return cls(**data)

  def summary(self) -> Dict[str, object]:
    """JSON-ready, with rates: what the reports show for a (split, class)."""
    return {
        'examples': self.records,
        'image_sizes': dict(sorted(self.image_sizes.items(), key=lambda kv: -kv[1])),
        'image_modes': dict(sorted(self.image_modes.items(), key=lambda kv: -kv[1])),
        'unreadable': self.unreadable,
        'masks_present': self.masks,
        'mask_presence_rate': round(self.masks / self.records, 4) if self.records else 0.0,
        'mask_sizes': dict(sorted(self.mask_sizes.items(), key=lambda kv: -kv[1])),
        'mask_size_mismatch': self.mask_size_mismatch,
        'coverage_sampled': self.coverage_sampled,
        'coverage_histogram': list(self.coverage_histogram),
        'mean_mask_coverage': (round(self.coverage_sum / self.coverage_sampled, 4)
                               if self.coverage_sampled else None),
        'empty_masks_sampled': self.empty_sampled,
        'near_full_masks_sampled': self.near_full_sampled,
    }


def by_split_and_class(stats: Mapping[Tuple[str, str, int], ClassStats], splits: List[str],
                       class_names: Mapping[int, str]) -> Dict[str, Dict[str, Dict[str, object]]]:
  """{(split, shard, label): stats} -> {split: {class name: summary}}, splits in order, plus
  'all'."""
  merged: Dict[str, Dict[int, ClassStats]] = {s: {} for s in list(splits) + ['all']}
  for (split, _, label), acc in stats.items():
    for key in (split, 'all'):
      merged.setdefault(key, {}).setdefault(label, ClassStats()).merge(acc)
  return {split: {class_names.get(c, str(c)): acc.summary() for c, acc in sorted(by_label.items())}
          for split, by_label in merged.items()}


def thumbnail(image: bytes, mask: bytes, size: int = THUMBNAIL_SIZE) -> str:
  """A ``data:image/png;base64,...`` thumbnail of the image, letterboxed to size x size, with
  the mask (resized to the same frame, nearest neighbour) tinted red and outlined in yellow."""
  import numpy as np
  from PIL import Image
  from PIL import ImageOps
  gray = np.asarray(_letterboxed_gray(image, size, stretch=True), np.float32)
  rgb = np.stack([gray] * 3, axis=-1)
  if mask:
    try:
      m = _pixels(mask)
    except (OSError, ValueError, SyntaxError):
      m = None
    if m is not None:
      if m.ndim == 3:
        m = m.max(axis=-1)
      m = Image.fromarray(((m > 0) * 255).astype(np.uint8), 'L')
      m = np.asarray(ImageOps.pad(m, (size, size), method=Image.NEAREST, color=0)) > 0
      rgb[m] = rgb[m] * 0.55 + np.array([255, 40, 40], np.float32) * 0.45
      edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
      rgb[edge] = (255, 220, 0)
  buf = io.BytesIO()
  Image.fromarray(rgb.clip(0, 255).astype(np.uint8), 'RGB').save(buf, format='PNG')
  return 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


def _letterboxed_gray(image: bytes, size: int, stretch: bool):
  """The image as an 8-bit gray PIL image letterboxed to size x size. 16/32-bit gray is scaled
  by its maximum (its bit depth is unknown); 8-bit images too when ``stretch``."""
  import numpy as np
  from PIL import Image
  from PIL import ImageOps
  with Image.open(io.BytesIO(image)) as img:
    deep = img.mode.startswith('I') or img.mode == 'F'
    if deep:  # 16/32-bit gray: keep the depth
      pixels = np.asarray(img, np.float32)
    else:  # 8-bit gray, colour, palette, alpha, CMYK: Pillow's luminance
      pixels = np.asarray(img.convert('L'), np.float32)
  top = (float(pixels.max()) or 1.0) if deep or stretch else 255.0
  gray = Image.fromarray((pixels * (255.0 / top)).clip(0, 255).astype(np.uint8), 'L')
  return ImageOps.pad(gray, (size, size), method=Image.BILINEAR, color=0)


def plain_thumbnail(image: bytes, size: int = PLAIN_THUMBNAIL_SIZE) -> str:
  """A ``data:image/jpeg;base64,...`` gray thumbnail letterboxed to size x size, its tones as
  stored (a dark or washed-out image looks so; 16-bit images scaled by their maximum), for
  comparing near-duplicates and showing image-quality examples; '' when it does not decode."""
  try:
    gray = _letterboxed_gray(image, size, stretch=False)
  except (OSError, ValueError, SyntaxError):  # Pillow: not an image it decodes
    return ''
  buf = io.BytesIO()
  gray.save(buf, format='JPEG', quality=PLAIN_THUMBNAIL_QUALITY)
  return 'data:image/jpeg;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')
