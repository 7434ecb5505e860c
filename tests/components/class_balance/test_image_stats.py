"""Image facts from real PNG/JPEG bytes: headers without decoding, the typed accumulator,
sampled mask coverage, thumbnails with the mask overlaid."""
import base64
import io

import numpy as np
from PIL import Image
import pytest

from components.class_balance import image_stats


def _png(array, mode=None, **kw):
  buf = io.BytesIO()
  Image.fromarray(array, mode=mode).save(buf, format='PNG', **kw)
  return buf.getvalue()


def _jpeg(array, **kw):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='JPEG', **kw)
  return buf.getvalue()


def test_headers_match_pillow_without_decoding():
  gray16 = _png(np.full((64, 80), 40000, np.uint16), mode='I;16')
  rgba = _png(np.zeros((5, 7, 4), np.uint8))
  palette = Image.fromarray(np.zeros((9, 11), np.uint8)).convert('P')
  buf = io.BytesIO()
  palette.save(buf, format='PNG')
  # A JPEG whose frame header sits after a large APP segment (ICC-profile-like padding).
  big_app = _jpeg(np.zeros((30, 40, 3), np.uint8), exif=b'Exif\x00\x00' + b'\x00' * 60000)
  cases = [
      (_png(np.full((299, 299), 90, np.uint8)), (299, 299, 'png L 8-bit')),
      (gray16, (80, 64, 'png L 16-bit')),
      (rgba, (7, 5, 'png RGBA 8-bit')),
      (buf.getvalue(), (11, 9, 'png P 8-bit')),
      (_jpeg(np.zeros((32, 48), np.uint8)), (48, 32, 'jpeg L 8-bit')),
      (_jpeg(np.zeros((32, 48, 3), np.uint8), progressive=True), (48, 32, 'jpeg RGB 8-bit')),
      (big_app, (40, 30, 'jpeg RGB 8-bit')),
  ]
  for data, expected in cases:
    header = image_stats.header(data)
    assert (header.width, header.height, header.kind) == expected
    with Image.open(io.BytesIO(data)) as img:
      assert img.size == expected[:2]
  assert image_stats.header(b'not an image') is None
  assert image_stats.header(b'\xff\xd8\xff\xda\x00\x02') is None  # scan before any frame


def test_record_facts_and_the_accumulator():
  half = np.zeros((256, 256), np.uint8)
  half[:, :128] = 255
  gray = _png(np.full((299, 299), 90, np.uint8))
  acc = image_stats.ClassStats()
  facts = [
      image_stats.record_facts(gray, _png(half), decode_mask=True),  # 299 vs 256
      image_stats.record_facts(gray, b'', decode_mask=True),
      image_stats.record_facts(gray, _png(np.zeros((299, 299), np.uint8)), decode_mask=True),
      image_stats.record_facts(gray, _png(np.full((299, 299), 255, np.uint8)), True),
      image_stats.record_facts(gray, _png(half), decode_mask=False),  # not sampled
      image_stats.record_facts(b'garbage', b'', decode_mask=True),
  ]
  assert facts[0] == image_stats.RecordFacts('299x299', 'png L 8-bit', '256x256', True, 0.5)
  assert facts[4].coverage == image_stats.NOT_SAMPLED
  for f in facts:
    acc.add(f, near_full=0.95)
  s = acc.summary()
  assert s['examples'] == 6 and s['unreadable'] == 1
  assert s['image_sizes'] == {'299x299': 5, 'unreadable': 1}
  assert s['image_modes'] == {'png L 8-bit': 5}
  assert s['masks_present'] == 4 and s['mask_presence_rate'] == pytest.approx(4 / 6, abs=1e-4)
  assert s['mask_sizes'] == {'256x256': 2, '299x299': 2} and s['mask_size_mismatch'] == 2
  assert s['coverage_sampled'] == 3 and s['coverage_histogram'] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
  assert s['empty_masks_sampled'] == 1 and s['near_full_masks_sampled'] == 1
  assert s['mean_mask_coverage'] == 0.5
  # Merging is addition, and the accumulator survives its JSON round trip.
  twice = image_stats.ClassStats.from_dict(acc.to_dict()).merge(acc)
  assert twice.records == 12 and twice.coverage_histogram[5] == 2
  assert twice.image_sizes == {'299x299': 10, 'unreadable': 2}


def test_grouping_by_split_and_class():
  png = _png(np.full((10, 12), 1, np.uint8))
  a = image_stats.ClassStats().add(image_stats.record_facts(png, png, True), 0.95)
  b = image_stats.ClassStats().add(image_stats.record_facts(png, b'', True), 0.95)
  out = image_stats.by_split_and_class(
      {('train', 'f0', 0): a, ('test', 'f1', 0): b, ('test', 'f1', 1): b,
       ('test', 'f1', 7): b}, ['train', 'test'], {0: 'COVID', 1: 'Normal'})
  assert list(out) == ['train', 'test', 'all']
  assert out['all']['COVID']['examples'] == 2 and out['all']['COVID']['masks_present'] == 1
  assert out['all']['COVID']['image_sizes'] == {'12x10': 2}
  assert out['test']['Normal']['mask_presence_rate'] == 0.0
  assert out['test']['7']['examples'] == 1  # a label outside the names keeps its number


def test_thumbnail_overlays_the_mask():
  image = _png(np.full((299, 299), 128, np.uint8))
  mask = np.zeros((256, 256), np.uint8)
  mask[64:192, 32:96] = 255  # the left quarter-ish
  uri = image_stats.thumbnail(image, _png(mask))
  assert uri.startswith('data:image/png;base64,')
  with Image.open(io.BytesIO(base64.b64decode(uri.split(',', 1)[1]))) as img:
    pixels = np.asarray(img.convert('RGB')).astype(int)
  assert pixels.shape == (image_stats.THUMBNAIL_SIZE, image_stats.THUMBNAIL_SIZE, 3)
  size = image_stats.THUMBNAIL_SIZE
  inside = pixels[size // 2, size * 64 // 256]  # inside the mask: tinted red
  outside = pixels[size // 2, size * 200 // 256]  # outside: gray
  assert inside[0] > inside[1] + 40 and inside[0] > inside[2] + 40
  assert abs(outside[0] - outside[1]) < 3 and outside[0] > 200  # 128 stretched to white
  edge = (pixels[..., 0] > 200) & (pixels[..., 1] > 180) & (pixels[..., 2] < 60)
  assert edge.sum() > 50  # the yellow outline
  # 16-bit and RGB images, no mask, and an undecodable mask all give a thumbnail.
  palette = io.BytesIO()
  Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).convert('P').save(palette, format='PNG')
  for img in (_png(np.full((40, 30), 40000, np.uint16), mode='I;16'),
              _jpeg(np.zeros((30, 40, 3), np.uint8)), palette.getvalue()):
    assert image_stats.thumbnail(img, b'').startswith('data:image/png')
  assert image_stats.thumbnail(image, b'\x89PNG broken').startswith('data:image/png')
