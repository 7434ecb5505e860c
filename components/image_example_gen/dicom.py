"""DICOM radiographs: detection by content, rendering to a grayscale PNG, and the PHI guard.

Pure (pydicom, NumPy, zlib; no TensorFlow). ImageExampleGen's Beam workers call ``render`` on
the bytes they have just read (``files.read_image``), so a DICOM file is opened once, like a PNG,
and what is checked, hashed and written is the PNG rendered from those bytes.

**Detection.** A file is DICOM when its bytes 128-131 are ``DICM`` (the DICOM Part 10 preamble),
whatever its name: ``.dcm``, no suffix (PACS exports) or anything else. A file named ``.dcm`` or
``.dicom`` without the marker is refused (files without the preamble and file meta are not read).
The test is a 4-byte compare on bytes already in memory: it costs a PNG row nothing measurable.

**Rendering an image** (``render``), in the order of DICOM's grayscale pipeline (PS3.4 N.2.1):

1. the stored values, decoded by pydicom (native, deflated and RLE syntaxes natively; JPEG,
   JPEG-LS and JPEG 2000 through pylibjpeg's libjpeg and openjpeg plugins);
2. the Modality LUT or rescale (``pydicom.pixels.apply_modality_lut``);
3. the VOI transform, by ``window``:

   * ``auto`` (default): what the file says -- its VOI LUT Sequence if it has a valid one, else
     its first Window Center/Width with its VOI LUT Function (``apply_voi_lut(index=0,
     prefer_lut=True)``); a file with neither is stretched from its own minimum to its maximum;
   * ``none``: no VOI transform: the whole nominal range of the modality output (the stored
     range from Bits Stored and Pixel Representation, through the rescale; 0..2^n-1 for a
     Modality LUT of n bits) is kept;
   * ``C,W`` (e.g. ``-600,1500``): that window, LINEAR (PS3.3 C.11.2.1.2), replacing the file's;

4. scaling to the output's range, with [lo, hi] the VOI output's range -- 0..2^n-1 for an n-bit
   VOI LUT, the nominal range above for a window or ``none``, the pixel minimum and maximum for
   the stretch -- as ``round_half_even((v - lo) * M / (hi - lo))`` in float64, clipped to 0..M,
   with M = 65535 (``png16``, the default) or 255 (``png8``); a constant image gives 0;
5. MONOCHROME1 (low values are bright) inverted: ``M - value``, so every output is MONOCHROME2,
   what TensorFlow's decoder and a model expect.

The PNG holds IHDR, one IDAT and IEND only (written here: zlib level 1 over Up-filtered rows;
no text chunk, no metadata), so it is the same bytes for the same pixels in any run on a given
zlib, and Transform's ``decode_image`` reads it as any 16- or 8-bit grayscale PNG.

**Masks** (``render(..., mask=True)``): the stored values are written unchanged (no rescale, no
window, no inversion: a mask holds labels, not intensities) as an 8-bit PNG, or 16-bit when a
value exceeds 255; the mask check then applies as to any mask.

**What makes a DICOM file a bad record** (the reason names it): no readable header; no transfer
syntax; ``BurnedInAnnotation`` (0028,0301) = YES unless ``allow_burned_in``; no Pixel Data;
more than one frame; not one sample per pixel MONOCHROME1/MONOCHROME2; more pixels than
``max_pixels`` (checked from Rows x Columns before decoding); a transfer syntax no installed
decoder handles; a compressed frame whose own header disagrees with the DICOM header (below);
pixel data that is truncated or does not decode; a window that cannot apply.
No identifying header value appears in a reason (technical ones do: the photometric
interpretation, the number of frames, the transfer syntax).

**Decompression bombs** (issue #29, defect 6). A decoder allocates what the compressed data
says, not what Rows x Columns says: a 1 KB file whose JPEG frame header says 40000x40000 made
the decoders take 6-9 GB for 30-90 s before failing. So nothing is decompressed before the
compressed data's own sizes are read and bounded (``check_frames``, ``check_deflated``), by
parsing headers only, for every codec pydicom's decoders (pylibjpeg, Pillow, its own RLE and
zlib) use:

* every encapsulated frame, split exactly as pydicom's decoder will split them, is read: more
  than one frame is refused (pydicom would decode the excess ones too). A JPEG frame (baseline,
  extended, lossless, JPEG-LS) is walked from SOI to its first scan as libjpeg walks it
  (bytes between segments skipped): its one SOF (SOF55 for JPEG-LS) gives height, width and
  components; a second SOF, a hierarchical DHP or a JPEG-LS oversize-dimension LSE is refused.
  A JPEG 2000 / HTJ2K frame (a J2K codestream, or a JP2 file whose ``jp2c`` box holds one) gives
  them in its SIZ marker, which must follow SOC. The frame must be Columns x Rows with
  SamplesPerPixel components (and within ``max_pixels``), else it is refused naming both sizes;
* RLE: its 64-byte header must list SamplesPerPixel x BitsAllocated / 8 segments, and each
  segment's runs are counted (not expanded): pydicom's RLE decoder expands a segment whole
  before comparing its length with Rows x Columns, at up to 64 bytes out per byte in (a 16 MB
  file expanded to 1 GB and was accepted), so a segment making more than twice its plane
  (``2 x Rows x Columns`` bytes; padding needs a byte or a row) is refused;
* Deflated Explicit VR Little Endian: pydicom inflates the whole data set in ``dcmread``, at up
  to 1032:1 (a 0.5 MB file inflated to 512 MiB, 1.1 GB at peak, and was accepted). It is
  inflated here first in 64 KiB pieces, counted and dropped, and refused when it exceeds
  ``4 x max_pixels`` bytes (4-byte pixels) plus ``DEFLATED_HEADER_ALLOWANCE`` for the rest of
  the data set;
* a transfer syntax with a decoder but none of these checks is refused (none today).

Native (uncompressed) pixel data needs no check: what is read is the file, whose size
``--max-file-bytes`` bounds, and a PNG or JPEG file is bounded by ``image_header`` likewise.

**PHI guard.** Nothing from the header is written but four technical facts (transfer syntax UID,
photometric interpretation, bits stored, pixel spacing: ``DicomInfo``) and, when patients are
grouped by a header keyword, a salted hash of its value (``group_hash``). ``DicomInfo`` also
names the identifying attributes that were present (``IDENTIFYING_KEYWORDS``), for counts in the
ingest summary -- never their values. This is not de-identification: pixels can show identity
(burned-in text the flag does not declare, faces, jewellery), file paths are written as
``image_id``, and the source files keep every tag. Use a de-identification tool (deid,
dicognito, or your PACS's profile) before data leaves its site.
"""
import collections.abc
import dataclasses
import hashlib
import hmac
import io
import struct
from typing import Tuple, Union
import zlib

