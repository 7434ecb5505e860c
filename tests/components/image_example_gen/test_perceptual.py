"""Perceptual fingerprints and the pixel check, on synthetic radiographs (pure, NumPy)."""
import io

import cv2
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from PIL import Image
from PIL import ImageEnhance
import pytest

from components import errors
from components.image_example_gen import perceptual


@pytest.fixture(scope='module')
def radiographs(demo_radiographs):
  """Grey uint8 demo radiographs (~45 images)."""
  return demo_radiographs(3)


def _roundtrip(img: Image.Image, fmt='PNG', **kw) -> np.ndarray:
  buf = io.BytesIO()
  img.save(buf, format=fmt, **kw)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _fp(pixels):
  return perceptual.fingerprint(perceptual.to_grey(pixels))


def test_to_grey_handles_every_decoder_layout():
  grey8 = np.full((4, 5), 255, np.uint8)
  assert perceptual.to_grey(grey8).dtype == np.float32
  assert np.allclose(perceptual.to_grey(grey8), 1.0)
  assert np.allclose(perceptual.to_grey(np.full((4, 5), 65535, np.uint16)), 1.0)
  rgba = np.zeros((4, 5, 4), np.uint8)
  rgba[..., 1] = 255  # pure green, alpha 0: luma 0.587, alpha ignored
  assert np.allclose(perceptual.to_grey(rgba), 0.587, atol=1e-3)
  assert perceptual.to_grey(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5)
  assert perceptual.to_grey(np.zeros((4, 5, 2), np.uint8)).shape == (4, 5)
  with pytest.raises(ValueError):
    perceptual.to_grey(np.zeros((4, 5, 6), np.uint8))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(
    min_size=perceptual.THUMB_SIZE ** 2, max_size=perceptual.THUMB_SIZE ** 2),
       st.integers(1, 100000), st.integers(1, 100000))
def test_text_round_trip(phash, chash, thumb, width, height):
  fp = perceptual.Fingerprint(phash, chash, thumb, width, height)
  text = fp.to_text()
  assert text.isascii() and perceptual.Fingerprint.from_text(text) == fp


@pytest.mark.parametrize('shape', [(1, 1), (7, 300), (31, 33), (2000, 1500), (64, 64, 3)])
def test_any_size_and_a_blank_image_fingerprint_without_pairing(shape):
  rng = np.random.default_rng(0)
  noisy = _fp((rng.random(shape) * 255).astype(np.uint8))
  assert len(noisy.thumb) == perceptual.THUMB_SIZE ** 2
  assert (noisy.width, noisy.height) == (shape[1], shape[0])
  blank = _fp(np.full(shape, 128, np.uint8))
  assert not perceptual.is_near_duplicate(blank, blank)  # nothing to compare: quality's finding


def test_from_text_refuses_other_text():
  with pytest.raises(ValueError, match='not a'):
    perceptual.Fingerprint.from_text('hello')


