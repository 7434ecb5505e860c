"""The image check run on the exact bytes about to be written (pure: Pillow, no TensorFlow).

``inspect_image(data, verify, max_pixels)`` returns the format, size, bit depth and colour mode
of a complete PNG or JPEG, or raises ``BadImage`` whose message is the reason. Only PNG and
JPEG are accepted (what TensorFlow's decoders and the schema handle); the format comes from the
content, not the file name (a JPEG named ``.png`` is a JPEG, as for TensorFlow's decoders).

What is accepted is what the Transform decodes: ``tf.io.decode_image`` with ``channels`` 1 (the
default, and every mask) and 3 (``--channels 3``), TensorFlow 2.16's libpng and libjpeg-turbo.
Every rule below that goes beyond Pillow was checked against it, and test_image_header.py's
variant corpus holds the check to it (``check accepts == TensorFlow decodes``, file by file).

Steps, in this order:

1. header: Pillow parses it (``PngImageFile`` / ``JpegImageFile``, instantiated directly);
2. ``max_pixels``: width * height above it is refused here, before anything is decoded;
3. structure, without decoding pixels: PNG chunks walked from the signature to IEND (every
   chunk complete, CRCs right, IHDR first, at least one IDAT); JPEG header segments walked
   from SOI to the first scan, then an end-of-image marker must follow. A file cut anywhere
   before its end marker is "truncated"; bytes after IEND / EOI are allowed (TensorFlow and
   Pillow ignore them). The same walk refuses, in both modes, what TensorFlow's decoders refuse
   in the headers of a well-formed file -- 'unsupported JPEG: ...': CMYK / YCCK (4 components,
   unreadable as grayscale), 2 components, 12-bit samples, lossless (SOF3), hierarchical
   (SOF5-7, 13-15), lossless arithmetic (SOF11), JPEG-LS and the other reserved markers,
   fractional chroma sampling, height 0 (DNL); 'too large for TensorFlow's ... decoder':
   PNG sides over 1,000,000 (libpng) or width * height >= 2^29, JPEG sides over 65500 or
   width * height * components >= 2^29; 'corrupt ...': what libjpeg / libpng stop at although
   Pillow reads the header (a palette PNG without PLTE, a second IHDR or PLTE, an unknown
   critical chunk, a bad IEND CRC; a JPEG scan naming an unknown component or an undefined
   table, more than 10 blocks per MCU, a second SOI or SOF). Baseline, extended, progressive
   and arithmetic-coded (SOF9/10) JPEGs, Adobe RGB, restart markers, every PNG colour type,
   bit depth, Adam7 and tRNS (palette transparency included) are read by TensorFlow: accepted.
   PNG image data is the first run of consecutive IDAT chunks, as for libpng (it ignores later
   ones);
4. ``verify='full'`` only: the pixel data decoded, once, so corrupt compressed data is a bad
   image too, and the pixels are kept (``decode_image``) for the mask check, the fingerprints
   and the quality measures. JPEG: Pillow ``load()`` (libjpeg decodes every scan). PNG: libpng
   itself, TensorFlow's decoder library, through OpenCV's ``imdecode``: it refuses what
   TensorFlow refuses where Pillow is more lenient (a stream with rows missing, or one that
   never ends); when it refuses, ``_verify_png_data`` names the reason.

Stricter than TensorFlow, on purpose or by Pillow: a bad CRC in an ancillary PNG chunk (libpng
only warns: damage all the same), a JPEG with a TEM marker before its frame (Pillow's parser
refuses it), GIF and BMP (TensorFlow reads them with channels 3; not PNG or JPEG). Header mode
does not decode: damaged pixel data, and the scans after the first of a JPEG, are for 'full'.

Modes: the colour layout, the same for every bit depth -- PNG colour types 0/2/3/4/6 are
'L' / 'RGB' / 'P' / 'LA' / 'RGBA' (a 16-bit grayscale PNG, Pillow's 'I;16', is mode 'L' with
bit_depth 16); JPEGs are 'L' or 'RGB' (CMYK is refused). ``bit_depth`` is the PNG IHDR bit depth
(1, 2, 4, 8 or 16; for palette images the index depth) or the JPEG sample precision (8: Pillow,
like TensorFlow, refuses 12-bit JPEGs).

Global state: none is read or changed. Pillow's decompression-bomb check
(``Image.MAX_IMAGE_PIXELS``, a warning above 89.5 MP, an error above twice that) runs in
``Image.open`` only; the plugins are instantiated directly so it never fires -- ``max_pixels``
is the limit. The structure checks do not depend on ``ImageFile.LOAD_TRUNCATED_IMAGES``
either (if other code sets it, Pillow's ``load()`` tolerates short data, step 3 still does not).
"""
import dataclasses
import io
import struct
from typing import Any, Dict, List, Optional, Set, Tuple
import zlib

