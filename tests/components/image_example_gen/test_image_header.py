"""inspect_image: the check ImageExampleGen's workers run on the bytes they write (pure, no TF).

Pillow is the oracle: valid images of every mode are accepted with Pillow's facts; a damaged
image Pillow cannot decode is refused by verify='full'; one Pillow decodes is accepted by
verify='header', and by verify='full' unless its deflate stream is incomplete (Pillow leaves
the missing rows blank, TensorFlow's libpng refuses it); a file cut before its end marker is
refused by both modes. Set CXR_TF_AGREEMENT=1 to also compare verify='full' with
tf.io.decode_image on damaged images (imports TensorFlow; about a minute).
"""
import io
import os
import random
import struct
import subprocess
import sys
import warnings

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from PIL import Image
from PIL import ImageFile
from PIL import JpegImagePlugin
import pytest

from components.image_example_gen import image_header
from components.image_example_gen.image_header import BadImage
from components.image_example_gen.image_header import ImageHeader
from components.image_example_gen.image_header import inspect_image
from components.image_example_gen.image_header import VERIFY_FULL
from components.image_example_gen.image_header import VERIFY_HEADER
from tests.support import corrupt_images as ci

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
MODES = (VERIFY_HEADER, VERIFY_FULL)
# Pillow mode -> ImageHeader.mode (the colour layout; the bit depth is separate).
PILLOW_TO_HEADER_MODE = {'1': 'L', 'L': 'L', 'I': 'L', 'I;16': 'L', 'I;16B': 'L', 'LA': 'LA',
                         'RGB': 'RGB', 'RGBA': 'RGBA', 'P': 'P', 'CMYK': 'CMYK'}
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reason(data, verify=VERIFY_HEADER, **kwargs):
  with pytest.raises(BadImage) as e:
    inspect_image(data, verify, **kwargs)
  return str(e.value)


@FUZZ
@given(ci.images())
def test_valid_images_accepted_with_pillows_facts(case):
  data, spec = case
  with Image.open(io.BytesIO(data)) as img:
    pillow_size, pillow_mode = img.size, img.mode
  for verify in MODES:
    h = inspect_image(data, verify)
    assert (h.format, h.width, h.height) == (spec.format, spec.width, spec.height)
    assert (h.width, h.height) == pillow_size
    assert h.mode == PILLOW_TO_HEADER_MODE[pillow_mode]
    if spec.mode == 'I;16':
      assert h.bit_depth == 16
    elif spec.mode == 'P':  # Pillow writes 1/2/4/8-bit indices by palette size
      assert h.bit_depth in (1, 2, 4, 8)
    else:
      assert h.bit_depth == 8
    assert h.pixels == spec.width * spec.height


@FUZZ
@given(ci.raw_pngs())
def test_every_colour_type_depth_and_interlace_accepted(case):
  data, spec = case
  bit_depth, color_type = data[24], data[25]  # IHDR
  assert ci.pillow_loads(data)
  for verify in MODES:
    h = inspect_image(data, verify)
    assert (h.width, h.height, h.bit_depth) == (spec.width, spec.height, bit_depth)
    assert h.mode == {0: 'L', 2: 'RGB', 3: 'P', 4: 'LA', 6: 'RGBA'}[color_type]


@pytest.mark.parametrize('color_type,bit_depth', [
    (ct, bd) for ct, depths in ci.PNG_BIT_DEPTHS.items() for bd in depths])
def test_every_png_colour_type_and_depth(color_type, bit_depth):
  data = ci.raw_png_bytes(13, 7, bit_depth, color_type, seed=bit_depth, idat_chunks=3)
  assert ci.pillow_loads(data)
  for verify in MODES:
    assert inspect_image(data, verify) == ImageHeader(
        'png', 13, 7, bit_depth, {0: 'L', 2: 'RGB', 3: 'P', 4: 'LA', 6: 'RGBA'}[color_type])


