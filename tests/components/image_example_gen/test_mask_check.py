"""Mask content checks (--mask-check off|warn|fail): pure checks on real PNG bytes, the worker's
verdict per row, and what a real Beam ingestion writes and counts."""
import csv
import io
import json
import os
import random

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import image_header
from components.image_example_gen import mask_check
from tests.support import corrupt_images

HEADER = ['image_path', 'mask_path', 'class']


def encode(pixels, mode=None, fmt='PNG'):
  out = io.BytesIO()
  Image.fromarray(pixels, mode=mode).save(out, fmt)
  return out.getvalue()


def codes(mask_bytes, image_size=None, declared=()):
  """Finding codes for mask bytes (image of image_size, default the mask's own size)."""
  mask_hdr = image_header.inspect_image(mask_bytes)
  w, h = image_size or (mask_hdr.width, mask_hdr.height)
  image_hdr = image_header.ImageHeader('png', w, h, 8, 'L')
  return [c for c, _ in mask_check.check_mask(mask_bytes, mask_hdr, image_hdr, declared)]


def binary(shape=(16, 16), top=255, dtype=np.uint8):
  m = np.zeros(shape, dtype)
  m[4:12, 3:9] = top
  return m


def test_good_masks_have_no_findings():
  assert codes(encode(binary())) == []
  assert codes(encode(binary(top=1))) == []  # {0, 1} masks are binary too
  assert codes(encode(binary(top=65535, dtype=np.uint16))) == []  # 16-bit
  grey_rgb = np.repeat(binary()[..., None], 3, axis=-1)
  assert codes(encode(grey_rgb)) == []  # convertible: equal channels
  one_bit = Image.fromarray(binary() > 0)
  out = io.BytesIO()
  one_bit.save(out, 'PNG')
  assert codes(out.getvalue()) == []


def test_each_finding_is_named():
  assert codes(encode(np.zeros((16, 16), np.uint8))) == [mask_check.EMPTY]
  grey = binary()
  grey[0, 0] = 128
  assert codes(encode(grey)) == [mask_check.NOT_BINARY]
  colour = np.repeat(binary()[..., None], 3, axis=-1)
  colour[5, 5] = (255, 0, 0)
  assert codes(encode(colour)) == [mask_check.NOT_SINGLE_CHANNEL]
  assert codes(encode(binary((16, 16))), image_size=(20, 16)) == [mask_check.SIZE_MISMATCH]
  assert codes(encode(binary((16, 16))), image_size=(20, 16), declared=(16, 16)) == []
  # flipped deflate bytes, CRC recomputed: Pillow alone decodes this without complaint
  corrupt = corrupt_images.corrupt_png_idat(encode(binary((64, 64))), random.Random(3))
  hdr = image_header.ImageHeader('png', 64, 64, 8, 'L')
  assert [c for c, _ in mask_check.check_mask(corrupt, hdr, hdr)] == [mask_check.UNDECODABLE]


def test_reasons_say_what_to_do():
  found = dict(mask_check.check_mask(
      encode(binary((16, 16))), image_header.ImageHeader('png', 16, 16, 8, 'L'),
      image_header.ImageHeader('png', 20, 30, 8, 'L')))
  assert found[mask_check.SIZE_MISMATCH] == (
      'mask is 16x16 but its image is 20x30 (if all masks have this size, declare it: '
      '--mask-size 16x16)')
  grey = binary()
  grey[0, :3] = 7
  found = dict(mask_check.check_mask(encode(grey), None, None))
  assert found[mask_check.NOT_BINARY] == ('mask is not binary: 3 of 256 pixels are neither 0 '
                                          'nor its foreground value 255')


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(1, 255), st.data())
def test_binary_iff_two_values_property(width, height, top, data):
  """Pillow-encoded masks: no NOT_BINARY finding exactly when every pixel is 0 or the max."""
  values = data.draw(st.lists(st.sampled_from([0, top]), min_size=width * height,
                              max_size=width * height))
  pixels = np.array(values, np.uint8).reshape(height, width)
  extra = data.draw(st.one_of(st.none(), st.integers(1, 254).filter(lambda v: v != top)))
  if extra is not None:
    pixels.flat[data.draw(st.integers(0, pixels.size - 1))] = extra
  found = codes(encode(pixels))
  values = set(np.unique(pixels).tolist())
  assert (mask_check.NOT_BINARY in found) == (len(values - {0}) > 1)
  assert (mask_check.EMPTY in found) == (values == {0})


def test_parse_size():
  assert mask_check.parse_size('256x256') == (256, 256)
  assert mask_check.parse_size('') == ()
  for bad in ('256', '0x3', 'ax3', '256x'):
    with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
      mask_check.parse_size(bad)


