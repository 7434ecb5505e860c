"""Cheap image checks from headers, never a full decode (pure: no TensorFlow import).

``inspect_image_bytes(head, tail)`` looks at the first bytes of a file (signature and header:
PNG IHDR or the JPEG SOF marker) and its last bytes (PNG IEND / JPEG EOI, so a truncated file
is caught), and returns the format, size, bit depth and colour mode, or raises ``BadImage``
with the reason. The format comes from the content, not the file name: a JPEG named ``.png``
is a JPEG (TensorFlow's decoders also go by content).
"""
import dataclasses
import struct

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_IEND = b'\x00\x00\x00\x00IEND\xaeB`\x82'
JPEG_SOI = b'\xff\xd8'
JPEG_EOI = b'\xff\xd9'
HEAD_BYTES = 64 * 1024  # JPEG's SOF marker follows EXIF/ICC segments, which can be long
TAIL_BYTES = len(PNG_IEND)

_PNG_MODES = {0: 'L', 2: 'RGB', 3: 'P', 4: 'LA', 6: 'RGBA'}
_JPEG_MODES = {1: 'L', 3: 'RGB', 4: 'CMYK'}
# SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class BadImage(ValueError):
  """The bytes are not a complete PNG or JPEG; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
  format: str  # 'png' | 'jpeg'
  width: int
  height: int
  bit_depth: int
  mode: str  # 'L', 'LA', 'RGB', 'RGBA', 'P', 'CMYK'

  @property
  def pixels(self) -> int:
    return self.width * self.height


def inspect_image_bytes(head: bytes, tail: bytes, size: int) -> ImageHeader:
  """head: the file's first bytes (up to HEAD_BYTES); tail: its last TAIL_BYTES; size: its size."""
  if size == 0:
    raise BadImage('empty file')
  if head.startswith(PNG_SIGNATURE):
    header = _png_header(head)
    if not tail.endswith(PNG_IEND):
      raise BadImage('truncated PNG: no IEND chunk at the end of the file')
    return header
  if head.startswith(JPEG_SOI):
    header = _jpeg_header(head)
    if not tail.rstrip(b'\x00').endswith(JPEG_EOI):
      raise BadImage('truncated JPEG: no end-of-image marker at the end of the file')
    return header
  raise BadImage(f'not a PNG or JPEG: starts with {head[:8]!r}')


def _png_header(head: bytes) -> ImageHeader:
  if len(head) < 33 or head[12:16] != b'IHDR':
    raise BadImage('truncated PNG: no IHDR header')
  width, height, bit_depth, color_type = struct.unpack('>IIBB', head[16:26])
  if width == 0 or height == 0 or color_type not in _PNG_MODES:
    raise BadImage(f'corrupt PNG header: {width}x{height}, colour type {color_type}')
  return ImageHeader('png', width, height, bit_depth, _PNG_MODES[color_type])


def _jpeg_header(head: bytes) -> ImageHeader:
  i = 2
  while i + 4 <= len(head):
    if head[i] != 0xFF:
      raise BadImage(f'corrupt JPEG: expected a marker at byte {i}')
    marker = head[i + 1]
    if marker == 0xFF:  # fill byte
      i += 1
      continue
    if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
      i += 2
      continue
    (length,) = struct.unpack('>H', head[i + 2:i + 4])
    if marker in _JPEG_SOF:
      if i + 10 > len(head):
        break
      bit_depth, height, width, components = struct.unpack('>BHHB', head[i + 4:i + 10])
      if width == 0 or height == 0:
        raise BadImage(f'corrupt JPEG header: {width}x{height}')
      return ImageHeader('jpeg', width, height, bit_depth,
                         _JPEG_MODES.get(components, f'{components}ch'))
    if marker == 0xDA:  # start of scan before any frame header
      break
    i += 2 + length
  raise BadImage('truncated or corrupt JPEG: no frame header found')