def _check_against_oracle(bad, mutation):
  if mutation.truncated:
    kind = mutation.spec.format.upper()
    for verify in MODES:
      assert reason(bad, verify).startswith(f'truncated {kind}'), mutation
  elif ci.pillow_loads(bad):  # never refuse what Pillow decodes, but incomplete PNG data
    inspect_image(bad, VERIFY_HEADER)
    try:
      inspect_image(bad, VERIFY_FULL)
    except BadImage as e:
      assert str(e).startswith('corrupt PNG data: the deflate stream'), (e, mutation)
      assert not ci.png_stream_complete(bad), mutation
  else:  # usually 'corrupt ...'; 'truncated ...' if a damaged length runs past the end
    with pytest.raises(BadImage):
      inspect_image(bad, VERIFY_FULL)


@FUZZ
@given(ci.png_mutations())
def test_damaged_png_refused_iff_pillow_cannot_decode_it(case):
  _check_against_oracle(*case)


@settings(FUZZ, max_examples=300)
@given(ci.jpeg_mutations())
def test_damaged_jpeg_refused_iff_pillow_cannot_decode_it(case):
  _check_against_oracle(*case)


@pytest.mark.parametrize('interlace', [False, True])
def test_png_deflate_stream_must_hold_every_row_and_end(interlace):
  """What libpng (TensorFlow) refuses although Pillow's load() fills in or ignores it."""
  def png(raw, end='normal', height=9):
    return ci.raw_png_bytes(11, height, 8, 2, interlace=interlace,
                            stream=ci.deflate_stream(raw, end))
  raw = ci.scanlines(11, 9, 8, 2, interlace)
  assert inspect_image(png(raw), VERIFY_FULL) == ImageHeader('png', 11, 9, 8, 'RGB')
  # more rows promised than the stream holds: Pillow leaves them blank
  taller = png(ci.scanlines(11, 12, 8, 2, interlace)[:-3 * 34], height=12)  # 3 rows short
  assert ci.pillow_loads(taller) or interlace
  assert inspect_image(taller, VERIFY_HEADER).pixels
  assert reason(taller, VERIFY_FULL).startswith(
      'corrupt PNG data: the deflate stream ends after ')
  # every row there, but the stream never ends (no final block, no checksum)
  endless = png(raw, 'unterminated')
  assert ci.pillow_loads(endless)
  assert reason(endless, VERIFY_FULL).startswith(
      'corrupt PNG data: the deflate stream does not end after the last row')
  # extra data before a proper end: libpng only warns, TensorFlow decodes it
  assert inspect_image(png(raw + b'\0' * 40), VERIFY_FULL).pixels == 99
  # a filter type byte > 4: libpng and Pillow refuse it
  bad_filter = bytearray(raw)
  bad_filter[0] = 5  # the first row's filter type
  assert not ci.pillow_loads(png(bytes(bad_filter)))
  assert reason(png(bytes(bad_filter)), VERIFY_FULL) == (
      'corrupt PNG data: invalid filter type 5 in the scanlines')


def test_regression_jpeg_frame_header_past_64kb_accepted():
  data = ci.jpeg_bytes(40, 30, 'RGB', icc=ci.icc_profile(100_000), exif_block=ci.exif(30_000))
  sof = [off for off, marker, _ in ci.jpeg_segments(data) if marker == 0xC0]
  assert sof[0] > 64 * 1024  # the frame header (SOF0) is past 64 KB
  for verify in MODES:
    assert inspect_image(data, verify) == ImageHeader('jpeg', 40, 30, 8, 'RGB')


def test_regression_png_with_bytes_after_iend_accepted():
  data = ci.png_bytes(30, 20, 'L', trailing=b'\x00' * 3 + b'IEND junk after the end')
  for verify in MODES:
    assert inspect_image(data, verify) == ImageHeader('png', 30, 20, 8, 'L')
  jpeg = ci.jpeg_bytes(30, 20, 'L', trailing=b'\xff\xd8 trailing')
  assert inspect_image(jpeg, VERIFY_FULL) == ImageHeader('jpeg', 30, 20, 8, 'L')


def test_accepted_kinds():
  cases = {
      'gray16': (ci.png_bytes(16, 8, 'I;16'), ImageHeader('png', 16, 8, 16, 'L')),
      'palette': (ci.raw_png_bytes(16, 8, 8, 3), ImageHeader('png', 16, 8, 8, 'P')),
      'rgba': (ci.png_bytes(16, 8, 'RGBA'), ImageHeader('png', 16, 8, 8, 'RGBA')),
      'rgb jpeg': (ci.jpeg_bytes(16, 8, 'RGB'), ImageHeader('jpeg', 16, 8, 8, 'RGB')),
      'gray jpeg': (ci.jpeg_bytes(16, 8, 'L'), ImageHeader('jpeg', 16, 8, 8, 'L')),
      'progressive': (ci.jpeg_bytes(16, 8, 'RGB', progressive=True),
                      ImageHeader('jpeg', 16, 8, 8, 'RGB')),
  }
  for name, (data, want) in cases.items():
    for verify in MODES:
      assert inspect_image(data, verify) == want, name