def test_config_names_the_options():
  from components.image_example_gen import config
  with pytest.raises(config.ConfigError, match='--mask-check'):
    config.IngestConfig({'a': 0}, mask_check='strict')
  with pytest.raises(config.ConfigError, match='--mask-size'):
    config.IngestConfig({'a': 0}, mask_size='256')


# --- Rows of real files, as workers see them, and a real ingestion ----------------------------

def _save(path, pixels):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)


@pytest.fixture
def data(tmp_path):
  """6 rows: good mask, no mask, empty mask, grey-level mask, 12x12 mask for a 16x16 image,
  colour mask. Returns (root, csv path)."""
  d = tmp_path / 'data'
  image = (np.arange(256).reshape(16, 16) % 251).astype(np.uint8)
  masks = {'good': binary(), 'empty': np.zeros((16, 16), np.uint8)}
  grey = binary()
  grey[1, 1] = 99
  masks['grey'] = grey
  masks['small'] = binary((12, 12))
  colour = np.repeat(binary()[..., None], 3, axis=-1)
  colour[2, 2] = (0, 255, 0)
  masks['colour'] = colour
  rows = []
  for i, name in enumerate(['good', 'none', 'empty', 'grey', 'small', 'colour']):
    _save(str(d / f'img/{name}.png'), image + i)
    mask = ''
    if name in masks:
      _save(str(d / f'mask/{name}.png'), masks[name])
      mask = f'mask/{name}.png'
    rows.append([f'img/{name}.png', mask, 'A' if i % 2 else 'B'])
  with open(d / 'index.csv', 'w', newline='') as f:
    csv.writer(f).writerows([HEADER] + rows)
  return d, str(d / 'index.csv')


def _ingest(csv_path, out, **kw):
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  return ingest.run_ingest(csv_path, IngestConfig({'A': 0, 'B': 1}, (('train', 1),), **kw),
                           str(out), beam.Pipeline)


def test_worker_verdicts_per_mode(data):
  from components.image_example_gen import files
  root, _ = data

  def load(name, mode, **kw):
    return files.load_row(str(root / f'img/{name}.png'), str(root / f'mask/{name}.png'),
                          files.CheckOptions((str(root),), 10**6, 10**6, 'header', mode, **kw))

  assert load('grey', 'warn').mask_findings == (mask_check.NOT_BINARY,)
  assert not load('grey', 'warn').problems
  grey = load('grey', 'fail')
  assert grey.problems == ((str(root / 'mask/grey.png'), (
      'bad mask: mask is not binary: 1 of 256 pixels are neither 0 nor its foreground value '
      '255 (option --mask-check warn writes it and reports it)')),)
  assert load('empty', 'fail').mask_findings == (mask_check.EMPTY,)  # counted, not refused
  assert load('small', 'fail', mask_size=(12, 12)).problems == ()
  assert load('grey', 'off').mask_findings == ()


def test_fail_quarantines_bad_masks_and_warn_counts_them(data, tmp_path):
  _, csv_path = data
  failed = _ingest(csv_path, tmp_path / 'fail', mask_check='fail', on_bad_record='quarantine')
  assert (failed.rows_in, failed.examples_written, failed.rows_quarantined) == (6, 3, 3)
  with open(tmp_path / 'fail' / 'quarantine.json') as f:
    quarantined = {q['path']: q['reason'] for q in json.load(f)}
  assert sorted(quarantined) == ['mask/colour.png', 'mask/grey.png', 'mask/small.png']
  assert 'single-channel' in quarantined['mask/colour.png']
  assert '--mask-size 12x12' in quarantined['mask/small.png']
  assert failed.mask_checks == {'train': {'B': dict(  # good and empty; 'A' kept no mask
      masks=2, empty=1, not_binary=0, not_single_channel=0, size_mismatch=0, undecodable=0)}}

  warned = _ingest(csv_path, tmp_path / 'warn')
  assert (warned.examples_written, warned.rows_quarantined, warned.mask_check) == (6, 0, 'warn')
  counts = warned.mask_checks['train']
  total = {k: sum(c[k] for c in counts.values()) for k in mask_check.COUNT_KEYS}
  assert total == dict(masks=5, empty=1, not_binary=1, not_single_channel=1, size_mismatch=1,
                       undecodable=0)
  assert [(f['line'], f['findings']) for f in warned.mask_findings] == [
      (4, ['empty']), (5, ['not_binary']), (6, ['size_mismatch']), (7, ['not_single_channel'])]

  off = _ingest(csv_path, tmp_path / 'off', mask_check='off')
  assert sum(c['not_binary'] for c in off.mask_checks['train'].values()) == 0
  assert sum(c['masks'] for c in off.mask_checks['train'].values()) == 5