import numpy as np

from components.image_example_gen import config as config_lib

DICM_OFFSET = 128
DICM_MAGIC = b'DICM'
DICOM_SUFFIXES = ('.dcm', '.dicom', '.dic')

WINDOW_AUTO = config_lib.DICOM_WINDOW_AUTO
WINDOW_NONE = config_lib.DICOM_WINDOW_NONE
OUTPUT_PNG16 = config_lib.DICOM_OUTPUT_PNG16
OUTPUT_PNG8 = config_lib.DICOM_OUTPUT_PNG8
_OUTPUT_MAX = {OUTPUT_PNG16: 65535, OUTPUT_PNG8: 255}
MONOCHROME1 = 'MONOCHROME1'
MONOCHROME2 = 'MONOCHROME2'
GROUP_PREFIX = config_lib.DICOM_GROUP_PREFIX
DEFAULT_GROUP_SALT = config_lib.DEFAULT_GROUP_SALT

# How the VOI step went (DicomInfo.rendering; counted in the ingest summary).
RENDERED_VOI_LUT = 'voi_lut'  # the file's VOI LUT Sequence
RENDERED_WINDOW = 'window'  # the file's Window Center/Width
RENDERED_MIN_MAX = 'min_max'  # auto, and the file has neither: stretched min..max
RENDERED_NOMINAL = 'nominal'  # window 'none'
RENDERED_WINDOW_OPTION = 'window_option'  # window 'C,W'
RENDERED_MASK = 'mask'  # a mask: stored values unchanged

