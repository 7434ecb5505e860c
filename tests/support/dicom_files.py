"""DICOM files for tests: pydicom's own sample files, and tiny synthetic CR/DX radiographs.

Pure (pydicom, NumPy; no TensorFlow). ``sample(name)`` is the path of a file shipped inside the
installed pydicom wheel (never downloaded). ``radiograph(...)`` builds a small seeded chest-like
image as a DICOM Part 10 file (bytes) with exactly the attributes a test needs: windowing, a
VOI LUT, rescale, MONOCHROME1, BurnedInAnnotation, PatientID, several frames, a compressed
(RLE) or an undecodable (MPEG-2) transfer syntax. Typical use::

    write(tmp / 'a.dcm', radiograph(seed=1, bits_stored=12, window=(2048, 4096)))
    cr = sample(SAMPLE_CR_MONOCHROME1)        # a real CR, MONOCHROME1, 12 bits, no suffix

Decompression bombs (``dicom.check_frames``): ``with_frame(data, frame, syntax)`` puts any
encapsulated frame in a file, ``jpeg_frame`` makes an 8-bit baseline JPEG (Pillow),
``frame_of`` takes a file's frame out, ``claim_size(frame, w, h)`` rewrites the frame's own
header (JPEG SOF/SOF55, JPEG 2000 SIZ) to claim another size, and ``deflated_with_blob`` is a
deflated file whose data set inflates to ``size`` more bytes.
"""
import io
import os
import struct
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

# Real files shipped with pydicom (pydicom/data/test_files), chosen for what they cover:
SAMPLE_CR_MONOCHROME1 = 'dicomdirtests/77654033/CR1/6154'  # CR, MONOCHROME1, 12 of 16 bits,
#   rescale 0.684/200, window 1600/2800, ImagerPixelSpacing, PatientName; no file suffix
SAMPLE_CT_16BIT = 'CT_small.dcm'  # CT, MONOCHROME2, signed 16 bits, rescale, no window
SAMPLE_MR_16BIT = 'MR_small.dcm'  # MR, MONOCHROME2, signed 16 bits, window 600/1600
SAMPLE_MR_RLE = 'MR_small_RLE.dcm'  # the same pixels as MR_small: RLE Lossless
SAMPLE_MR_J2K = 'MR_small_jp2klossless.dcm'  # ...: JPEG 2000 lossless (openjpeg plugin)
SAMPLE_MR_JPEG_LS = 'MR_small_jpeg_ls_lossless.dcm'  # ...: JPEG-LS lossless (libjpeg plugin)
SAMPLE_CT_J2K_LOSSY = '693_J2KI.dcm'  # CT, 14 bits, JPEG 2000 (lossy), window 40/100
SAMPLE_8BIT_DEFLATED = 'image_dfl.dcm'  # OT, MONOCHROME2, 8 bits, Deflated Explicit VR LE
SAMPLE_MR_12BIT_OVERLAY = 'examples_overlay.dcm'  # MR, 12 bits, two windows, an overlay plane
SAMPLE_SEG_MASK = 'liver_1frame.dcm'  # SEG, 1-bit binary 512x512 (as a mask of image_dfl)
# ... and bad ones:
SAMPLE_TRUNCATED = 'MR_truncated.dcm'  # pixel data cut short (8130 of 8192 bytes)
SAMPLE_CORRUPT_JPEG = 'JPEG-lossy.dcm'  # 12-bit JPEG that no decoder accepts
SAMPLE_NO_PIXELS = 'reportsi.dcm'  # a structured report: no Pixel Data
SAMPLE_MULTI_FRAME = 'rtdose.dcm'  # 15 frames
SAMPLE_PALETTE = 'examples_palette.dcm'  # PALETTE COLOR
SAMPLE_NO_PREAMBLE = 'no_meta.dcm'  # a .dcm without the DICM preamble and file meta


def sample(name: str) -> str:
  """The path of a file shipped in the installed pydicom package (no network)."""
  from pydicom.data import get_testdata_file
  path = get_testdata_file(name, download=False)
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f'{name} is not in the installed pydicom package')
  return path