from components.image_example_gen.config import VERIFY_FULL
from components.image_example_gen.config import VERIFY_HEADER

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SIGNATURE = b'\xff\xd8\xff'  # SOI and the first byte of the next marker (as Pillow and TF)

_PNG_MODES = {0: 'L', 2: 'RGB', 3: 'P', 4: 'LA', 6: 'RGBA'}  # by IHDR colour type
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # interlace passes: first column, first row, column step, row step
_INFLATE_STEP = 1 << 20  # inflate in pieces: no need to hold a big image's scanlines
_JPEG_NO_LENGTH = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RST0-7, SOI: no length field
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9
_JPEG_SOI = 0xD8
_JPEG_DQT = 0xDB
_JPEG_DHT = 0xC4
_JPEG_DRI = 0xDD
_JPEG_APP14 = 0xEE  # Adobe: its colour transform tells CMYK (0) from YCCK (2)

# What TensorFlow's decoders refuse in a well-formed file (see the module docstring); each limit
# and marker list checked against tf.io.decode_image (TensorFlow 2.16).
_TF_MAX_VALUES = 1 << 29  # PNG: width * height; JPEG: width * height * components
_PNG_MAX_SIDE = 1_000_000  # libpng's default user limit on the width and on the height
_JPEG_MAX_SIDE = 65500  # libjpeg's JPEG_MAX_DIMENSION
_PNG_CRITICAL = frozenset([b'IHDR', b'PLTE', b'IDAT', b'IEND'])  # all libpng knows
# Frame types libjpeg-turbo decodes, Huffman-coded ones first (arithmetic coding is built in).
_JPEG_HUFFMAN_FRAMES = frozenset([0xC0, 0xC1, 0xC2])  # baseline, extended, progressive
_JPEG_FRAMES = _JPEG_HUFFMAN_FRAMES | {0xC9, 0xCA}  # + arithmetic sequential, progressive
_JPEG_UNSUPPORTED = {
    0xC3: 'lossless JPEG (SOF3)', 0xC5: 'hierarchical JPEG (SOF5)',
    0xC6: 'hierarchical progressive JPEG (SOF6)', 0xC7: 'hierarchical lossless JPEG (SOF7)',
    0xCB: 'lossless arithmetic-coded JPEG (SOF11)',
    0xCD: 'hierarchical arithmetic-coded JPEG (SOF13)',
    0xCE: 'hierarchical progressive arithmetic-coded JPEG (SOF14)',
    0xCF: 'hierarchical lossless arithmetic-coded JPEG (SOF15)',
    0xF7: 'JPEG-LS (SOF55)', 0xF8: 'JPEG-LS (LSE marker)',
}
# Other markers libjpeg stops at (reserved extensions): JPG, DHP, EXP, JPG0-JPG13.
_JPEG_RESERVED = frozenset([0xC8, 0xDE, 0xDF, *range(0xF0, 0xFE)])
_JPEG_TO_8BIT = 'convert it to an 8-bit grayscale or RGB JPEG, or to PNG'