def test_reasons():
  png = ci.png_bytes(30, 20, 'RGB')
  assert reason(b'') == 'empty file'
  assert reason(b'this is not an image') == "not a PNG or JPEG: starts with b'this is '"
  assert reason(ci.encode(ci.pixels(4, 4, 'RGB'), 'GIF')) == 'not a PNG or JPEG: a GIF image'
  assert reason(ci.encode(ci.pixels(4, 4, 'RGB'), 'BMP')) == 'not a PNG or JPEG: a BMP image'
  assert reason(b'\x89PNG') == 'truncated PNG: only 4 bytes'
  assert reason(png[:-1]).startswith('truncated PNG: IEND chunk')
  assert reason(png[:40]).startswith('truncated PNG: ')
  assert reason(ci.bad_crc(png)).startswith('corrupt PNG: bad CRC in IDAT chunk at byte ')
  chunks = [(t, p) for _, t, p in ci.png_chunks(png)]
  assert reason(ci.build_png(chunks[-1:])) == 'corrupt PNG: first chunk is IEND, not IHDR'
  assert reason(ci.build_png([(b'tEXt', b'k\x00v')] + chunks)) == (
      'corrupt PNG: first chunk is tEXt, not IHDR')  # Pillow would read it, libpng not
  ihdr = chunks[0][1]
  assert reason(ci.build_png([(b'IHDR', ihdr[:10] + b'\x01' + ihdr[11:])] + chunks[1:])) == (
      'corrupt PNG: IHDR colour type 2, compression method 1, interlace method 0')
  no_idat = ci.build_png([c for c in chunks if c[0] != b'IDAT'])
  assert reason(no_idat) == 'corrupt PNG: no IDAT chunk (no image data)'
  # header mode does not inflate; full mode does
  zlib_bad = ci.bad_zlib_header(png)
  assert inspect_image(zlib_bad, VERIFY_HEADER).pixels == 600
  assert reason(zlib_bad, VERIFY_FULL).startswith('corrupt PNG data: ')
  jpeg = ci.jpeg_bytes(30, 20)
  assert reason(jpeg[:-2]).startswith('truncated JPEG: no end-of-image marker')
  assert reason(jpeg[:2]) == 'truncated JPEG: only 2 bytes'
  assert reason(b'\xff\xd8\xff\xd9').startswith('corrupt JPEG')
  with pytest.raises(ValueError) as e:
    inspect_image(png, 'pixels')
  assert not isinstance(e.value, BadImage)


def test_max_pixels_refused_before_any_decode(monkeypatch):
  def no_decode(*unused_args):
    raise AssertionError('decoded before the size check')
  # IHDR claims 30000 x 30000 (900 MP: over twice Pillow's own bomb limit) over a tiny image.
  bomb = ci.png_wrong_size(ci.png_bytes(8, 8), 30_000, 30_000)
  pillow_limit = Image.MAX_IMAGE_PIXELS
  with monkeypatch.context() as m:
    m.setattr(image_header, '_verify_png_data', no_decode)  # the PNG decode of verify='full'
    m.setattr(JpegImagePlugin.JpegImageFile, 'load', no_decode)
    with warnings.catch_warnings():
      warnings.simplefilter('error')  # no DecompressionBombWarning either
      for verify in MODES:
        assert reason(bomb, verify, max_pixels=50_000_000) == (
            'too large: 30000x30000 = 900000000 pixels > max (option --max-pixels = 50000000)')
      jpeg = ci.jpeg_bytes(100, 50)
      assert reason(jpeg, VERIFY_FULL, max_pixels=4999).startswith('too large: 100x50 = 5000 ')
      # At the limit is fine; without a limit, Pillow's own bomb check does not fire either.
      assert inspect_image(ci.png_bytes(100, 50), max_pixels=5000).pixels == 5000
      assert inspect_image(bomb).pixels == 900_000_000  # header mode: structure is valid
  assert Image.MAX_IMAGE_PIXELS == pillow_limit  # Pillow's global limit untouched


