"""Image-level statistics per split and class (pure Python + Pillow; no TensorFlow).

Read from bytes already in hand while the shard files are scanned once: image size, format,
colour mode and bit depth come from the file header (``image_header.inspect_image``, header
mode: a truncated or structurally broken file counts as unreadable), mask size likewise,
and mask foreground coverage from a decode of the mask alone (256x256, about a millisecond).
"""
import collections
import io
from typing import Dict, List, Mapping, Optional

from components.image_example_gen import image_header

COVERAGE_BINS = 10  # histogram of mask foreground fraction: [0, 0.1), ..., [0.9, 1.0]
UNREADABLE = 'unreadable'


def _header(data: bytes) -> Optional[image_header.ImageHeader]:
  try:
    return image_header.inspect_image(data)  # header mode: header + structure, no decode
  except image_header.BadImage:
    return None


def mask_coverage(mask: bytes) -> float:
  """Fraction of the mask's pixels that are non-zero (any channel)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(mask)) as img:
    pixels = np.asarray(img)
  if pixels.ndim == 3:
    pixels = pixels.max(axis=-1)
  return float(np.count_nonzero(pixels)) / pixels.size if pixels.size else 0.0


def new_accumulator() -> Dict[str, object]:
  """Mergeable, JSON-ready counts for one (split, class)."""
  return {'examples': 0, 'image_sizes': {}, 'image_modes': {}, 'masks_present': 0,
          'mask_sizes': {}, 'mask_size_mismatch': 0, 'mask_size_mismatch_ids': [],
          'empty_masks': 0, 'near_full_masks': 0, 'coverage_sum': 0.0,
          'coverage_histogram': [0] * COVERAGE_BINS, 'unreadable': 0}


def _bump(d: Dict[str, int], key: str, n: int = 1) -> None:
  d[key] = d.get(key, 0) + n


MAX_LISTED_IDS = 20  # examples of mismatched masks kept per (split, class)


def _count_header(acc: Dict[str, object], data: bytes,
                  sizes_key: str) -> Optional[image_header.ImageHeader]:
  """Counts the file's size under ``sizes_key`` (or 'unreadable'); returns its header."""
  header = _header(data)
  if header is None:
    acc['unreadable'] += 1
    _bump(acc[sizes_key], UNREADABLE)
    return None
  _bump(acc[sizes_key], f'{header.width}x{header.height}')
  return header


def add_example(acc: Dict[str, object], image_id: str, image: bytes, mask: bytes,
                near_full: float) -> None:
  """Folds one example's facts into ``acc``."""
  acc['examples'] += 1
  header = _count_header(acc, image, 'image_sizes')
  if header is None:
    return
  _bump(acc['image_modes'], f'{header.format} {header.mode} {header.bit_depth}-bit')
  if not mask:
    return
  acc['masks_present'] += 1
  mheader = _count_header(acc, mask, 'mask_sizes')
  if mheader is None:
    return
  if (mheader.width, mheader.height) != (header.width, header.height):
    acc['mask_size_mismatch'] += 1
    if len(acc['mask_size_mismatch_ids']) < MAX_LISTED_IDS:
      acc['mask_size_mismatch_ids'].append(image_id)
  try:
    coverage = mask_coverage(mask)
  except (OSError, ValueError):  # Pillow: undecodable despite a valid header
    acc['unreadable'] += 1
    return
  acc['coverage_sum'] += coverage
  acc['coverage_histogram'][min(int(coverage * COVERAGE_BINS), COVERAGE_BINS - 1)] += 1
  if coverage == 0:
    acc['empty_masks'] += 1
  elif coverage >= near_full:
    acc['near_full_masks'] += 1


def merge(accs: List[Mapping[str, object]]) -> Dict[str, object]:
  out = new_accumulator()
  for acc in accs:
    for key, value in acc.items():
      if isinstance(value, dict):
        for k, n in value.items():
          _bump(out[key], k, n)
      elif key == 'coverage_histogram':
        out[key] = [a + b for a, b in zip(out[key], value)]
      elif key == 'mask_size_mismatch_ids':
        out[key] = sorted(out[key] + list(value))[:MAX_LISTED_IDS]
      else:
        out[key] += value
  return out


def summarize(acc: Mapping[str, object]) -> Dict[str, object]:
  """Adds rates: mask presence, mean coverage."""
  out = dict(acc)
  n, masks = acc['examples'], acc['masks_present']
  out['mask_presence_rate'] = round(masks / n, 4) if n else 0.0
  covered = sum(acc['coverage_histogram'])
  out['mean_mask_coverage'] = round(acc['coverage_sum'] / covered, 4) if covered else None
  out['coverage_sum'] = round(acc['coverage_sum'], 6)
  return out


def by_split_and_class(per_shard: List[Mapping[str, object]],
                       class_names: Mapping[int, str]) -> Dict[str, Dict[str, object]]:
  """[{split, stats: {label: acc}}] -> {split: {class name: summarized stats}}, plus 'all'."""
  grouped = collections.defaultdict(lambda: collections.defaultdict(list))
  for shard in per_shard:
    for label, acc in shard['stats'].items():
      grouped[shard['split']][int(label)].append(acc)
      grouped['all'][int(label)].append(acc)
  out = {}
  for split in [s for s in grouped if s != 'all'] + (['all'] if grouped else []):
    out[split] = {class_names.get(c, str(c)): summarize(merge(accs))
                  for c, accs in sorted(grouped[split].items())}
  return out
