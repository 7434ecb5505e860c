"""DICOM input: pydicom's real sample files and synthetic CR/DX files
(tests/support/dicom_files.py).

Rendering parity with an independent rendering -- pydicom's apply_modality_lut, apply_voi_lut
(or apply_windowing), inversion of MONOCHROME1 and the documented scaling -- to the last bit;
detection by content; decompression bombs refused from the frames' own headers before any
decoding; bad DICOM as bad records under fail and quarantine; the PHI guard; patients grouped by
a DICOM attribute; real Beam ingestions of CSVs mixing PNG and DICOM."""
import csv
import gzip
import hashlib
import hmac
import io
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import config as config_lib
from components.image_example_gen import dicom
from tests.support import dicom_files as df

HEADER = ['image_path', 'mask_path', 'class']


# --- the independent rendering ------------------------------------------------------------------

def reference(data, window='auto', output='png16'):
  """What the rendered PNG must hold, from pydicom's own LUT functions and the README's rule:
  scaled = round_half_even((v - lo) * M / (hi - lo)) clipped to 0..M, M = 65535 or 255, [lo, hi]
  the VOI output's range; MONOCHROME1 -> M - scaled."""

  import pydicom
  from pydicom.pixels import apply_modality_lut
  from pydicom.pixels import apply_voi_lut
  from pydicom.pixels import apply_windowing
  ds = pydicom.dcmread(io.BytesIO(data))
  assert 'ModalityLUTSequence' not in ds  # (the nominal range below is the rescaled one)
  top = 65535 if output == 'png16' else 255
  values = apply_modality_lut(ds.pixel_array, ds)
  bits = int(ds.BitsStored)
  lo, hi = ((0, 2 ** bits - 1) if ds.PixelRepresentation == 0 else
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
  if 'RescaleSlope' in ds and 'RescaleIntercept' in ds:
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    lo, hi = lo * slope + intercept, hi * slope + intercept
  if window == 'auto':
    out = apply_voi_lut(values, ds)
    if ds.get('VOILUTSequence'):
      lo, hi = 0, 2 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1
    elif 'WindowCenter' not in ds:
      lo, hi = values.min(), values.max()
  elif window == 'none':
    out, (lo, hi) = values, sorted((lo, hi))
  else:
    center, width = (float(v) for v in window.split(','))
    for keyword in ('VOILUTFunction', 'VOILUTSequence'):
      if keyword in ds:
        delattr(ds, keyword)
    ds.WindowCenter, ds.WindowWidth = center, width
    out = apply_windowing(values, ds)
  if hi == lo:
    scaled = np.zeros(out.shape)
  else:
    scaled = np.clip(np.rint((out.astype(np.float64) - lo) * top / (hi - lo)), 0, top)
  if ds.PhotometricInterpretation == 'MONOCHROME1':
    scaled = top - scaled
  return scaled.astype(np.uint16 if top == 65535 else np.uint8)


def decoded(png):
  return np.asarray(Image.open(io.BytesIO(png)))


def png_chunks(png):
  """The chunk types of a PNG, in order."""
  assert png.startswith(b'\x89PNG\r\n\x1a\n')
  pos, kinds = 8, []
  while pos < len(png):
    length, kind = struct.unpack_from('>I4s', png, pos)
    kinds.append(kind.decode())
    pos += 12 + length
  return kinds


REAL = [df.SAMPLE_CR_MONOCHROME1, df.SAMPLE_CT_16BIT, df.SAMPLE_MR_16BIT, df.SAMPLE_MR_RLE,
        df.SAMPLE_MR_J2K, df.SAMPLE_MR_JPEG_LS, df.SAMPLE_CT_J2K_LOSSY, df.SAMPLE_8BIT_DEFLATED,
        df.SAMPLE_MR_12BIT_OVERLAY]


@pytest.mark.parametrize('name', REAL)
def test_real_samples_render_exactly_as_pydicom_does(name):
  """MONOCHROME1 and MONOCHROME2; 8, 12, 14 and 16 bits stored, signed and unsigned; native,
  deflated, RLE, JPEG-LS and JPEG 2000 (lossless and lossy); VOI windows, none, and a given
  window; 16- and 8-bit output."""
  import pydicom
  data = df.read(df.sample(name))
  header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
  for window in ('auto', 'none', '1000,2000'):
    for output in ('png16', 'png8'):
      rendered = dicom.render(data, window=window, output=output)
      expected = reference(data, window, output)
      got = decoded(rendered.png)
      assert got.dtype == expected.dtype and got.shape == (header.Rows, header.Columns)
      np.testing.assert_array_equal(got, expected, err_msg=f'{name} {window} {output}')
      assert rendered.bit_depth == (16 if output == 'png16' else 8)
      assert png_chunks(rendered.png) == ['IHDR', 'IDAT', 'IEND']  # no text, no metadata
  info = rendered.info
  assert info.transfer_syntax == header.file_meta.TransferSyntaxUID
  assert info.photometric == header.PhotometricInterpretation
  assert info.bits_stored == header.BitsStored
  spacing = header.get('PixelSpacing') or header.get('ImagerPixelSpacing')
  assert info.pixel_spacing == (tuple(float(s) for s in spacing) if spacing else ())


def test_lossless_syntaxes_of_the_same_pixels_give_the_same_png():
  pngs = {name: dicom.render(df.read(df.sample(name))).png for name in (
      df.SAMPLE_MR_16BIT, df.SAMPLE_MR_RLE, df.SAMPLE_MR_J2K, df.SAMPLE_MR_JPEG_LS)}
  assert len(set(pngs.values())) == 1
  syntaxes = {dicom.render(df.read(df.sample(n))).info.transfer_syntax_name for n in pngs}
  assert len(syntaxes) == 4


def test_tensorflow_decodes_the_png_the_transform_will_read():
  import tensorflow as tf
  data = df.read(df.sample(df.SAMPLE_CR_MONOCHROME1))
  for output, dtype in (('png16', tf.uint16), ('png8', tf.uint8)):
    png = dicom.render(data, output=output).png
    got = tf.io.decode_png(png, channels=1, dtype=dtype).numpy()[..., 0]
    np.testing.assert_array_equal(got, reference(data, 'auto', output))


def test_monochrome1_is_the_inverse_of_the_same_pixels_as_monochrome2():
  pixels = df.chest_pixels(20, 16, 12, seed=3)
  for window in ((2048, 4096), None):
    mono2 = dicom.render(df.radiograph(pixels=pixels, window=window))
    mono1 = dicom.render(df.radiograph(pixels=pixels, window=window,
                                       photometric='MONOCHROME1'))
    assert mono1.info.photometric == 'MONOCHROME1'
    np.testing.assert_array_equal(decoded(mono1.png).astype(int),
                                  65535 - decoded(mono2.png).astype(int))


def test_windows_follow_the_dicom_linear_formula_on_a_ramp():
  """A 12-bit ramp 0..4095: window C,W LINEAR (PS3.3 C.11.2.1.2) computed here by hand, 'none'
  is the nominal range, a given window replaces the file's."""
  ramp = np.arange(4096, dtype=np.uint16).reshape(64, 64)
  c, w = 2048.0, 1024.0
  x = ramp.astype(np.float64)
  by_hand = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(
      x > c - 0.5 + (w - 1) / 2, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5)) * 65535
  windowed = dicom.render(df.radiograph(pixels=ramp, window=(c, w)))
  assert windowed.info.rendering == dicom.RENDERED_WINDOW
  assert np.abs(decoded(windowed.png).astype(float) - by_hand).max() <= 1.0
  assert decoded(windowed.png)[0, 0] == 0 and decoded(windowed.png)[-1, -1] == 65535
  given = dicom.render(df.radiograph(pixels=ramp, window=(100, 50)), window='2048,1024')
  assert given.info.rendering == dicom.RENDERED_WINDOW_OPTION
  assert given.png == windowed.png  # the file's own window is ignored
  nominal = dicom.render(df.radiograph(pixels=ramp, window=(c, w)), window='none')
  np.testing.assert_array_equal(decoded(nominal.png), np.rint(x * 65535 / 4095))
  stretched = dicom.render(df.radiograph(pixels=(ramp // 4 + 100)))  # no window: min..max
  assert stretched.info.rendering == dicom.RENDERED_MIN_MAX
  assert decoded(stretched.png).min() == 0 and decoded(stretched.png).max() == 65535
  flat = dicom.render(df.radiograph(pixels=np.full((4, 4), 7, np.uint16)))
  assert not decoded(flat.png).any()  # a constant image: 0, not a division by zero
  eight = dicom.render(df.radiograph(pixels=ramp, window=(c, w)), output='png8')
  assert np.abs(decoded(eight.png).astype(float) - by_hand * 255 / 65535).max() <= 1.0


def test_rescale_sigmoid_signed_and_voi_lut_sequence_match_pydicom():
  lut = [int(4095 * np.sqrt(i / 4095)) for i in range(4096)]  # a VOI LUT of 12-bit entries
  cases = [dict(rescale=(0.5, -100), window=(900, 1500)),
           dict(window=(2048, 1024), voi_lut_function='SIGMOID'),
           dict(window=(2048, 1024), voi_lut_function='LINEAR_EXACT'),
           dict(signed=True, window=(0, 3000)),
           dict(voi_lut=lut, window=(10, 10)),  # the LUT wins over the window (prefer_lut)
           dict(modality='CR', photometric='MONOCHROME1', voi_lut=lut)]
  for kw in cases:
    data = df.radiograph(seed=5, **kw)
    for window in ('auto', 'none', '-50,3000'):
      np.testing.assert_array_equal(decoded(dicom.render(data, window=window).png),
                                    reference(data, window), err_msg=f'{kw} {window}')
  assert dicom.render(df.radiograph(voi_lut=lut)).info.rendering == dicom.RENDERED_VOI_LUT


def test_identifying_attributes_are_named_never_valued():
  info = dicom.render(df.radiograph(extra={
      'PatientAge': '', 'OtherPatientIDsSequence': [], 'PatientSex': 'F',
      0x00090010: ('LO', 'ACME'), 0x00091001: ('LO', 'Doe^Jane again')})).info
  assert info.identifying == (
      'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'AccessionNumber',
      'StudyDate', 'InstitutionName', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID',
      dicom.PRIVATE_TAGS)  # empty ones (PatientAge, an empty sequence) are not there
  assert 'Doe' not in repr(info) and 'ACME' not in repr(info)


def test_window_option_is_validated():
  assert config_lib.parse_dicom_window('auto') == ()
  assert config_lib.parse_dicom_window('-600,1500') == (-600.0, 1500.0)
  for bad in ('600', 'a,b', '40,0', 'nan,5', 'auto,'):
    with pytest.raises(config_lib.ConfigError, match='--dicom-window'):
      config_lib.IngestConfig({'a': 0}, dicom_window=bad)
  with pytest.raises(config_lib.ConfigError, match='--dicom-output'):
    config_lib.IngestConfig({'a': 0}, dicom_output='png12')
  with pytest.raises(config_lib.ConfigError, match="'PatientIdentity' is not a DICOM keyword"):
    config_lib.IngestConfig({'a': 0}, group_column='dicom:PatientIdentity')


# --- the worker's read: detection by content ----------------------------------------------------

def _options(root, **kw):
  from components.image_example_gen import files
  return files.CheckOptions((str(root),), 10 ** 7, 1 << 24, 'full', **kw)


def test_dicom_is_detected_by_content_not_by_name(tmp_path):
  from components.image_example_gen import files
  cr = df.read(df.sample(df.SAMPLE_CR_MONOCHROME1))
  png = io.BytesIO()
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(png, 'PNG')
  for name in ('cr', 'cr.png', 'cr.dcm'):
    df.write(tmp_path / name, cr)
    loaded = files.load_row(str(tmp_path / name), '', _options(tmp_path))
    assert not loaded.problems and loaded.image_dicom.photometric == 'MONOCHROME1', name
    assert loaded.image == dicom.render(cr).png  # the bytes written are the rendered PNG
  df.write(tmp_path / 'png.dcm', png.getvalue())
  loaded = files.load_row(str(tmp_path / 'png.dcm'), '', _options(tmp_path))
  assert loaded.image == png.getvalue() and loaded.image_dicom is None
  shutil.copy(df.sample(df.SAMPLE_NO_PREAMBLE), tmp_path / 'raw.dcm')
  assert files.load_row(str(tmp_path / 'raw.dcm'), '', _options(tmp_path)).problems[0][1] == (
      'bad image: not a DICOM file: no DICM marker at byte 128 (files without the DICOM Part 10 '
      'preamble and file meta are not read)')
  df.write(tmp_path / 'big.dcm', df.radiograph(rows=100, columns=100))
  assert files.load_row(str(tmp_path / 'big.dcm'), '', files.CheckOptions(
      (str(tmp_path),), 9999, 1 << 24, 'full')).problems[0][1] == (
          'bad image: too large: 100x100 = 10000 pixels > max (option --max-pixels = 9999)')


# --- decompression bombs (issue #29, defect 6) --------------------------------------------------

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
JPEG_BASELINE = '1.2.840.10008.1.2.4.50'
BOMB = 40000  # what the bombs' frames say: 40000x40000 = 1.6e9 pixels (the header: 64x64)


def _jpeg_dicom(frame):
  """An 8-bit 64x64 DICOM (JPEG Baseline) holding ``frame``, whatever the frame says."""
  return df.with_frame(df.radiograph(pixels=np.zeros((64, 64), np.uint16), bits_stored=8),
                       frame, JPEG_BASELINE, BitsAllocated=8, BitsStored=8, HighBit=7)


def _jpeg64():
  return df.jpeg_frame(df.chest_pixels(64, 64, 8, seed=2))


def _jp2(codestream):
  """``codestream`` in a JP2 file: signature, file type, an empty header box, jp2c."""
  def box(kind, body):
    return struct.pack('>I', 8 + len(body)) + kind + body
  return (b'\x00\x00\x00\x0cjP  \r\n\x87\n' + box(b'ftyp', b'jp2 \x00\x00\x00\x00jp2 ')
          + box(b'jp2h', b'') + box(b'jp2c', codestream))


def _rle_bomb(pairs=100_000):
  """The 64x64 16-bit RLE sample with two segments of ``pairs`` replicate runs of 128 bytes:
  400 KB that pydicom's RLE decoder expands to 2 x 12.8 MB before comparing with 4096."""
  segment = b'\x81\x00' * pairs
  header = struct.pack('<16I', 2, 64, 64 + len(segment), *[0] * 13)
  return df.with_frame(df.read(df.sample(df.SAMPLE_MR_RLE)), header + segment + segment)


def _bombs():
  """name -> (DICOM bytes, render's keyword arguments, the start of the reason)."""
  jls = df.read(df.sample(df.SAMPLE_MR_JPEG_LS))
  j2k = df.read(df.sample(df.SAMPLE_MR_J2K))
  too_large = f'too large: the {{}} frame says {BOMB}x{BOMB} = {BOMB * BOMB} pixels > max '
  return {
      'jpeg': (_jpeg_dicom(df.claim_size(_jpeg64(), BOMB, BOMB)), {},
               too_large.format('JPEG Baseline (Process 1)')),
      'jpeg-ls': (df.with_frame(jls, df.claim_size(df.frame_of(jls), BOMB, BOMB)), {},
                  too_large.format('JPEG-LS Lossless Image Compression')),
      'j2k': (df.with_frame(j2k, df.claim_size(df.frame_of(j2k), BOMB, BOMB)), {},
              too_large.format('JPEG 2000 Image Compression (Lossless Only)')),
      'jp2': (df.with_frame(j2k, _jp2(df.claim_size(df.frame_of(j2k), BOMB, BOMB))), {},
              too_large.format('JPEG 2000 Image Compression (Lossless Only)')),
      'rle': (_rle_bomb(), {}, 'corrupt DICOM pixel data (RLE Lossless): RLE segment 1 expands '
                               'to more than 8192 bytes, twice the 4096 of its 64x64 plane'),
      'deflated': (df.deflated_with_blob(24 << 20), {'max_pixels': 512 * 512},
                   'too large: the deflated DICOM data set inflates to more than 17825792 bytes'),
  }


def _frame_check(data, max_pixels=50_000_000):
  """check_frames alone on ``data``: it reads the frames' headers and never decodes."""
  import pydicom
  ds = pydicom.dcmread(io.BytesIO(data))
  syntax = ds.file_meta.TransferSyntaxUID
  dicom.check_frames(ds, str(syntax), syntax.name, max_pixels)


def _frame_reason(data, max_pixels=50_000_000):
  with pytest.raises(dicom.BadDicom) as e:
    _frame_check(data, max_pixels)
  return str(e.value)


# Real files from several encoders (dcmtk, GDCM, CharLS, OpenJPEG...): JPEG baseline, extended,
# lossless SV1, JPEG-LS lossless and near-lossless, JPEG 2000 (J2K and JP2 codestreams), RLE.
FRAMED = [
    'SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_dcmtk_+eb+cy+np.dcm', 'SC_jpeg_no_color_transform.dcm',
    'SC_rgb_small_odd_jpeg.dcm', 'JPGExtended.dcm', df.SAMPLE_CORRUPT_JPEG, 'SC_rgb_jpeg_gdcm.dcm',
    df.SAMPLE_MR_JPEG_LS, 'JPEGLSNearLossless_16.dcm', 'SC_rgb_jls_lossy_line.dcm',
    df.SAMPLE_MR_J2K, df.SAMPLE_CT_J2K_LOSSY, 'JPEG2000.dcm', 'GDCMJ2K_TextGBR.dcm',
    'SC_rgb_gdcm_KY.dcm', 'examples_jpeg2k.dcm', df.SAMPLE_MR_RLE, 'SC_rgb_rle_32bit.dcm',
    'rtdose_rle_1frame.dcm']


@pytest.mark.parametrize('name', FRAMED)
def test_real_frames_headers_agree_with_their_dicom_headers(name):
  """The frame readers on other encoders' files: each frame says what its DICOM header says,
  so the checks pass, at exactly Rows x Columns pixels too."""
  import pydicom
  data = df.read(df.sample(name))
  ds = pydicom.dcmread(io.BytesIO(data))
  syntax = str(ds.file_meta.TransferSyntaxUID)
  if syntax != '1.2.840.10008.1.2.5':
    assert dicom.frame_size(df.frame_of(data), syntax) == (ds.Columns, ds.Rows,
                                                           ds.SamplesPerPixel)
  _frame_check(data, max_pixels=ds.Rows * ds.Columns)


def test_bombs_are_refused_from_their_own_headers_before_any_decoding():
  """The issue's bomb (a ~1 KB DICOM whose JPEG frame says 40000x40000, Rows x Columns 64x64)
  and its kin in every codec: check_frames -- which reads headers and never decodes -- refuses
  them, naming both sizes and the option."""
  bombs = _bombs()
  for name, (data, kw, reason) in bombs.items():
    if name == 'deflated':
      with pytest.raises(dicom.BadDicom) as e:
        dicom.check_deflated(data, kw['max_pixels'])  # inflates in counted, dropped pieces
      got = str(e.value)
    else:
      got = _frame_reason(data)
    assert got.startswith(reason), (name, got)
  data = bombs['jpeg'][0]
  assert len(data) < 4096  # a few KB
  assert _frame_reason(data) == (
      'too large: the JPEG Baseline (Process 1) frame says 40000x40000 = 1600000000 pixels > '
      'max (option --max-pixels = 50000000); the DICOM header says 64x64; refused before '
      'decoding')
  assert _frame_reason(data, max_pixels=0) == (  # no limit: still not its header's size
      'corrupt DICOM pixel data (JPEG Baseline (Process 1)): the frame says 40000x40000 with 1 '
      'component(s), the DICOM header 64x64 (Columns x Rows) with 1 sample(s) per pixel; '
      'refused before decoding')
  # the deflated file is fine when the limit allows what it inflates to
  dicom.check_deflated(bombs['deflated'][0], 8 << 20)


def test_frames_that_disagree_with_the_header_are_refused_whatever_their_size():
  small = _jpeg64()
  assert dicom.render(_jpeg_dicom(small)).width == 64  # the frame itself is fine
  reason = _frame_reason(_jpeg_dicom(df.claim_size(small, 128, 64)))
  assert 'the frame says 128x64 with 1 component(s), the DICOM header 64x64' in reason
  assert 'frame says 64x0' in _frame_reason(_jpeg_dicom(df.claim_size(small, 64, 0)))  # DNL
  sof = small.index(b'\xff\xc0')
  # libjpeg skips bytes between segments: so does the reader, and finds the bomb's SOF
  junk = df.claim_size(small, BOMB, BOMB)
  assert _frame_reason(_jpeg_dicom(junk[:sof] + b'junk\xff\x00' + junk[sof:])).startswith(
      'too large: the JPEG Baseline (Process 1) frame says 40000x40000')
  segment = small[sof:sof + 2 + struct.unpack_from('>H', small, sof + 2)[0]]
  two = small[:sof] + segment + segment + small[sof + len(segment):]
  assert 'two JPEG frame headers (SOF) before the first scan' in _frame_reason(_jpeg_dicom(two))
  dhp = small[:sof] + b'\xff\xde' + segment[2:] + small[sof:]
  assert 'hierarchical JPEG (DHP marker)' in _frame_reason(_jpeg_dicom(dhp))
  assert 'no SOS marker' in _frame_reason(_jpeg_dicom(small[:sof + len(segment)]))
  assert 'does not start with a JPEG SOI' in _frame_reason(_jpeg_dicom(small[2:]))
  three = df.claim_size(small, 64, 64).replace(b'\xff\xc0\x00\x0b\x08\x00\x40\x00\x40\x01',
                                               b'\xff\xc0\x00\x0b\x08\x00\x40\x00\x40\x03')
  assert 'with 3 component(s), the DICOM header 64x64 (Columns x Rows) with 1' in _frame_reason(
      _jpeg_dicom(three))
  # JPEG 2000: the image is Xsiz - XOsiz by Ysiz - YOsiz; a JP2 file without a codestream
  j2k = df.read(df.sample(df.SAMPLE_MR_J2K))
  assert 'frame says 65x64' in _frame_reason(
      df.with_frame(j2k, df.claim_size(df.frame_of(j2k), 65, 64)))
  assert 'no codestream box (jp2c)' in _frame_reason(df.with_frame(j2k, _jp2(b'')[:-8]))
  assert 'not a JPEG 2000 codestream' in _frame_reason(df.with_frame(j2k, b'\xff\x4f\xff\x90'))
  # RLE: the header's segment count; two frames where NumberOfFrames says one (pydicom would
  # decode the excess one too); a syntax with a decoder but no frame check is refused
  rle = df.read(df.sample(df.SAMPLE_MR_RLE))
  three_segments = bytearray(df.frame_of(rle))
  three_segments[0] = 3
  assert _frame_reason(df.with_frame(rle, bytes(three_segments))) == (
      'corrupt DICOM pixel data (RLE Lossless): the RLE header lists 3 segments, 1 sample(s) of '
      '16 bits need 2; refused before decoding')
  assert _frame_reason(df.with_frame(rle, [df.frame_of(rle)] * 2)).startswith(
      'multi-frame DICOM: the encapsulated pixel data holds more than one frame')
  import pydicom
  ds = pydicom.dcmread(io.BytesIO(rle))
  with pytest.raises(dicom.BadDicom, match='its frame size cannot be checked before decoding'):
    dicom.check_frames(ds, '1.2.840.10008.1.2.4.100', 'MPEG2', 0)


_MEASURE = """
import json, resource, sys, time
from components.image_example_gen import dicom
from tests.support import dicom_files as df
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression fails, not thrashes
dicom.render(df.read(df.sample(df.SAMPLE_MR_J2K)))  # imports and decoders loaded
dicom.render(df.read(df.sample(df.SAMPLE_MR_JPEG_LS)))
out = {}
for name, path, max_pixels in json.loads(sys.argv[1]):
  data = df.read(path)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  start = time.perf_counter()
  try:
    dicom.render(data, max_pixels=max_pixels)
    reason = 'rendered'
  except (dicom.BadDicom, MemoryError) as e:
    reason = str(e)
  seconds = time.perf_counter() - start
  grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
  out[name] = [reason, seconds, grew * 1024, len(data)]
print(json.dumps(out))
"""


def test_render_refuses_every_bomb_in_milliseconds_with_no_memory_growth(tmp_path):
  """render itself, in a fresh process (peak RSS measured, address space capped at 6 GiB):
  before the checks the JPEG, JPEG-LS and JPEG 2000 ones took 30-90 s and 6-9 GB each before
  failing, and larger RLE (16 MB) and deflated (0.5 MB) ones 1.1 GB and were accepted; now each
  is refused in well under a second, the peak RSS unchanged."""
  bombs = _bombs()
  args = [(name, df.write(tmp_path / f'{name}.dcm', data), kw.get('max_pixels', 50_000_000))
          for name, (data, kw, _) in bombs.items()]
  done = subprocess.run([sys.executable, '-c', _MEASURE, json.dumps(args)], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  measured = json.loads(done.stdout.strip().splitlines()[-1])
  for name, (_, _, reason) in bombs.items():
    got, seconds, grew, size = measured[name]
    assert got.startswith(reason), (name, got)
    assert seconds < 1.0 and grew < (32 << 20), (name, seconds, grew, size)


# --- real Beam ingestions -----------------------------------------------------------------------

def _ingest(csv_path, out, mapping=None, splits=(('train', 1),), **kw):
  import apache_beam as beam

  from components.image_example_gen import ingest
  return ingest.run_ingest(csv_path, config_lib.IngestConfig(
      mapping or {'A': 0, 'B': 1}, splits, **kw), str(out), beam.Pipeline)


def _write_csv(root, rows):
  with open(root / 'index.csv', 'w', newline='') as f:
    csv.writer(f).writerows([HEADER] + [list(r) for r in rows])
  return str(root / 'index.csv')


def _png(path, seed, shape=(24, 20), dtype=np.uint8):
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(rng.integers(0, 200, shape).astype(dtype)).save(path)


def _records(out):
  from tests.support.testutil import read_examples
  return {ex.features.feature['image_id'].bytes_list.value[0].decode(): ex
          for _, ex in read_examples(os.path.join(str(out), 'Split-*', '*'))}


BAD = {  # file name -> (how it is made, the start of its reason)
    'truncated-real.dcm': (lambda: df.read(df.sample(df.SAMPLE_TRUNCATED)),
                           'bad image: truncated DICOM: the pixel data has 8130 bytes'),
    'truncated-cut.dcm': (lambda: df.radiograph(seed=9)[:-300],
                          'bad image: truncated DICOM: the pixel data has'),
    'report.dcm': (lambda: df.read(df.sample(df.SAMPLE_NO_PIXELS)),
                   'bad image: DICOM without pixel data: no PixelData element'),
    'mpeg2.dcm': (lambda: df.radiograph(compress='mpeg2'),
                  'bad image: unsupported DICOM transfer syntax MPEG2 Main Profile / Main Level '
                  '(1.2.840.10008.1.2.4.100)'),
    'two-frames.dcm': (lambda: df.radiograph(frames=2),
                       'bad image: multi-frame DICOM: NumberOfFrames is 2'),
    'rtdose.dcm': (lambda: df.read(df.sample(df.SAMPLE_MULTI_FRAME)),
                   'bad image: multi-frame DICOM: NumberOfFrames is 15'),
    'burned.dcm': (lambda: df.radiograph(seed=4, burned_in='YES'),
                   'bad image: burned-in annotation: BurnedInAnnotation (0028,0301) is YES'),
    'palette.dcm': (lambda: df.read(df.sample(df.SAMPLE_PALETTE)),
                    'bad image: unsupported DICOM image: PhotometricInterpretation PALETTE COLOR'),
    'corrupt-jpeg.dcm': (lambda: df.read(df.sample(df.SAMPLE_CORRUPT_JPEG)),
                         'bad image: corrupt DICOM pixel data (JPEG Extended'),
    'bomb.dcm': (lambda: _jpeg_dicom(df.claim_size(_jpeg64(), BOMB, BOMB)),
                 'bad image: too large: the JPEG Baseline (Process 1) frame says 40000x40000 = '
                 '1600000000 pixels > max (option --max-pixels = 50000000); the DICOM header '
                 'says 64x64; refused before decoding'),
}


@pytest.fixture(scope='module')
def bad_dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp('bad_dicom')
  rows = []
  for i in range(2):
    df.write(root / f'good{i}.dcm', df.radiograph(seed=i))
    _png(str(root / f'good{i}.png'), i)
    rows += [(f'good{i}.dcm', '', 'AB'[i]), (f'good{i}.png', '', 'AB'[i])]
  for k, (name, (make, _)) in enumerate(sorted(BAD.items())):
    df.write(root / name, make())
    rows.append((name, '', 'AB'[k % 2]))
  return root, _write_csv(root, rows), {name: line for line, (name, _, _) in
                                        enumerate(rows, start=2)}


def test_bad_dicom_files_are_bad_records_under_fail_and_quarantine(bad_dataset, tmp_path):
  from components.image_example_gen import index
  root, csv_path, line_of = bad_dataset
  summary = _ingest(csv_path, tmp_path / 'q', on_bad_record='quarantine')
  assert (summary.examples_written, summary.rows_quarantined) == (4, len(BAD))
  with open(tmp_path / 'q' / 'quarantine.json') as f:
    records = {r['path']: r for r in json.load(f)}
  assert sorted(records) == sorted(BAD)
  for name, (_, reason) in BAD.items():
    assert records[name]['line'] == line_of[name]
    assert records[name]['reason'].startswith(reason), (name, records[name]['reason'])
  with pytest.raises(index.IndexValidationError) as e:
    _ingest(csv_path, tmp_path / 'f')
  message = str(e.value)
  assert f'{len(BAD)} of {len(BAD) + 4} rows are bad and nothing was written' in message
  for name, (_, reason) in BAD.items():
    assert f'line {line_of[name]}: {reason}' in message, name
  assert not os.path.exists(tmp_path / 'f') or not os.listdir(tmp_path / 'f')

  allowed = _ingest(csv_path, tmp_path / 'allowed', on_bad_record='quarantine',
                    allow_burned_in=True)
  assert (allowed.examples_written, allowed.rows_quarantined) == (5, len(BAD) - 1)
  assert allowed.dicom['burned_in_written'] == {'image': 1}


# The PHI guard, rendering through the job, duplicates and a DICOM mask: one mixed ingestion.
SECRETS = [b'Doe^Jane', b'Roe^Richard', b'PAT-0001', b'PAT-0002', b'St Example Hospital',
           b'19700101', b'ACC000', b'20240102']


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
  """A CSV mixing PNG and DICOM rows: synthetic DX/CR (one MONOCHROME1, one RLE), real CR and
  CT samples, a DICOM image with a real DICOM SEG mask, and one DICOM file twice."""
  root = tmp_path_factory.mktemp('mixed')
  out = tmp_path_factory.mktemp('mixed_out')
  files = {
      'dx1.dcm': df.radiograph(seed=1, window=(2048, 4096)),
      'dx2.dcm': df.radiograph(seed=2, patient_id='PAT-0002', patient_name='Roe^Richard',
                               modality='CR', photometric='MONOCHROME1', compress='rle',
                               pixel_spacing=None, imager_pixel_spacing=(0.2, 0.2)),
      'cr-real': df.read(df.sample(df.SAMPLE_CR_MONOCHROME1)),
      'ct-real.dcm': df.read(df.sample(df.SAMPLE_CT_16BIT)),
      'seg/image.dcm': df.read(df.sample(df.SAMPLE_8BIT_DEFLATED)),
      'seg/mask.dcm': df.read(df.sample(df.SAMPLE_SEG_MASK)),
      'copy/dx1.dcm': df.radiograph(seed=1, window=(2048, 4096)),
  }
  for name, data in files.items():
    df.write(root / name, data)
  rows = [('dx1.dcm', '', 'A'), ('dx2.dcm', '', 'B'), ('cr-real', '', 'A'),
          ('ct-real.dcm', '', 'B'), ('seg/image.dcm', 'seg/mask.dcm', 'A'),
          ('copy/dx1.dcm', '', 'B')]
  for i in range(4):
    _png(str(root / f'png/{i}.png'), i)
    rows.append((f'png/{i}.png', '', 'AB'[i % 2]))
  summary = _ingest(_write_csv(root, rows), out, splits=(('train', 2), ('test', 1)),
                    mask_check='fail')
  return root, out, summary, files


def test_records_hold_the_rendered_png_and_the_dicom_facts(mixed):
  import pydicom
  root, out, summary, files = mixed
  records = _records(out)
  assert summary.examples_written == len(records) == 10
  for image_id, ex in records.items():
    f = ex.features.feature
    image = f['image'].bytes_list.value[0]
    assert f['image_sha256'].bytes_list.value[0].decode() == hashlib.sha256(image).hexdigest()
    if image_id.startswith('png/'):
      assert not set(f) & {'dicom_transfer_syntax', 'dicom_photometric', 'dicom_bits_stored',
                           'dicom_pixel_spacing', 'group_hash'}
      assert image == df.read(root / image_id)  # PNG rows: the file's own bytes, as before
      continue
    data = files[image_id]
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    np.testing.assert_array_equal(decoded(image), reference(data))  # parity, through the job
    assert f['dicom_transfer_syntax'].bytes_list.value == [
        header.file_meta.TransferSyntaxUID.encode()]
    assert f['dicom_photometric'].bytes_list.value == [
        header.PhotometricInterpretation.encode()]
    assert f['dicom_bits_stored'].int64_list.value == [header.BitsStored]
    spacing = header.get('PixelSpacing') or header.get('ImagerPixelSpacing')
    assert f['dicom_pixel_spacing'].float_list.value == pytest.approx(
        [float(s) for s in spacing] if spacing else [])
  mask = decoded(records['seg/image.dcm'].features.feature['mask'].bytes_list.value[0])
  assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}  # stored values, unchanged
  assert summary.mask_checks['train'].get('A', {}).get('masks', 0) + summary.mask_checks.get(
      'test', {}).get('A', {}).get('masks', 0) == 1


def test_identical_dicom_files_are_duplicates(mixed):
  _, _, summary, _ = mixed
  assert [sorted(m['image_id'] for m in d['members']) for d in summary.duplicate_images] == [
      ['copy/dx1.dcm', 'dx1.dcm']]


def test_phi_guard_no_header_value_reaches_a_shard_and_tags_are_counted(mixed):
  _, out, summary, _ = mixed
  shard_bytes = b''
  for split in ('train', 'test'):
    for name in os.listdir(out / f'Split-{split}'):
      with gzip.open(out / f'Split-{split}' / name) as f:
        shard_bytes += f.read()
  for secret in SECRETS + [b'Archibald', b'CT1', b'1.2.840.10008.5.1.4.1.1.1']:  # SOP class
    assert secret not in shard_bytes, secret
  with open(out / 'ingest_summary.json', 'rb') as f:
    summary_text = f.read()
  for secret in SECRETS + [b'Archibald']:
    assert secret not in summary_text, secret
  counts = summary.dicom
  assert counts['files'] == {'image': 6, 'mask': 1}
  assert counts['identifying_tags']['PatientName'] == 7  # every file carries one
  assert counts['identifying_tags']['InstitutionName'] >= 3
  assert counts['photometric'] == {'MONOCHROME1': 2, 'MONOCHROME2': 4}
  assert counts['transfer_syntax']['RLE Lossless'] == 1
  assert counts['bits_stored'] == {'12': 4, '16': 1, '8': 1}
  assert counts['rendering'] == {'window': 3, 'min_max': 3}  # dx2, CT, 8-bit: no window
  assert (summary.dicom_window, summary.dicom_output) == ('auto', 'png16')


# --- patients grouped by a DICOM attribute -------------------------------------------------------

def test_group_by_dicom_patient_id_keeps_patients_together_and_writes_only_a_hash(tmp_path):
  patients = {f'PAT-{p:04d}': 'AB'[p % 2] for p in range(6)}
  rows = []
  for p, (patient, label) in enumerate(sorted(patients.items())):
    for k in range(3):
      name = f'{patient}/{k}.dcm'
      df.write(tmp_path / name, df.radiograph(seed=10 * p + k, patient_id=patient))
      rows.append((name, '', label))
  df.write(tmp_path / 'anonymous.dcm', df.radiograph(seed=99, patient_id=None))
  _png(str(tmp_path / 'plain.png'), 1)
  rows += [('anonymous.dcm', '', 'A'), ('plain.png', '', 'B')]
  out = tmp_path / 'out'
  summary = _ingest(_write_csv(tmp_path, rows), out, splits=(('train', 2), ('test', 1)),
                    group_column='dicom:PatientID', on_bad_record='quarantine',
                    group_salt='site-secret')
  assert (summary.examples_written, summary.rows_quarantined) == (18, 2)
  with open(out / 'quarantine.json') as f:
    reasons = {r['path']: r['reason'] for r in json.load(f)}
  assert reasons == {
      'anonymous.dcm': 'bad image: no group: the DICOM attribute PatientID is missing or empty '
                       '(option --group-column dicom:PatientID)',
      'plain.png': 'no group: the group column dicom:PatientID is read from the DICOM header, '
                   'and this image is not a DICOM file'}
  from tests.support.testutil import read_examples
  shard_of = {}
  for shard, ex in read_examples(str(out / 'Split-*' / '*')):
    patient = ex.features.feature['image_id'].bytes_list.value[0].decode().split('/')[0]
    expected = hmac.new(b'site-secret', patient.encode(), hashlib.sha256).hexdigest()
    assert ex.features.feature['group_hash'].bytes_list.value == [expected.encode()]
    assert shard_of.setdefault(patient, shard) == shard  # one shard per patient
    assert patient.encode() not in ex.SerializeToString().replace(
        ex.features.feature['image_id'].bytes_list.value[0], b'')  # only in the path-based id
  assert len(shard_of) == 6 and len(set(shard_of.values())) == 3
  assert dicom.hash_group('PAT-0001') != dicom.hash_group('PAT-0001', 'site-secret')
  assert summary.group_column == 'dicom:PatientID'
