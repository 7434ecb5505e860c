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
decoder handles; pixel data that is truncated or does not decode; a window that cannot apply.
No identifying header value appears in a reason (technical ones do: the photometric
interpretation, the number of frames, the transfer syntax).

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
from typing import Tuple
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


def render(data: bytes, *, window: str = WINDOW_AUTO, output: str = OUTPUT_PNG16,
           allow_burned_in: bool = False, max_pixels: int = 0, mask: bool = False,
           group_keyword: str = '', group_salt: str = '') -> Rendered:
  """A DICOM file's bytes -> its rendered PNG and facts (module docstring); else BadDicom."""
  pydicom = _pydicom()
  from pydicom import pixels
  from pydicom.pixels import utils as pixel_utils
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