def test_copies_are_near_duplicates_and_distinct_radiographs_are_not(radiographs):
  x = radiographs[0]
  img = Image.fromarray(x)
  w, h = img.size
  copies = {
      'reencoded': _roundtrip(img.convert('RGB')),
      'resized': _roundtrip(img.resize((w * 2 // 3, h * 2 // 3), Image.BILINEAR)),
      'brighter': _roundtrip(ImageEnhance.Brightness(img).enhance(1.2)),
      'jpeg': _roundtrip(img, 'JPEG', quality=50),
      'cropped': _roundtrip(img.crop((9, 6, w - 12, h - 15))),
  }
  original = _fp(x)
  for kind, pixels in copies.items():
    fp = _fp(pixels)
    assert perceptual.is_near_duplicate(original, fp), (kind, perceptual.similarity(original, fp))
  others = [_fp(y) for y in radiographs[1:]]
  assert not any(perceptual.is_near_duplicate(original, o) for o in others)


def test_phash_is_imagehash_phash_up_to_resampling(radiographs):
  imagehash = pytest.importorskip('imagehash')  # dev lock only: a reference, not a dependency
  distances = []
  for x in radiographs[:10]:
    theirs = int(str(imagehash.phash(Image.fromarray(x))), 16)
    distances.append(perceptual.hamming(_fp(x).phash, theirs))
  # Same construction (32x32, DCT, 8x8, median); imagehash resizes with Lanczos, we average
  # areas and normalise the tone, so a few bits differ -- far fewer than between images (~32).
  assert sorted(distances)[len(distances) // 2] <= 12, distances


def test_hashes_bits_are_the_median_split():
  values = np.arange(64, dtype=np.float32)[::-1].copy()
  assert perceptual._bits(values) == int('1' * 32 + '0' * 32, 2)
  odd = np.array([3, 1, 2], np.float32)
  assert perceptual._bits(odd) == 0b100


def test_candidate_keys_are_shared_by_a_copy(radiographs):
  x = radiographs[2]
  copy = _roundtrip(Image.fromarray(x), 'JPEG', quality=60)
  assert set(perceptual.candidate_keys(_fp(x))) & set(perceptual.candidate_keys(_fp(copy)))
  assert len(perceptual.candidate_keys(_fp(x))) == perceptual.BANDS


def test_a_fingerprint_of_an_older_version_says_how_to_re_ingest():
  old = 'pf1:' + ':'.join(('0' * 16, '0' * 16, '299x299', 'AAAA'))
  with pytest.raises(perceptual.FingerprintVersionError) as raised:
    perceptual.Fingerprint.from_text(old)
  assert isinstance(raised.value, errors.CxrError) and isinstance(raised.value, ValueError)
  assert '--fresh-splits' in str(raised.value) and '--near-duplicates off' in str(raised.value)


@pytest.mark.parametrize('shape', [(299, 299), (377, 410), (40, 33), (1024, 1000), (2900, 3000)])
def test_the_thumbnail_is_the_exact_area_average_of_any_layout(shape):
  rng = np.random.default_rng(shape[0])
  pixels = (rng.random(shape) * 255).astype(np.uint8)
  grey = perceptual.to_grey(pixels)
  expected = cv2.resize(grey, (perceptual.THUMB_SIZE,) * 2, interpolation=cv2.INTER_AREA)
  for layout in (pixels, pixels[:, :, None], grey, np.stack([pixels] * 3, axis=2)):
    assert np.abs(perceptual.area_thumbnail(layout) - expected).max() < 2e-5
  # The uint8 pixels as decoded and their float grey give one thumbnail (to a rounding: noise
  # stretched by the tone normalisation; the workers take one path per decoded layout).
  as_decoded, as_float = perceptual.fingerprint(pixels), perceptual.fingerprint(grey)
  assert (as_decoded.width, as_decoded.height) == (as_float.width, as_float.height)
  assert np.abs(as_decoded.thumbnail() - as_float.thumbnail()).max() <= 1 / 255 + 1e-6


def test_look_alike_renders_are_told_apart_but_their_copies_are_not(radiographs):
  """Distinct renders of the demo template correlate up to ~0.998 on the thumbnail; the
  threshold sits between them and the copies (bench/results/near_duplicates.md)."""
  fps = [_fp(x) for x in radiographs]
  direct = [perceptual.direct_similarity(a, b) for i, a in enumerate(fps) for b in fps[i + 1:]]
  assert max(direct) < perceptual.NEAR_DUPLICATE_THRESHOLD
  img = Image.fromarray(radiographs[1])
  w, h = img.size
  for copy in (_roundtrip(img.resize((w * 3 // 2, h * 3 // 2), Image.BILINEAR)),
               _roundtrip(ImageEnhance.Brightness(img).enhance(0.75)),
               _roundtrip(img, 'JPEG', quality=40)):
    assert perceptual.direct_similarity(fps[1], _fp(copy)) >= perceptual.NEAR_DUPLICATE_THRESHOLD