def read(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


def write(path, data: bytes) -> str:
  path = str(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)
  return path


def chest_pixels(rows: int, columns: int, bits_stored: int, seed: int = 0,
                 signed: bool = False) -> np.ndarray:
  """A smooth chest-like picture (bright mediastinum, darker lungs, ribs) plus noise, filling
  most of the stored range; uint16 (or int16 when ``signed``)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
  y, x = y / max(rows - 1, 1), x / max(columns - 1, 1)
  lungs = np.exp(-(((x - 0.3) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2)) + np.exp(
      -(((x - 0.7) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2))
  ribs = 0.1 * (np.sin(y * 40 + x * 3) > 0.6)
  picture = 0.85 - 0.6 * lungs + ribs + rng.normal(0, 0.02, (rows, columns))
  top = 2 ** bits_stored - 1
  values = np.clip(np.rint(picture * top), 0, top)
  if signed:
    return (values - 2 ** (bits_stored - 1)).astype(np.int16)
  return values.astype(np.uint16)


def radiograph(seed: int = 0, rows: int = 24, columns: int = 20, bits_stored: int = 12,
               photometric: str = 'MONOCHROME2', modality: str = 'DX',
               patient_id: Optional[str] = 'PAT-0001', patient_name: str = 'Doe^Jane',
               window: Optional[Tuple[float, float]] = None,
               voi_lut_function: Optional[str] = None,
               voi_lut: Optional[Sequence[int]] = None, voi_lut_bits: int = 12,
               rescale: Optional[Tuple[float, float]] = None,
               burned_in: Optional[str] = None,
               pixel_spacing: Optional[Tuple[float, float]] = (0.143, 0.143),
               imager_pixel_spacing: Optional[Tuple[float, float]] = None,
               frames: int = 1, compress: str = '', signed: bool = False,
               pixels: Optional[np.ndarray] = None, pixel_data: bool = True,
               extra: Optional[Dict[str, object]] = None) -> bytes:
  """A DICOM Part 10 radiograph (bytes) built with pydicom.

  Args:
    pixels: the stored values (default ``chest_pixels``), shape (rows, columns).
    window: (center, width) stored as Window Center/Width; voi_lut_function: its function.
    voi_lut: a VOI LUT Sequence item's data (first mapped value 0), entries of voi_lut_bits.
    rescale: (slope, intercept).
    burned_in: BurnedInAnnotation value ('YES' / 'NO').
    frames: NumberOfFrames (> 1 repeats the image).
    compress: '' (Explicit VR Little Endian), 'rle' (RLE Lossless, pydicom's own encoder) or
      'mpeg2' (MPEG-2 with junk data: a transfer syntax pydicom has no decoder for).
    pixel_data: False leaves Pixel Data out.
    extra: more attributes, keyword -> value, or tag (int) -> (VR, value).
  """

  import pydicom
  from pydicom import uid
  from pydicom.dataset import Dataset
  from pydicom.dataset import FileMetaDataset
  from pydicom.encaps import encapsulate
  if pixels is None:
    pixels = chest_pixels(rows, columns, bits_stored, seed, signed)
  rows, columns = pixels.shape
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = ('1.2.840.10008.5.1.4.1.1.1' if modality == 'CR' else
                                  '1.2.840.10008.5.1.4.1.1.1.1')  # CR / DX for presentation
  meta.MediaStorageSOPInstanceUID = uid.generate_uid(entropy_srcs=[f'sop{seed}'])
  meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
  ds = Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.StudyInstanceUID = uid.generate_uid(entropy_srcs=[f'study{seed}'])
  ds.SeriesInstanceUID = uid.generate_uid(entropy_srcs=[f'series{seed}'])
  ds.Modality = modality
  ds.PatientName = patient_name
  if patient_id is not None:
    ds.PatientID = patient_id
  ds.PatientBirthDate = '19700101'
  ds.InstitutionName = 'St Example Hospital'
  ds.StudyDate = '20240102'
  ds.AccessionNumber = f'ACC{seed:05d}'
  ds.BodyPartExamined = 'CHEST'
  ds.Rows, ds.Columns = rows, columns
  ds.SamplesPerPixel = 1
  ds.PhotometricInterpretation = photometric
  ds.BitsAllocated = 16
  ds.BitsStored = bits_stored
  ds.HighBit = bits_stored - 1
  ds.PixelRepresentation = 1 if signed else 0
  if pixel_spacing:
    ds.PixelSpacing = list(pixel_spacing)
  if imager_pixel_spacing:
    ds.ImagerPixelSpacing = list(imager_pixel_spacing)
  if window:
    ds.WindowCenter, ds.WindowWidth = window
  if voi_lut_function:
    ds.VOILUTFunction = voi_lut_function
  if voi_lut is not None:
    item = Dataset()
    item.add_new('LUTDescriptor', 'US', [len(voi_lut), 0, voi_lut_bits])
    item.add_new('LUTData', 'US', [int(v) for v in voi_lut])
    ds.VOILUTSequence = [item]
  if rescale:
    ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.RescaleType = 'US'
  if burned_in:
    ds.BurnedInAnnotation = burned_in
  if frames > 1:
    ds.NumberOfFrames = frames
  for keyword, value in (extra or {}).items():
    if isinstance(keyword, int):  # a tag (e.g. a private one): value is (VR, value)
      ds.add_new(keyword, *value)
    else:
      setattr(ds, keyword, value)
  if pixel_data:
    stack = np.stack([pixels] * frames) if frames > 1 else pixels
    ds.PixelData = stack.astype('<i2' if signed else '<u2').tobytes()
    if compress == 'rle':
      ds.compress(uid.RLELossless, encoding_plugin='pydicom')
    elif compress == 'mpeg2':
      meta.TransferSyntaxUID = uid.MPEG2MPML  # a valid syntax no pydicom decoder handles
      ds.PixelData = encapsulate([bytes(range(64))])
      ds['PixelData'].VR = 'OB'
    elif compress:
      raise ValueError(f'unknown compress {compress!r}')
  out = io.BytesIO()
  pydicom.dcmwrite(out, ds, enforce_file_format=True)
  return out.getvalue()


def frame_of(data: bytes) -> bytes:
  """The single encapsulated frame of a DICOM file's bytes."""
  import pydicom
  from pydicom.encaps import generate_frames
  ds = pydicom.dcmread(io.BytesIO(data))
  return next(generate_frames(ds.PixelData, number_of_frames=1))


def with_frame(data: bytes, frame, syntax: Optional[str] = None, **attributes) -> bytes:
  """The DICOM file ``data`` with its Pixel Data replaced by ``frame`` (bytes, or a list of
  fragments or frames as ``encapsulate`` takes them, one item each) under ``syntax`` (default:
  the file's own), and header ``attributes`` set (e.g. BitsAllocated=8); nothing is decoded or
  checked, so the frame may say anything."""
  import pydicom
  from pydicom.encaps import encapsulate
  ds = pydicom.dcmread(io.BytesIO(data))
  if syntax:
    ds.file_meta.TransferSyntaxUID = syntax
  for keyword, value in attributes.items():
    setattr(ds, keyword, value)
  ds.PixelData = encapsulate([frame] if isinstance(frame, bytes) else list(frame))
  ds['PixelData'].VR = 'OB'
  out = io.BytesIO()
  pydicom.dcmwrite(out, ds, enforce_file_format=True)
  return out.getvalue()


def jpeg_frame(pixels: np.ndarray, quality: int = 90) -> bytes:
  """An 8-bit grayscale baseline JPEG (SOF0) of ``pixels`` (uint8), encoded by Pillow."""
  from PIL import Image
  out = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(out, 'JPEG', quality=quality)
  return out.getvalue()


def claim_size(frame: bytes, width: int, height: int) -> bytes:
  """``frame`` with its own header rewritten to say width x height: the first JPEG SOF0-15 or
  JPEG-LS SOF55 (a 16-bit X and Y), or a J2K codestream's SIZ (Xsiz, Ysiz with the image
  offset kept, and one tile covering it); the compressed data is left as it was."""
  out = bytearray(frame)
  if out.startswith(b'\xff\x4f\xff\x51'):  # SOC, SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz ...
    xo, yo = struct.unpack_from('>II', out, 16)
    struct.pack_into('>II', out, 8, xo + width, yo + height)
    struct.pack_into('>II', out, 24, xo + width, yo + height)  # XTsiz, YTsiz
    return bytes(out)
  pos = 2
  while pos < len(out):
    marker, length = out[pos + 1], struct.unpack_from('>H', out, pos + 2)[0]
    if marker in (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                  *range(0xCD, 0xD0), 0xF7):
      struct.pack_into('>HH', out, pos + 5, height, width)  # Y, X after Lf and P
      return bytes(out)
    pos += 2 + length
  raise ValueError('no SOF or SIZ marker found')


def deflated_with_blob(size: int) -> bytes:
  """pydicom's deflated 8-bit sample (Deflated Explicit VR Little Endian, 512x512) with a
  private OB element of ``size`` zero bytes: a file of about size / 1000 bytes that inflates
  to size more."""
  import pydicom
  ds = pydicom.dcmread(sample(SAMPLE_8BIT_DEFLATED))
  ds.add_new(0x00090010, 'LO', 'BLOB')
  ds.add_new(0x00091010, 'OB', bytes(size))
  out = io.BytesIO()
  pydicom.dcmwrite(out, ds, enforce_file_format=True)
  return out.getvalue()