def test_truncation_caught_even_if_pillow_tolerates_it(monkeypatch):
  monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
  png, jpeg = ci.png_bytes(30, 20), ci.jpeg_bytes(30, 20)
  rnd = random.Random(0)
  for _ in range(20):
    assert reason(ci.truncate(png, rnd), VERIFY_FULL).startswith('truncated PNG')
    assert reason(ci.truncate(jpeg, rnd), VERIFY_FULL).startswith('truncated JPEG')


def test_module_imports_no_tensorflow():
  code = ('import sys, components.image_example_gen.image_header; '
          'assert "tensorflow" not in sys.modules')
  subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO)


def test_png_helpers_keep_structure():
  png = ci.png_bytes(20, 10, 'RGB', trailing=b'tail')
  assert ci.png_end(png) == len(png) - 4
  assert ci.build_png([(t, p) for _, t, p in ci.png_chunks(png)], b'tail') == png
  assert struct.unpack('>II', ci.png_chunks(ci.png_wrong_size(png, 7, 9))[0][2][:8]) == (7, 9)
  jpeg = ci.jpeg_bytes(20, 10, trailing=b'tail')
  assert ci.jpeg_end(jpeg) == len(jpeg) - 4


@pytest.mark.skipif(not os.environ.get('CXR_TF_AGREEMENT'),
                    reason='set CXR_TF_AGREEMENT=1: compares with TensorFlow (slow import)')
def test_full_verify_agrees_with_tensorflow_decoders():
  import tensorflow as tf

  def tf_decodes(data):
    try:
      tf.io.decode_image(data, channels=0, expand_animations=False)
      return True
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
      return False

  def ours(data):
    try:
      inspect_image(data, VERIFY_FULL)
      return True
    except BadImage:
      return False

  rnd = random.Random(0)
  disagree = []
  for i in range(150):
    w, h = rnd.randint(1, 40), rnd.randint(1, 40)
    color_type = rnd.choice(list(ci.PNG_BIT_DEPTHS))
    depth = rnd.choice(ci.PNG_BIT_DEPTHS[color_type])
    interlace = rnd.random() < 0.5
    raw = ci.scanlines(w, h, depth, color_type, interlace, seed=i)
    png = ci.raw_png_bytes(w, h, depth, color_type, seed=i, interlace=interlace)
    pil_png = ci.png_bytes(w, h, rnd.choice(ci.PNG_MODES), seed=i)
    jpeg = ci.jpeg_bytes(w, h, rnd.choice(ci.JPEG_MODES), seed=i, progressive=i % 2 == 0)
    cases = [png, pil_png, jpeg, pil_png + b'trailing', jpeg + b'trailing',
             ci.corrupt_png_idat(png, rnd), ci.corrupt_png_idat(pil_png, rnd),
             ci.png_wrong_size(pil_png, rnd.randint(1, 80), rnd.randint(1, 80)),
             ci.bad_zlib_header(png), ci.bad_crc(png), ci.truncate(png, rnd),
             ci.truncate(jpeg, rnd), ci.corrupt_jpeg_scan(jpeg, rnd)]
    for end in ('bad_adler', 'unterminated'):
      cases.append(ci.raw_png_bytes(w, h, depth, color_type, seed=i, interlace=interlace,
                                    stream=ci.deflate_stream(raw, end)))
    cases.append(ci.raw_png_bytes(w, h, depth, color_type, seed=i, interlace=interlace,
                                  stream=ci.deflate_stream(raw[:rnd.randrange(len(raw))])))
    cases.append(ci.raw_png_bytes(w, h, depth, color_type, seed=i, interlace=interlace,
                                  stream=ci.deflate_stream(raw + bytes(rnd.randint(1, 50)))))
    # Known gap, not hit by this seed: ~1 in 1,000 random JPEG scan-data flips makes libjpeg
    # read past the end; Pillow fills in (verify='full' accepts), TensorFlow refuses.
    disagree += [data for data in cases if ours(data) != tf_decodes(data)]
  assert not disagree, f'{len(disagree)} disagreements, first: {disagree[0][:64]!r}'