# Attributes that identify a patient, a visit or a place (a subset of DICOM PS3.15 Annex E's
# Basic Application Level Confidentiality Profile): their presence is counted, never their value.
IDENTIFYING_KEYWORDS = (
    'PatientName', 'PatientID', 'IssuerOfPatientID', 'OtherPatientIDs',
    'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName',
    'PatientBirthDate', 'PatientBirthTime', 'PatientSex', 'PatientAge', 'PatientAddress',
    'PatientTelephoneNumbers', 'MedicalRecordLocator', 'EthnicGroup', 'PatientComments',
    'AccessionNumber', 'StudyID', 'StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate',
    'StudyTime', 'AcquisitionDateTime', 'InstitutionName', 'InstitutionAddress',
    'InstitutionalDepartmentName', 'ReferringPhysicianName', 'PerformingPhysicianName',
    'OperatorsName', 'PhysiciansOfRecord', 'RequestingPhysician', 'StationName',
    'DeviceSerialNumber', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID')
PRIVATE_TAGS = 'private tags'  # counted with the identifying keywords: vendors put PHI there too

# Transfer syntaxes by how their frames' sizes are read before decoding (check_frames).
_JPEG_SYNTAXES = frozenset([
    '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51',  # baseline, extended
    '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70',  # lossless, lossless SV1
    '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'])  # JPEG-LS lossless, near-lossless
_J2K_SYNTAXES = frozenset([
    '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91',  # JPEG 2000 lossless, lossy
    '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202',  # HTJ2K lossless, lossless RPCL
    '1.2.840.10008.1.2.4.203'])  # HTJ2K
_RLE_SYNTAX = '1.2.840.10008.1.2.5'
_DEFLATED_SYNTAX = '1.2.840.10008.1.2.1.99'
# JPEG markers: SOF0-3, 5-7, 9-11, 13-15 (0xC4 DHT, 0xC8 JPG, 0xCC DAC are not frames) and
# JPEG-LS's SOF55; DHP (hierarchical), SOS, EOI, LSE; markers without a length field.
_JPEG_SOF = frozenset([*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                       *range(0xCD, 0xD0), 0xF7])
_JPEG_DHP, _JPEG_SOS, _JPEG_EOI, _JPEG_LSE = 0xDE, 0xDA, 0xD9, 0xF8
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RST0-7, SOI
_JP2_SIGNATURE = b'\x00\x00\x00\x0cjP  \r\n\x87\n'
_J2K_SOC_SIZ = b'\xff\x4f\xff\x51'
# A deflated data set may inflate to 4 bytes per allowed pixel plus this, for everything else
# in it (header, overlays, icon, private tags: kilobytes in practice).
DEFLATED_HEADER_ALLOWANCE = 16 << 20
_INFLATE_PIECE = 1 << 16

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# zlib level 1: on a 2048x2500 12-bit test image level 6 took 1.5x the time for 1% fewer bytes.
_PNG_ZLIB_LEVEL = 1
_PNG_FILTER_UP = 2


class BadDicom(ValueError):
  """The bytes are not a usable single-frame grayscale DICOM image; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class DicomInfo:
  """What a rendered DICOM file tells, without a header value that could identify anyone."""
  transfer_syntax: str  # the original Transfer Syntax UID, e.g. '1.2.840.10008.1.2.4.90'
  transfer_syntax_name: str  # e.g. 'JPEG 2000 Image Compression (Lossless Only)'
  photometric: str  # 'MONOCHROME1' | 'MONOCHROME2' (the PNG is always MONOCHROME2)
  bits_stored: int
  pixel_spacing: Tuple[float, ...]  # (row, column) mm: PixelSpacing, else ImagerPixelSpacing
  rendering: str  # RENDERED_*: which VOI step made the output
  identifying: Tuple[str, ...]  # IDENTIFYING_KEYWORDS present (and PRIVATE_TAGS), names only
  burned_in: bool  # BurnedInAnnotation is YES (written only under allow_burned_in)
  group_hash: str = ''  # salted hash of the group keyword's value ('' when none was asked)


@dataclasses.dataclass(frozen=True)
class Rendered:
  png: bytes
  width: int
  height: int
  bit_depth: int  # 16 or 8
  info: DicomInfo


def is_dicom(data: bytes) -> bool:
  """The DICOM Part 10 marker at byte 128 (a slice compare: free on bytes already read)."""
  return data[DICM_OFFSET:DICM_OFFSET + 4] == DICM_MAGIC


def has_dicom_suffix(path: str) -> bool:
  return path.lower().endswith(DICOM_SUFFIXES)


def hash_group(value: str, salt: str = '') -> str:
  """HMAC-SHA256(salt, value) in hex: the group value written and compared, never the raw ID."""
  return hmac.new((salt or DEFAULT_GROUP_SALT).encode('utf-8'), value.encode('utf-8'),
                  hashlib.sha256).hexdigest()


_configured = False


def _pydicom():
  """pydicom, with value validation off in this (worker) process: its warnings quote header
  values, which must not reach logs; parsing is as lenient as with warnings."""
  global _configured  # pylint: disable=global-statement
  import pydicom
  if not _configured:
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    _configured = True
  return pydicom


def _text(ds, keyword: str) -> str:
  value = ds.get(keyword)
  return '' if value is None else str(value).strip()


def _present(ds, keyword: str) -> bool:
  """The attribute is there with a non-empty value (a sequence with items)."""
  try:
    value = ds.get(keyword)
  except Exception:  # pylint: disable=broad-except  (a malformed value is still there)
    return True
  if value is None:
    return False
  if isinstance(value, collections.abc.Sequence) and not isinstance(value, (str, bytes)):
    return len(value) > 0  # a Sequence (items) or MultiValue (values)
  return bool(str(value).strip())


def _spacing(ds) -> Tuple[float, ...]:
  for keyword in ('PixelSpacing', 'ImagerPixelSpacing'):
    try:
      value = ds.get(keyword)
      if value is not None and len(value) == 2:
        spacing = tuple(float(v) for v in value)
        if all(np.isfinite(s) and s > 0 for s in spacing):
          return spacing
    except (TypeError, ValueError):
      continue
  return ()


def nominal_range(ds) -> Tuple[float, float]:
  """The modality output's nominal range (y_min, y_max), as pydicom's ``apply_windowing``
  computes its output range: 0..2^n-1 for an n-bit Modality LUT, else the stored range (Bits
  Stored, Pixel Representation) through Rescale Slope/Intercept."""
  if ds.get('ModalityLUTSequence'):
    return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
  bits = int(ds.BitsStored)
  if int(ds.get('PixelRepresentation', 0)) == 0:
    y_min, y_max = 0.0, float(2 ** bits - 1)
  else:
    y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
  if ds.get('RescaleSlope') is not None and ds.get('RescaleIntercept') is not None:
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
  return y_min, y_max


def voi_kind(ds) -> str:
  """Which VOI ``apply_voi_lut(prefer_lut=True)`` applies: RENDERED_VOI_LUT, RENDERED_WINDOW,
  or RENDERED_MIN_MAX (neither: it returns its input unchanged)."""
  seq = ds.get('VOILUTSequence')
  if seq and seq[0].get('LUTDescriptor') is not None and seq[0].get('LUTData') is not None:
    return RENDERED_VOI_LUT
  if ds.get('WindowCenter') is not None and ds.get('WindowWidth') is not None:
    return RENDERED_WINDOW
  return RENDERED_MIN_MAX


def scale(values: np.ndarray, lo: float, hi: float, top: int) -> np.ndarray:
  """round_half_even((v - lo) * top / (hi - lo)) clipped to 0..top, in float64; 0 if hi == lo."""
  if hi == lo:
    return np.zeros(values.shape, np.float64)
  out = (values.astype(np.float64) - lo) * top / (hi - lo)
  return np.clip(np.rint(out), 0, top)


def encode_png(pixels: np.ndarray, bit_depth: int) -> bytes:
  """A 2-D uint array -> grayscale PNG (IHDR, one IDAT, IEND): rows Up-filtered, zlib level 1."""
  height, width = pixels.shape
  raw = pixels.astype('>u2' if bit_depth == 16 else np.uint8).view(np.uint8).reshape(height, -1)
  rows = np.empty((height, raw.shape[1] + 1), np.uint8)
  rows[:, 0] = _PNG_FILTER_UP
  rows[0, 1:] = raw[0]
  np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])  # uint8 arithmetic: mod 256, as PNG wants

  def chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack('>I', len(body)) + kind + body
            + struct.pack('>I', zlib.crc32(body, zlib.crc32(kind))))

  ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, 0, 0, 0, 0)
  return (_PNG_SIGNATURE + chunk(b'IHDR', ihdr)
          + chunk(b'IDAT', zlib.compress(rows.tobytes(), _PNG_ZLIB_LEVEL)) + chunk(b'IEND', b''))


def _reason(e: BaseException) -> str:
  text = ' '.join(str(e).split()) or type(e).__name__
  return text if len(text) <= 300 else text[:297] + '...'


def check_deflated(data: bytes, max_pixels: int) -> None:
  """Refuses (BadDicom) a Deflated Explicit VR Little Endian file whose data set inflates to
  more than ``4 * max_pixels + DEFLATED_HEADER_ALLOWANCE`` bytes, by inflating it in pieces
  that are counted and dropped, before ``dcmread`` inflates it whole; other transfer syntaxes,
  and ``max_pixels`` 0 (no limit), pass. A file meta that does not parse passes too: dcmread
  reads it the same way and fails before inflating anything."""
  if max_pixels <= 0:
    return
  _pydicom()
  from pydicom import filereader
  fp = io.BytesIO(data)
  try:  # what dcmread does up to its zlib.decompress (pydicom.filereader.read_partial)
    filereader.read_preamble(fp, False)
    meta = filereader._read_file_meta_info(fp)  # pylint: disable=protected-access
    if meta.get('TransferSyntaxUID') != _DEFLATED_SYNTAX:
      return
    filereader._read_command_set_elements(fp)  # pylint: disable=protected-access
  except Exception:  # pylint: disable=broad-except  (dcmread raises it, with its reason)
    return
  limit = 4 * max_pixels + DEFLATED_HEADER_ALLOWANCE
  inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as pydicom
  view = memoryview(data)[fp.tell():]
  total = 0
  try:
    for start in range(0, len(view), _INFLATE_PIECE):
      piece: Union[bytes, memoryview] = view[start:start + _INFLATE_PIECE]
      while piece and not inflater.eof:
        total += len(inflater.decompress(piece, _INFLATE_PIECE))
        piece = inflater.unconsumed_tail
        if total > limit:
          raise BadDicom(
              f'too large: the deflated DICOM data set inflates to more than {limit} bytes '
              f'({len(view)} compressed), above 4 bytes per pixel of the max plus '
              f'{DEFLATED_HEADER_ALLOWANCE} (option --max-pixels = {max_pixels}); refused '
              'before inflating it')
      if inflater.eof:
        return
  except zlib.error:
    return  # pydicom's inflate stops at the same byte, with fewer bytes out than counted here


def frame_size(frame: bytes, syntax: str) -> Tuple[int, int, int]:
  """(width, height, components) of one encapsulated JPEG, JPEG-LS, JPEG 2000 or HTJ2K frame,
  from its own header, nothing decoded; ValueError (the reason) when it cannot be read."""
  if syntax in _JPEG_SYNTAXES:
    return _jpeg_frame_size(frame)
  if syntax in _J2K_SYNTAXES:
    return _j2k_frame_size(frame)
  raise ValueError(f'no frame header reader for transfer syntax {syntax}')


def _jpeg_frame_size(frame: bytes) -> Tuple[int, int, int]:
  """The SOF (or JPEG-LS SOF55) before the first scan, markers found as libjpeg's
  ``next_marker`` finds them: bytes before a 0xFF, fill 0xFF bytes and stuffed FF00 skipped."""
  if frame[:2] != b'\xff\xd8':
    raise ValueError('the frame does not start with a JPEG SOI marker')
  n, pos, size = len(frame), 2, None
  while True:
    marker = 0
    while marker == 0:
      pos = frame.find(b'\xff', pos)
      if pos < 0:
        raise ValueError('the JPEG frame ends before its first scan (no SOS marker)')
      while pos < n and frame[pos] == 0xFF:
        pos += 1
      if pos >= n:
        raise ValueError('the JPEG frame ends before its first scan (no SOS marker)')
      marker, pos = frame[pos], pos + 1
    if marker in _JPEG_STANDALONE:
      if marker == 0xD8:
        raise ValueError('a second JPEG SOI marker before the first scan')
      continue
    if marker == _JPEG_EOI:
      raise ValueError('the JPEG frame ends (EOI) before its first scan')
    length = int.from_bytes(frame[pos:pos + 2], 'big')
    if length < 2 or pos + length > n:
      raise ValueError(f'JPEG marker segment 0xFF{marker:02X} truncated')
    body = frame[pos + 2:pos + length]
    if marker in _JPEG_SOF:
      if size is not None:
        raise ValueError('two JPEG frame headers (SOF) before the first scan')
      if len(body) < 6:
        raise ValueError(f'JPEG frame header (SOF 0xFF{marker:02X}) truncated')
      _, height, width, components = struct.unpack_from('>BHHB', body)
      size = (width, height, components)
    elif marker == _JPEG_DHP:
      raise ValueError('a hierarchical JPEG (DHP marker), a process no DICOM JPEG transfer '
                       'syntax uses')
    elif marker == _JPEG_LSE and body[:1] == b'\x04':
      raise ValueError('a JPEG-LS oversize image dimension (LSE id 4): Rows and Columns '
                       'never need one')
    elif marker == _JPEG_SOS:
      if size is None:
        raise ValueError('a JPEG scan (SOS) before any frame header (SOF)')
      return size
    pos += length


def _j2k_frame_size(frame: bytes) -> Tuple[int, int, int]:
  """The SIZ marker segment, which follows SOC in a J2K codestream (the frame itself, or the
  ``jp2c`` box of a JP2 file): image size Xsiz - XOsiz by Ysiz - YOsiz, Csiz components."""
  start = _jp2_codestream(frame) if frame.startswith(_JP2_SIGNATURE) else 0
  if frame[start:start + 4] != _J2K_SOC_SIZ:
    raise ValueError('the frame is not a JPEG 2000 codestream (no SOC and SIZ markers at its '
                     'start)')
  if start + 4 + 38 > len(frame):
    raise ValueError('JPEG 2000 SIZ marker segment truncated')
  _, _, xsiz, ysiz, xosiz, yosiz = struct.unpack_from('>HHIIII', frame, start + 4)
  components = struct.unpack_from('>H', frame, start + 4 + 36)[0]
  if xosiz >= xsiz or yosiz >= ysiz:
    raise ValueError(f'the JPEG 2000 SIZ marker gives no image ({xsiz}x{ysiz} from offset '
                     f'{xosiz},{yosiz})')
  return xsiz - xosiz, ysiz - yosiz, components


def _jp2_codestream(frame: bytes) -> int:
  """Where the first ``jp2c`` (codestream) box's content starts in a JP2 file."""
  n, pos = len(frame), 0
  while pos + 8 <= n:
    length, kind = struct.unpack_from('>I4s', frame, pos)
    header = 8
    if length == 1 and pos + 16 <= n:  # the XLBox: a 64-bit length
      length, header = struct.unpack_from('>Q', frame, pos + 8)[0], 16
    elif length == 0:  # the box runs to the end
      length = n - pos
    if kind == b'jp2c':
      return pos + header
    if length < header:
      raise ValueError(f'JP2 box {kind!r} shorter than its header')
    pos += length
  raise ValueError('the JP2 file has no codestream box (jp2c)')


def rle_segment_length(frame: bytes, start: int, end: int, limit: int) -> int:
  """How many bytes pydicom's RLE decoder makes of ``frame[start:end]`` (PackBits: a header
  byte h < 128 copies the next h + 1 bytes, h > 128 repeats the next byte 257 - h times, 128
  is a no-op), counted without making them (a run cut by the segment's end counts whole);
  the count stops once it exceeds ``limit``."""
  total, pos, end = 0, start, min(end, len(frame))
  while pos < end:
    header = frame[pos]
    if header > 128:
      total += 257 - header
      pos += 2
    elif header < 128:
      total += header + 1
      pos += header + 2
    else:
      pos += 1
    if total > limit:
      break
  return total


def _check_rle(frame: bytes, ds, corrupt: str) -> None:
  rows, columns = int(ds.Rows), int(ds.Columns)
  samples, bits = int(ds.get('SamplesPerPixel') or 1), int(ds.get('BitsAllocated') or 0)
  if bits <= 0 or bits % 8:
    return  # pydicom refuses these before expanding anything
  if len(frame) < 64:
    raise BadDicom(f'{corrupt}: the RLE header is truncated ({len(frame)} of 64 bytes)')
  count = struct.unpack_from('<I', frame)[0]
  expected = samples * bits // 8
  if count != expected or count > 15:
    raise BadDicom(f'{corrupt}: the RLE header lists {count} segments, {samples} sample(s) '
                   f'of {bits} bits need {expected}; refused before decoding')
  bounds = list(struct.unpack_from(f'<{count}I', frame, 4)) + [len(frame)]
  plane = rows * columns
  for k in range(count):
    if (bounds[k + 1] - bounds[k]) * 64 <= 2 * plane:
      continue  # at most 128 bytes out per 2 bytes in: this one cannot exceed it
    if rle_segment_length(frame, bounds[k], bounds[k + 1], 2 * plane) > 2 * plane:
      raise BadDicom(f'{corrupt}: RLE segment {k + 1} expands to more than {2 * plane} bytes, '
                     f'twice the {plane} of its {columns}x{rows} plane; refused before '
                     'decoding')


def check_frames(ds, syntax: str, syntax_name: str, max_pixels: int = 0) -> None:
  """Refuses (BadDicom) encapsulated pixel data that pydicom would decode into more than
  ``ds`` says, reading headers only, nothing decoded (module docstring): more than one frame;
  a frame whose own header is not Columns x Rows with SamplesPerPixel components, or has more
  than ``max_pixels`` (0: no limit); an RLE frame with the wrong number of segments or one
  that expands past twice its plane; a syntax without a frame-size check."""
  _pydicom()
  from pydicom import encaps
  corrupt = f'corrupt DICOM pixel data ({syntax_name})'
  rows, columns = int(ds.Rows), int(ds.Columns)
  samples = int(ds.get('SamplesPerPixel') or 1)
  extended = None  # as pydicom.pixels.utils.as_pixel_options and DecodeRunner take them
  if 'ExtendedOffsetTable' in ds and 'ExtendedOffsetTableLengths' in ds:
    extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    if len(extended[0]) != len(extended[1]):
      extended = None
  try:
    frames = encaps.generate_frames(ds.PixelData, number_of_frames=1,
                                    extended_offsets=extended)
    frame = next(frames, None)
    excess = frame is not None and next(frames, None) is not None
  except Exception as e:  # pylint: disable=broad-except  (a corrupt encapsulation)
    raise BadDicom(f'{corrupt}: the encapsulated frames cannot be read: {_reason(e)}') from e
  if frame is None:
    raise BadDicom(f'{corrupt}: no frame in the encapsulated pixel data')
  if excess:  # pydicom decodes the excess frames too (allow_excess_frames)
    raise BadDicom('multi-frame DICOM: the encapsulated pixel data holds more than one frame '
                   '(NumberOfFrames is 1); a single-frame radiograph is expected')
  if syntax == _RLE_SYNTAX:
    _check_rle(frame, ds, corrupt)
    return
  if syntax not in _JPEG_SYNTAXES and syntax not in _J2K_SYNTAXES:
    raise BadDicom(f'unsupported DICOM transfer syntax {syntax_name} ({syntax}): its frame '
                   'size cannot be checked before decoding')
  try:
    width, height, components = frame_size(frame, syntax)
  except ValueError as e:
    raise BadDicom(f'{corrupt}: {e}; refused before decoding') from e
  if max_pixels > 0 and width * height > max_pixels:
    raise BadDicom(f'too large: the {syntax_name} frame says {width}x{height} = '
                   f'{width * height} pixels > max (option --max-pixels = {max_pixels}); the '
                   f'DICOM header says {columns}x{rows}; refused before decoding')
  if (width, height) != (columns, rows) or components != samples:
    raise BadDicom(f'{corrupt}: the frame says {width}x{height} with {components} '
                   f'component(s), the DICOM header {columns}x{rows} (Columns x Rows) with '
                   f'{samples} sample(s) per pixel; refused before decoding')


def render(data: bytes, *, window: str = WINDOW_AUTO, output: str = OUTPUT_PNG16,
           allow_burned_in: bool = False, max_pixels: int = 0, mask: bool = False,
           group_keyword: str = '', group_salt: str = '') -> Rendered:
  """A DICOM file's bytes -> its rendered PNG and facts (module docstring); else BadDicom."""
  pydicom = _pydicom()
  from pydicom import pixels
  from pydicom.pixels import utils as pixel_utils
  check_deflated(data, max_pixels)
  try:
    ds = pydicom.dcmread(io.BytesIO(data))
  except Exception as e:  # pylint: disable=broad-except  (pydicom raises many types)
    raise BadDicom(f'unreadable DICOM header: {type(e).__name__}: {_reason(e)}') from e
  syntax = ds.file_meta.get('TransferSyntaxUID') if hasattr(ds, 'file_meta') else None
  if not syntax:
    raise BadDicom('DICOM file without a Transfer Syntax UID in its file meta')
  syntax_name = pydicom.uid.UID(str(syntax)).name
  burned_in = _text(ds, 'BurnedInAnnotation').upper() == 'YES'
  if burned_in and not allow_burned_in:
    raise BadDicom('burned-in annotation: BurnedInAnnotation (0028,0301) is YES, the pixels '
                   'may show identifying text; option --allow-burned-in writes it anyway')
  if 'PixelData' not in ds:
    other = [k for k in ('FloatPixelData', 'DoubleFloatPixelData') if k in ds]
    raise BadDicom('DICOM without pixel data: no PixelData element'
                   + (f' ({other[0]} is not supported)' if other else
                      ' (not an image, or the file is truncated)'))
  try:
    frames = int(ds.get('NumberOfFrames') or 1)
  except (TypeError, ValueError):
    frames = 0
  if frames != 1:
    raise BadDicom(f'multi-frame DICOM: NumberOfFrames is {ds.get("NumberOfFrames")}; a '
                   'single-frame radiograph is expected')
  photometric = _text(ds, 'PhotometricInterpretation').upper()
  samples = int(ds.get('SamplesPerPixel') or 1)
  if samples != 1 or photometric not in (MONOCHROME1, MONOCHROME2):
    raise BadDicom(f'unsupported DICOM image: PhotometricInterpretation {photometric or "none"} '
                   f'with {samples} sample(s) per pixel; only grayscale (MONOCHROME1/'
                   'MONOCHROME2) radiographs are rendered')
  try:
    rows, columns, bits_stored = int(ds.Rows), int(ds.Columns), int(ds.BitsStored)
  except (AttributeError, TypeError, ValueError) as e:
    raise BadDicom(f'corrupt DICOM image header: Rows, Columns or BitsStored missing or '
                   f'invalid ({type(e).__name__})') from e
  if max_pixels > 0 and rows * columns > max_pixels:
    raise BadDicom(f'too large: {columns}x{rows} = {rows * columns} pixels > max (option '
                   f'--max-pixels = {max_pixels})')
  try:
    decoder = pixels.get_decoder(syntax)
  except NotImplementedError as e:
    raise BadDicom(f'unsupported DICOM transfer syntax {syntax_name} ({syntax}): no decoder '
                   'exists for it in pydicom') from e
  if not decoder.is_available:
    raise BadDicom(f'unsupported DICOM transfer syntax {syntax_name} ({syntax}): no decoder '
                   f'plugin installed ({"; ".join(decoder.missing_dependencies)})')
  if not syntax.is_encapsulated:
    expected = pixel_utils.get_expected_length(ds)
    if len(ds.PixelData) < expected:
      raise BadDicom(f'truncated DICOM: the pixel data has {len(ds.PixelData)} bytes, '
                     f'{columns}x{rows} pixels of {int(ds.BitsAllocated)} bits need {expected}')
  else:
    check_frames(ds, str(syntax), syntax_name, max_pixels)
  try:
    stored = ds.pixel_array
  except Exception as e:  # pylint: disable=broad-except  (decoders raise many types)
    raise BadDicom(f'corrupt DICOM pixel data ({syntax_name}): {_reason(e)}') from e
  if stored.shape != (rows, columns):
    raise BadDicom(f'corrupt DICOM pixel data: decoded shape {stored.shape}, header says '
                   f'{rows}x{columns}')

  if mask:
    if stored.min() < 0:
      raise BadDicom('DICOM mask with negative values; a mask holds labels 0..65535')
    depth = 8 if stored.max() <= 255 else 16
    out, how = stored, RENDERED_MASK
  else:
    top = _OUTPUT_MAX[output]
    depth = 16 if output == OUTPUT_PNG16 else 8
    out, how = _render_image(ds, stored, window, top)
    if photometric == MONOCHROME1:
      out = top - out
  group = ''
  if group_keyword:
    value = _text(ds, group_keyword)
    if not value:
      raise BadDicom(f'no group: the DICOM attribute {group_keyword} is missing or empty '
                     f'(option --group-column {GROUP_PREFIX}{group_keyword})')
    group = hash_group(value, group_salt)
  identifying = tuple(k for k in IDENTIFYING_KEYWORDS if _present(ds, k))
  if any(tag.is_private for tag in ds.keys()):
    identifying += (PRIVATE_TAGS,)
  info = DicomInfo(str(syntax), syntax_name, photometric, bits_stored, _spacing(ds), how,
                   identifying, burned_in, group)
  return Rendered(encode_png(out, depth), columns, rows, depth, info)


def _render_image(ds, stored: np.ndarray, window: str, top: int) -> Tuple[np.ndarray, str]:
  """Modality LUT, VOI by ``window``, scaled to 0..top (float64; not yet inverted)."""
  from pydicom import pixels
  try:
    values = pixels.apply_modality_lut(stored, ds)
    if window == WINDOW_NONE:
      lo, hi = sorted(nominal_range(ds))
      how = RENDERED_NOMINAL
    elif window == WINDOW_AUTO:
      how = voi_kind(ds)
      if how == RENDERED_VOI_LUT:
        values = pixels.apply_voi_lut(values, ds, index=0, prefer_lut=True)
        lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
      elif how == RENDERED_WINDOW:
        lo, hi = nominal_range(ds)
        values = pixels.apply_voi_lut(values, ds, index=0, prefer_lut=True)
      else:
        lo, hi = float(values.min()), float(values.max())
    else:
      center, width = config_lib.parse_dicom_window(window)
      for keyword in ('VOILUTFunction', 'VOILUTSequence'):
        if keyword in ds:
          delattr(ds, keyword)
      ds.WindowCenter = pydicom_valuerep().DSfloat(center, auto_format=True)
      ds.WindowWidth = pydicom_valuerep().DSfloat(width, auto_format=True)
      lo, hi = nominal_range(ds)
      values = pixels.apply_windowing(values, ds, index=0)
      how = RENDERED_WINDOW_OPTION
  except BadDicom:
    raise
  except Exception as e:  # pylint: disable=broad-except  (a LUT or window that cannot apply)
    raise BadDicom(f'DICOM VOI/window cannot be applied: {_reason(e)}') from e
  return scale(values, lo, hi, top), how


def pydicom_valuerep():
  from pydicom import valuerep
  return valuerep


def count_into(counts: dict, what: str, info: DicomInfo) -> None:
  """Adds one DICOM file to ``counts`` {category: {key: n}}: 'files' by what ('image'/'mask');
  for images 'transfer_syntax' (name), 'photometric', 'bits_stored', 'rendering'; for every
  file 'identifying_tags' (keyword -> files carrying it) and 'burned_in_written'."""
  def add(category, key):
    into = counts.setdefault(category, {})
    into[key] = into.get(key, 0) + 1
  add('files', what)
  if what == 'image':
    add('transfer_syntax', info.transfer_syntax_name)
    add('photometric', info.photometric)
    add('bits_stored', str(info.bits_stored))
    add('rendering', info.rendering)
  for keyword in info.identifying:
    add('identifying_tags', keyword)
  if info.burned_in:
    add('burned_in_written', what)
