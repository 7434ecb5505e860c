"""Image-level statistics from real PNG/JPEG bytes: sizes, modes, bit depth, masks."""
import io

import numpy as np
from PIL import Image

from components.class_balance import image_stats


def _png(array, mode=None):
  buf = io.BytesIO()
  Image.fromarray(array, mode=mode).save(buf, format='PNG')
  return buf.getvalue()


def _jpeg(array):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='JPEG')
  return buf.getvalue()


def test_header_facts_masks_and_coverage():
  acc = image_stats.new_accumulator()
  gray8 = _png(np.full((299, 299), 90, np.uint8))
  gray16 = _png(np.full((64, 80), 40000, np.uint16), mode='I;16')
  rgb_jpeg = _jpeg(np.zeros((32, 32, 3), np.uint8))
  half = np.zeros((256, 256), np.uint8)
  half[:, :128] = 255
  full = np.full((299, 299), 255, np.uint8)
  image_stats.add_example(acc, 'a', gray8, _png(half), near_full=0.95)  # mismatch 299 vs 256
  image_stats.add_example(acc, 'b', gray16, b'', near_full=0.95)
  image_stats.add_example(acc, 'c', gray8, _png(np.zeros((299, 299), np.uint8)), near_full=0.95)
  image_stats.add_example(acc, 'd', gray8, _png(full), near_full=0.95)
  image_stats.add_example(acc, 'e', rgb_jpeg, b'', near_full=0.95)
  image_stats.add_example(acc, 'f', b'not an image', b'', near_full=0.95)
  s = image_stats.summarize(acc)
  assert s['examples'] == 6 and s['unreadable'] == 1
  assert s['image_sizes'] == {'299x299': 3, '80x64': 1, '32x32': 1, 'unreadable': 1}
  assert s['image_modes'] == {'png L 8-bit': 3, 'png L 16-bit': 1, 'jpeg RGB 8-bit': 1}
  assert s['masks_present'] == 3 and s['mask_presence_rate'] == 0.5
  assert s['mask_sizes'] == {'256x256': 1, '299x299': 2}
  assert s['mask_size_mismatch'] == 1 and s['mask_size_mismatch_ids'] == ['a']
  assert s['empty_masks'] == 1 and s['near_full_masks'] == 1
  assert s['coverage_histogram'] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
  assert s['mean_mask_coverage'] == 0.5


def test_merge_and_grouping_by_split_and_class():
  a, b = image_stats.new_accumulator(), image_stats.new_accumulator()
  png = _png(np.full((10, 12), 1, np.uint8))
  image_stats.add_example(a, 'x', png, png, 0.95)
  image_stats.add_example(b, 'y', png, b'', 0.95)
  out = image_stats.by_split_and_class(
      [{'split': 'train', 'stats': {'0': a}}, {'split': 'test', 'stats': {'0': b, '1': b}}],
      {0: 'COVID', 1: 'Normal'})
  assert list(out) == ['train', 'test', 'all']
  assert out['all']['COVID']['examples'] == 2 and out['all']['COVID']['masks_present'] == 1
  assert out['all']['COVID']['image_sizes'] == {'12x10': 2}
  assert out['test']['Normal']['mask_presence_rate'] == 0.0
