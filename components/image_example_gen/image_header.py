"""The image check run on the exact bytes about to be written (pure: Pillow, no TensorFlow).

``inspect_image(data, verify, max_pixels)`` returns the format, size, bit depth and colour mode
of a complete PNG or JPEG, or raises ``BadImage`` whose message is the reason. Only PNG and
JPEG are accepted (what TensorFlow's decoders and the schema handle); the format comes from the
content, not the file name (a JPEG named ``.png`` is a JPEG, as for TensorFlow's decoders).

Steps, in this order:

1. header: Pillow parses it (``PngImageFile`` / ``JpegImageFile``, instantiated directly);
2. ``max_pixels``: width * height above it is refused here, before anything is decoded;
3. structure, without decoding pixels: PNG chunks walked from the signature to IEND (every
   chunk complete, CRCs right, IHDR first, at least one IDAT); JPEG header segments walked
   from SOI to the first scan, then an end-of-image marker must follow. A file cut anywhere
   before its end marker is "truncated"; bytes after IEND / EOI are allowed (TensorFlow and
   Pillow ignore them);
4. ``verify='full'`` only: the pixel data decoded, so corrupt compressed data is a bad image
   too. JPEG: Pillow ``load()`` (libjpeg decodes every scan). PNG: the IDAT stream inflated and
   every scanline's filter byte checked -- all a PNG decode can fail on, faster than Pillow's
   ``load()``, and following libpng (TensorFlow's decoder) where Pillow is more lenient: a
   stream with rows missing, or one that never ends, is refused (see ``_verify_png_data``).

Modes: the colour layout, the same for every bit depth -- PNG colour types 0/2/3/4/6 are
'L' / 'RGB' / 'P' / 'LA' / 'RGBA' (a 16-bit grayscale PNG, Pillow's 'I;16', is mode 'L' with
bit_depth 16); JPEGs are 'L', 'RGB' or 'CMYK'. ``bit_depth`` is the PNG IHDR bit depth
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
from typing import List, Optional, Tuple
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


class BadImage(ValueError):
  """The bytes are not a complete, acceptable PNG or JPEG; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
  format: str  # 'png' | 'jpeg'
  width: int
  height: int
  bit_depth: int  # PNG: 1, 2, 4, 8, 16 (IHDR); JPEG: 8
  mode: str  # 'L', 'LA', 'RGB', 'RGBA', 'P' (PNG); 'L', 'RGB', 'CMYK' (JPEG)

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
      'too large: WxH = N pixels > max (option --max-pixels)'; likewise for JPEG.
    ValueError: ``verify`` is not one of the two modes (a programming error, not a bad image).
  """
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
    if verify == VERIFY_FULL:
      if kind == 'PNG':
        _verify_png_data(data, structure, header)
      else:
        try:
          img.load()  # libjpeg decodes every scan
        except Exception as e:  # pylint: disable=broad-except
          raise BadImage(f'corrupt {kind} data: {_pillow_reason(e)}') from e
    return header
  finally:
    img.close()


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
  """Every chunk complete with the right CRC, from IHDR to IEND; bytes after IEND allowed.

  Returns the [start, end) of each IDAT chunk's data.
  """
  view = memoryview(data)
  n, pos, idats = len(data), len(PNG_SIGNATURE), []
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
    if ctype == b'IEND':
      break
    (crc,) = struct.unpack_from('>I', data, end - 4)
    if zlib.crc32(view[pos + 4:end - 4]) != crc:
      raise BadImage(f'corrupt PNG: bad CRC in {name} chunk at byte {pos}')
    if ctype == b'IDAT':
      idats.append((pos + 8, end - 4))
    pos = end
  if not idats:
    raise BadImage('corrupt PNG: no IDAT chunk (no image data)')
  return idats


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
  """Every scanline is there with a valid filter type, as libpng requires: the full check.

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
  """
  n, pos = len(data), 2
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
    if marker == 0x00 or marker in _JPEG_NO_LENGTH:
      pos = j + 2
      continue
    if marker < 0xC0:  # reserved codes: Pillow and libjpeg stop here too
      raise BadImage(f'corrupt JPEG: invalid marker 0xFF{marker:02X} at byte {j}')
    if j + 4 > n:
      raise BadImage(f'truncated JPEG: marker 0xFF{marker:02X} at byte {j} is cut off')
    pos = j + 2 + ((data[j + 2] << 8) | data[j + 3])
    if pos > n:
      raise BadImage(f'truncated JPEG: segment 0xFF{marker:02X} at byte {j} needs '
                     f'{pos - j} bytes, the file ends at byte {n}')
    if marker == _JPEG_SOS:
      break
  if data.find(b'\xff\xd9', pos) < 0:
    raise BadImage(f'truncated JPEG: no end-of-image marker after the scan data at byte {pos} '
                   f'(file ends at byte {n})')


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