class BadImage(ValueError):
  """The bytes are not a complete, acceptable PNG or JPEG; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
  format: str  # 'png' | 'jpeg'
  width: int
  height: int
  bit_depth: int  # PNG: 1, 2, 4, 8, 16 (IHDR); JPEG: 8
  mode: str  # 'L', 'LA', 'RGB', 'RGBA', 'P' (PNG); 'L', 'RGB' (JPEG)

  @property
  def pixels(self) -> int:
    return self.width * self.height


def inspect_image(data: bytes, verify: str = VERIFY_HEADER, max_pixels: int = 0) -> ImageHeader:
  """Checks ``data`` is a complete PNG or JPEG and returns its header facts.

  Args:
    data: the whole file.
    verify: VERIFY_HEADER ('header': header and file structure, no pixel decode) or VERIFY_FULL
      ('full': also decode every pixel).
    max_pixels: if > 0, images with more pixels are refused before any decoding.

  Raises:
    BadImage: the reason, e.g. 'empty file', 'truncated PNG: ...', 'corrupt PNG: ...' (header or
      structure), 'corrupt PNG data: ...' (pixel data, 'full' only), 'not a PNG or JPEG: ...',
      'too large: WxH = N pixels > max (option --max-pixels)'; likewise for JPEG; what
      TensorFlow's decoders cannot read: 'unsupported JPEG: CMYK ...', 'unsupported PNG: ...',
      'too large for TensorFlow's PNG decoder: ...' (both modes).
    ValueError: ``verify`` is not one of the two modes (a programming error, not a bad image).
  """
  return decode_image(data, verify, max_pixels).header


@dataclasses.dataclass(frozen=True)
class Decoded:
  """A checked image: its header and, when it was decoded (``verify='full'``), its pixels."""
  header: ImageHeader
  # numpy [H, W] or [H, W, C] (C 3 or 4, RGB(A) order), uint8 or uint16, as TensorFlow's
  # decoders give them (palette expanded, 1/2/4-bit grey scaled to 8 bits); None in 'header'.
  pixels: Any = None


def decode_image(data: bytes, verify: str = VERIFY_HEADER, max_pixels: int = 0) -> Decoded:
  """``inspect_image``, keeping what the full check decoded: the one decode of the file, whose
  pixels the mask check, the fingerprints and the quality measures then read (BadImage as
  ``inspect_image``)."""
  if verify not in (VERIFY_FULL, VERIFY_HEADER):
    raise ValueError(f'verify must be {VERIFY_FULL!r} or {VERIFY_HEADER!r}, not {verify!r}')
  data = bytes(data)
  if not data:
    raise BadImage('empty file')
  if data.startswith(PNG_SIGNATURE):
    kind, walk = 'PNG', _walk_png
  elif data.startswith(JPEG_SIGNATURE):
    kind, walk = 'JPEG', _walk_jpeg  # type: ignore[assignment]  # no structure: PNG's only
  elif len(data) < len(PNG_SIGNATURE) and PNG_SIGNATURE.startswith(data):
    raise BadImage(f'truncated PNG: only {len(data)} bytes')
  elif len(data) < len(JPEG_SIGNATURE) and JPEG_SIGNATURE.startswith(data):
    raise BadImage(f'truncated JPEG: only {len(data)} bytes')
  else:
    raise BadImage(f'not a PNG or JPEG: {_describe_other(data)}')

  try:
    img = _open(kind, data)
  except Exception as e:  # pylint: disable=broad-except
    # Pillow raises many types on malformed headers (SyntaxError, OSError, ValueError, ...).
    # A file cut short is the likelier story when the structure walk agrees.
    walk(data)  # raises 'truncated ...' / 'corrupt ...' with the byte offset if it finds why
    raise BadImage(f'corrupt {kind}: {_pillow_reason(e)}') from e
  try:
    header = _header(kind, img, data)
    if max_pixels > 0 and header.pixels > max_pixels:
      raise BadImage(f'too large: {header.width}x{header.height} = {header.pixels} pixels > '
                     f'max (option --max-pixels = {max_pixels})')
    structure = walk(data)
    if verify != VERIFY_FULL:
      return Decoded(header)
    if kind == 'PNG':
      return Decoded(header, _decode_png(data, structure, header))
    try:
      img.load()  # libjpeg decodes every scan
    except Exception as e:  # pylint: disable=broad-except
      raise BadImage(f'corrupt {kind} data: {_pillow_reason(e)}') from e
    import numpy as np
    return Decoded(header, np.asarray(img))
  finally:
    img.close()


def _decode_png(data: bytes, idats: List[Tuple[int, int]], header: ImageHeader) -> Any:
  """The pixels, decoded by libpng (OpenCV's ``imdecode``: TensorFlow's decoder library, which
  refuses the same damaged files, checked on the 24,000-file agreement corpus); else BadImage
  with the reason ``_verify_png_data`` finds (libpng does not say why)."""
  import cv2
  import numpy as np
  pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
  if pixels is None:
    _verify_png_data(data, idats, header)
    raise BadImage('corrupt PNG data: libpng cannot decode the pixel data')
  if pixels.ndim == 3:  # OpenCV's BGR(A) -> RGB(A)
    pixels = pixels[..., [2, 1, 0, 3][:pixels.shape[-1]]]
  return pixels


def _open(kind: str, data: bytes):
  """Pillow's parser for ``kind``, without ``Image.open``'s decompression-bomb check."""

  if kind == 'PNG':
    from PIL import PngImagePlugin
    return PngImagePlugin.PngImageFile(io.BytesIO(data))
  from PIL import JpegImagePlugin
  return JpegImagePlugin.JpegImageFile(io.BytesIO(data))


def _header(kind: str, img, data: bytes) -> ImageHeader:
  width, height = img.size
  if kind == 'PNG':
    # Pillow parsed IHDR (wherever it is: libpng wants it first) but does not expose the bit
    # depth (16-bit RGB opens as 'RGB'): read it from IHDR.
    if data[12:16] != b'IHDR':
      raise BadImage(f"corrupt PNG: first chunk is {data[12:16].decode('latin-1')}, not IHDR")
    bit_depth, color_type, compression, _, interlace = data[24:29]
    if color_type not in _PNG_MODES or compression != 0 or interlace > 1:
      raise BadImage(f'corrupt PNG: IHDR colour type {color_type}, compression method '
                     f'{compression}, interlace method {interlace}')
    return ImageHeader('png', width, height, bit_depth, _PNG_MODES[color_type])
  return ImageHeader('jpeg', width, height, img.bits, img.mode)


def _walk_png(data: bytes) -> List[Tuple[int, int]]:
  """Every chunk complete with the right CRC, from IHDR to IEND; bytes after IEND allowed; and
  the chunk rules libpng (TensorFlow's decoder) enforces where Pillow does not: IHDR once and
  13 bytes long, its size within libpng's and TensorFlow's limits, PLTE at most once (a palette
  image's before the image data, 3 to 768 bytes, a multiple of 3; an RGB image's suggested
  palette not empty), no unknown critical chunk (one whose name starts with a capital).

  Returns the [start, end) of each IDAT chunk's data: the first run of consecutive IDAT
  chunks, the image data for libpng (IDAT chunks after another chunk: it warns, ignores them).
  """
  view = memoryview(data)
  n, pos, idats = len(data), len(PNG_SIGNATURE), []
  color_type, plte, run_over = -1, False, False
  while True:
    if pos + 8 > n:
      where = (f'inside a chunk header at byte {pos}' if pos < n else
               'after the signature' if pos == len(PNG_SIGNATURE) else 'after a chunk')
      raise BadImage(f'truncated PNG: no IEND chunk (file ends at byte {n}, {where})')
    length, ctype = struct.unpack_from('>I4s', data, pos)
    name = ctype.decode('latin-1')
    if not ctype.isalpha():
      raise BadImage(f'corrupt PNG: invalid chunk type {ctype!r} at byte {pos}')
    if pos == len(PNG_SIGNATURE) and ctype != b'IHDR':
      raise BadImage(f'corrupt PNG: first chunk is {name}, not IHDR')
    end = pos + 12 + length
    if end > n:
      # (or a damaged length field: the two cannot be told apart reliably)
      raise BadImage(f'truncated PNG: {name} chunk at byte {pos} needs {12 + length} bytes, '
                     f'the file ends at byte {n}')
    (crc,) = struct.unpack_from('>I', data, end - 4)
    if zlib.crc32(view[pos + 4:end - 4]) != crc:
      raise BadImage(f'corrupt PNG: bad CRC in {name} chunk at byte {pos}')
    if ctype == b'IEND':
      break
    if ctype == b'IHDR':
      if pos != len(PNG_SIGNATURE):
        raise BadImage(f'corrupt PNG: a second IHDR chunk at byte {pos}')
      color_type = _check_png_ihdr(data[pos + 8:end - 4])
    elif ctype == b'IDAT':
      if color_type == 3 and not plte:
        raise BadImage('corrupt PNG: palette image without a PLTE chunk before its image data')
      if not run_over:
        idats.append((pos + 8, end - 4))
    elif ctype == b'PLTE':
      if plte:
        raise BadImage(f'corrupt PNG: a second PLTE chunk at byte {pos}')
      if not idats:  # after the image data: ignored (libpng: out of place)
        plte = True
        if color_type in (2, 3, 6) and (length == 0 or color_type == 3 and (
            length > 768 or length % 3)):
          raise BadImage(f'corrupt PNG: PLTE chunk at byte {pos} has {length} bytes (a palette '
                         'is 1 to 256 entries of 3 bytes)')
    elif ctype not in _PNG_CRITICAL and ctype[0] < ord('a'):
      raise BadImage(f'unsupported PNG: unknown critical chunk {name} at byte {pos}: '
                     "TensorFlow's decoder (libpng) cannot read the image without it")
    run_over = run_over or bool(idats) and ctype != b'IDAT'
    pos = end
  if not idats:
    raise BadImage('corrupt PNG: no IDAT chunk (no image data)')
  return idats


def _check_png_ihdr(ihdr: bytes) -> int:
  """IHDR's length and size as libpng and TensorFlow require -> the colour type."""
  if len(ihdr) != 13:
    raise BadImage(f'corrupt PNG: IHDR chunk has {len(ihdr)} bytes, not 13')
  width, height = struct.unpack_from('>II', ihdr)
  if not width or not height:
    raise BadImage(f'corrupt PNG: IHDR says {width}x{height}')
  if max(width, height) > _PNG_MAX_SIDE:
    raise BadImage(f"too large for TensorFlow's PNG decoder: {width}x{height}, a side over "
                   f'{_PNG_MAX_SIDE} pixels (libpng\'s limit)')
  if width * height >= _TF_MAX_VALUES:
    raise BadImage(f"too large for TensorFlow's PNG decoder: {width}x{height} = "
                   f'{width * height} pixels >= 2^29')
  return ihdr[9]


def _png_row_layout(header: ImageHeader, color_type: int,
                    interlaced: bool) -> List[Tuple[int, int, int]]:
  """[(offset, row bytes with the filter byte, rows)] of the filtered scanlines IHDR promises:
  one entry, or one per non-empty Adam7 pass, in stream order."""
  bits = _PNG_CHANNELS[color_type] * header.bit_depth
  sizes = ([(header.width, header.height)] if not interlaced else
           [((header.width - x0 + dx - 1) // dx, (header.height - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7])
  layout, offset = [], 0
  for w, h in sizes:
    if w > 0 and h > 0:
      stride = 1 + (w * bits + 7) // 8
      layout.append((offset, stride, h))
      offset += stride * h
  return layout


def _verify_png_data(data: bytes, idats: List[Tuple[int, int]], header: ImageHeader) -> None:
  """Why libpng refused a PNG's pixel data: every scanline is there with a valid filter type.

  Inflating the IDAT stream and checking each row's filter byte (0-4) is all a PNG decode can
  fail on (unfiltering and unpacking cannot), at about the cost of the inflate alone -- less
  than Pillow's ``load()``, which also misses what libpng (TensorFlow's decoder) refuses:
  libpng refuses a stream that ends, breaks or runs out of IDAT chunks before the last row,
  and one that does not end after it (no final block: the IDAT data runs out first), while
  Pillow leaves missing rows blank and stops reading after the last row. Once the rows are
  complete, a deflate error (e.g. a bad Adler-32) is only a libpng warning, and extra data
  before the end too: accepted. These rules agreed with ``tf.io.decode_image`` on all of
  24,000 damaged PNGs tried (see test_image_header.py, CXR_TF_AGREEMENT=1).
  """
  layout = _png_row_layout(header, data[25], bool(data[28]))
  offset, stride, rows = layout[-1]
  need = offset + stride * rows
  view, inflate = memoryview(data), zlib.decompressobj()
  pieces = iter(idats)
  buf, pending, got = b'', False, 0

  def feed(limit: int) -> Optional[bytes]:
    """Inflates up to ``limit`` bytes more; None when the IDAT data is used up."""
    nonlocal buf, pending
    if not buf and not pending:
      piece = next(pieces, None)
      if piece is None:
        return None
      buf = view[piece[0]:piece[1]]
    out = inflate.decompress(buf, limit)
    buf, pending = inflate.unconsumed_tail, len(out) == limit  # more output may be waiting
    return out

  try:
    while got < need and not inflate.eof:
      out = feed(min(_INFLATE_STEP, need - got))
      if out is None:
        break
      for start, stride, rows in layout:  # the filter bytes in [got, got + len(out))
        first = start + max(0, -(-(got - start) // stride)) * stride
        stop = min(got + len(out), start + stride * rows)
        if first < stop:
          worst = max(out[first - got:stop - got:stride])
          if worst > 4:
            raise BadImage(f'corrupt PNG data: invalid filter type {worst} in the scanlines')
      got += len(out)
  except zlib.error as e:
    raise BadImage(f'corrupt PNG data: the deflate stream is broken: {e}') from e
  if got < need:
    why = 'ends' if inflate.eof else 'is cut (the IDAT chunks end)'
    raise BadImage(f'corrupt PNG data: the deflate stream {why} after {got} bytes of '
                   f'scanlines, IHDR {header.width}x{header.height} needs {need}')
  extra = 0
  try:
    while not inflate.eof:
      out = feed(_INFLATE_STEP)
      if out is None:
        raise BadImage('corrupt PNG data: the deflate stream does not end after the last row '
                       f'({extra} bytes more, then the IDAT chunks end)')
      extra += len(out)
  except zlib.error:
    return  # after the last row: libpng only warns


def _walk_jpeg(data: bytes) -> None:
  """Header segments by their lengths up to the first scan, then an end-of-image marker.

  Before the first scan (SOS), like Pillow and libjpeg, bytes between segments that are not a
  marker are skipped. From the scan data on, only an end-of-image marker (0xFFD9) is looked
  for: entropy-coded data never holds one (0xFF is stuffed as 0xFF00) and a damaged byte there
  can look like a marker with any length, which libjpeg survives (it stops the scan and fills
  in), so lengths are not trusted past that point -- decoding is for verify='full'.

  The segments up to the first scan are checked as TensorFlow's libjpeg-turbo reads them: the
  frame type, precision, components, sampling and size (``_check_jpeg_frame``), the tables
  (DQT, DHT), DRI's length, the first scan's header (``_check_jpeg_scan``); reserved markers,
  a second SOI or SOF are refused.
  """
  n, pos = len(data), 2
  frame: Optional[Tuple[int, List[Tuple[int, int, int, int]]]] = None
  quant: Set[int] = set()
  huffman: Set[Tuple[int, int]] = set()  # (0: DC or 1: AC, table)
  adobe_transform = -1
  while True:
    j = data.find(b'\xff', pos)
    while 0 <= j < n - 1 and data[j + 1] == 0xFF:  # fill bytes before a marker
      j += 1
    if j < 0 or j + 1 >= n:
      raise BadImage(f'truncated JPEG: no image data (file ends at byte {n} before the first '
                     'scan)')
    marker = data[j + 1]
    if marker == _JPEG_EOI:
      raise BadImage(f'corrupt JPEG: end-of-image marker at byte {j} before any image data')
    if marker == _JPEG_SOI:
      raise BadImage(f'corrupt JPEG: a second start-of-image marker at byte {j}')
    if marker == 0x00 or marker in _JPEG_NO_LENGTH:
      pos = j + 2
      continue
    if marker < 0xC0:  # reserved codes: Pillow and libjpeg stop here too
      raise BadImage(f'corrupt JPEG: invalid marker 0xFF{marker:02X} at byte {j}')
    if j + 4 > n:
      raise BadImage(f'truncated JPEG: marker 0xFF{marker:02X} at byte {j} is cut off')
    length = (data[j + 2] << 8) | data[j + 3]
    pos = j + 2 + length
    if pos > n:
      raise BadImage(f'truncated JPEG: segment 0xFF{marker:02X} at byte {j} needs '
                     f'{pos - j} bytes, the file ends at byte {n}')
    seg = data[j + 4:pos]
    if marker in _JPEG_UNSUPPORTED:
      raise BadImage(f'unsupported JPEG: {_JPEG_UNSUPPORTED[marker]}, marker at byte {j}: '
                     "TensorFlow's decoder reads baseline, extended, progressive and "
                     f'arithmetic-coded JPEGs only; {_JPEG_TO_8BIT}')
    if marker in _JPEG_RESERVED:
      raise BadImage(f'unsupported JPEG: reserved marker 0xFF{marker:02X} at byte {j} (a JPEG '
                     "extension TensorFlow's decoder stops at)")
    if marker in _JPEG_FRAMES:
      if frame is not None:
        raise BadImage(f'corrupt JPEG: a second frame header (SOF) at byte {j}')
      frame = (marker, _check_jpeg_frame(seg, j, adobe_transform))
    elif marker == _JPEG_DQT:
      quant |= _jpeg_dqt(seg, j)
    elif marker == _JPEG_DHT:
      huffman |= _jpeg_dht(seg, j)
    elif marker == _JPEG_DRI and length != 4:
      raise BadImage(f'corrupt JPEG: restart interval segment (DRI) at byte {j} has length '
                     f'{length}, not 4')
    elif marker == _JPEG_APP14 and seg[:5] == b'Adobe' and len(seg) >= 12:
      adobe_transform = seg[11]
    elif marker == _JPEG_SOS:
      _check_jpeg_scan(frame, seg, j, quant, huffman)
      break
  if data.find(b'\xff\xd9', pos) < 0:
    raise BadImage(f'truncated JPEG: no end-of-image marker after the scan data at byte {pos} '
                   f'(file ends at byte {n})')


def _check_jpeg_frame(seg: bytes, at: int, adobe_transform: int
                      ) -> List[Tuple[int, int, int, int]]:
  """A frame header (SOF0/1/2/9/10, ``seg`` after the length) TensorFlow's decoder reads as
  grayscale and as RGB -> its components [(id, h, v, quantization table)]."""
  count = seg[5] if len(seg) > 5 else -1
  if count < 0 or len(seg) != 6 + 3 * count:
    raise BadImage(f'corrupt JPEG: frame header (SOF) at byte {at} has length {len(seg) + 2}'
                   + (f', not {8 + 3 * count} for {count} components' if count >= 0 else ''))
  precision, height, width = seg[0], (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4]
  if precision != 8:
    raise BadImage(f"unsupported JPEG: {precision}-bit samples: TensorFlow's decoder reads "
                   f'8-bit JPEGs only; {_JPEG_TO_8BIT}')
  if count == 4:
    kind = 'YCCK' if adobe_transform == 2 else 'CMYK'
    raise BadImage(f"unsupported JPEG: {kind} (4 components): TensorFlow's decoder cannot "
                   "read it as grayscale (the Transform's default --channels 1, and every "
                   'mask); convert it to grayscale or RGB')
  if count not in (1, 3):
    raise BadImage(f"unsupported JPEG: {count} components: TensorFlow's decoder reads 1 "
                   '(grayscale) or 3 (colour); convert it to grayscale or RGB')
  if not width:
    raise BadImage(f'corrupt JPEG: frame header at byte {at} says width 0')
  if not height:
    raise BadImage('unsupported JPEG: height 0 in the frame header (given later by a DNL '
                   "marker): TensorFlow's decoder cannot read it")
  if max(width, height) > _JPEG_MAX_SIDE:
    raise BadImage(f"too large for TensorFlow's JPEG decoder: {width}x{height}, a side over "
                   f"{_JPEG_MAX_SIDE} pixels (libjpeg's limit)")
  if width * height * count >= _TF_MAX_VALUES:
    raise BadImage(f"too large for TensorFlow's JPEG decoder: {width}x{height} x {count} "
                   f'components = {width * height * count} values >= 2^29')
  components = [(seg[6 + 3 * k], seg[7 + 3 * k] >> 4, seg[7 + 3 * k] & 15, seg[8 + 3 * k])
                for k in range(count)]
  for cid, h, v, table in components:
    if not (1 <= h <= 4 and 1 <= v <= 4):
      raise BadImage(f'corrupt JPEG: component {cid} has sampling factors {h}x{v} (1 to 4)')
    if table > 3:
      raise BadImage(f'corrupt JPEG: component {cid} uses quantization table {table} (0 to 3)')
  max_h = max(h for _, h, _, _ in components)
  max_v = max(v for _, _, v, _ in components)
  for cid, h, v, _ in components:
    if max_h % h or max_v % v:
      raise BadImage(f'unsupported JPEG: component {cid} sampled {h}x{v}, which does not '
                     f"divide the largest {max_h}x{max_v} (fractional upsampling): TensorFlow's "
                     f'decoder cannot read it in colour; {_JPEG_TO_8BIT}')
  return components


def _check_jpeg_scan(frame: Optional[Tuple[int, List[Tuple[int, int, int, int]]]], seg: bytes,
                     at: int, quant: Set[int], huffman: Set[Tuple[int, int]]) -> None:
  """The first scan header (SOS, ``seg`` after the length) as libjpeg-turbo checks it: after
  the frame, known components once each, at most 10 blocks per MCU, every table it needs
  defined before it (baseline Huffman tables 0 and 1 have defaults; progressive ones not)."""
  if frame is None:
    raise BadImage(f'corrupt JPEG: scan header (SOS) at byte {at} before any frame header')
  marker, components = frame
  count = seg[0] if seg else 0
  if not 1 <= count <= 4 or len(seg) != 4 + 2 * count:
    raise BadImage(f'corrupt JPEG: scan header (SOS) at byte {at} has length {len(seg) + 2} '
                   f'for {count} components')
  by_id: Dict[int, Tuple[int, int, int, int]] = {}
  for component in components:
    by_id.setdefault(component[0], component)
  ss, ah = seg[-3], seg[-1] >> 4
  seen: List[int] = []
  needed: Set[Tuple[int, int]] = set()
  for k in range(count):
    cid, tables = seg[1 + 2 * k], seg[2 + 2 * k]
    if cid not in by_id or cid in seen:
      raise BadImage(f'corrupt JPEG: scan header at byte {at} names component {cid}, '
                     + ('twice' if cid in seen else 'which the frame header does not list'))
    seen.append(cid)
    if by_id[cid][3] not in quant:
      raise BadImage(f'corrupt JPEG: quantization table {by_id[cid][3]} (component {cid}) is '
                     'not defined before the first scan')
    if marker not in _JPEG_HUFFMAN_FRAMES:
      continue  # arithmetic coding: default conditioning tables
    if marker != 0xC2:  # sequential: a DC and an AC table
      needed |= {(0, tables >> 4), (1, tables & 15)}
    elif ss == 0:  # progressive DC scan: a table for the first pass only
      needed |= {(0, tables >> 4)} if ah == 0 else set()
    else:
      needed.add((1, tables & 15))
  if count > 1:
    blocks = sum(by_id[cid][1] * by_id[cid][2] for cid in seen)
    if blocks > 10:
      raise BadImage(f'corrupt JPEG: {blocks} blocks per MCU in the first scan (libjpeg reads '
                     'at most 10)')
  defaults = {(0, 0), (0, 1), (1, 0), (1, 1)} if marker != 0xC2 else set()
  missing = sorted(needed - huffman - defaults)
  if missing:
    kind, table = missing[0]
    raise BadImage(f"corrupt JPEG: Huffman {('DC', 'AC')[kind]} table {table} is not defined "
                   'before the first scan')


def _jpeg_dqt(seg: bytes, at: int) -> Set[int]:
  """The quantization tables a DQT segment defines (libjpeg pads a short last table)."""
  tables, k = set(), 0
  while k < len(seg):
    index, size = seg[k] & 15, 2 if seg[k] >> 4 else 1
    if index > 3:
      raise BadImage(f'corrupt JPEG: quantization table (DQT) at byte {at} has index {index} '
                     '(0 to 3)')
    tables.add(index)
    k += 1 + min(64, (len(seg) - k - 1) // size) * size  # a byte left over: the next index
  return tables


def _jpeg_dht(seg: bytes, at: int) -> Set[Tuple[int, int]]:
  """The Huffman tables a DHT segment defines: (0: DC or 1: AC, index)."""
  tables, k = set(), 0
  while len(seg) - k > 16:
    index, count = seg[k], sum(seg[k + 1:k + 17])
    k += 17 + count
    if count > 256 or k > len(seg):
      raise BadImage(f'corrupt JPEG: bad Huffman table (DHT) at byte {at}')
    kind = 1 if index & 0x10 else 0
    if index - 0x10 * kind > 3:
      raise BadImage(f'corrupt JPEG: Huffman table (DHT) at byte {at} has index '
                     f'{index - 0x10 * kind} (0 to 3)')
    tables.add((kind, index - 0x10 * kind))
  if k != len(seg):
    raise BadImage(f'corrupt JPEG: Huffman table segment (DHT) at byte {at}: its length does '
                   'not match its tables')
  return tables


def _pillow_reason(e: BaseException) -> str:
  text = str(e) or type(e).__name__
  return f'{text} (Pillow {type(e).__name__})'


def _describe_other(data: bytes) -> str:
  """'a GIF image' if Pillow knows the format (signature, then its parser agrees), else the
  first bytes."""

  from PIL import Image
  Image.init()
  prefix = data[:16]
  for fmt, (factory, accept) in list(Image.OPEN.items()):
    if accept is None or fmt in ('PNG', 'JPEG', 'MPO'):
      continue  # no signature to go by, or handled above (and refused: bad signature)
    try:
      claimed = accept(prefix)
      if not claimed or isinstance(claimed, str):  # a str is a warning: not this format
        continue
      factory(io.BytesIO(data), '').close()  # the parser confirms (no bomb check, no decode)
    except Exception:  # pylint: disable=broad-except
      continue
    return f'a {fmt} image'
  return f'starts with {data[:8]!r}'
