"""Valid and corrupt PNG/JPEG bytes for tests: plain functions and hypothesis strategies.

Pure (Pillow, numpy, zlib; no TensorFlow). Everything returns ``bytes``, so a fault suite can
write the results to disk as image files. Typical use::

    good = png_bytes(32, 24, 'I;16', seed=3)
    bad = corrupt_png_idat(good, random.Random(0))      # valid CRCs, damaged deflate data
    cut = truncate(good, random.Random(1))              # cut before the end of IEND
    ok = pillow_loads(bad)                              # the oracle: does Pillow decode it?

    @given(corrupt_images.images())                     # (bytes, ImageSpec)
    @given(corrupt_images.png_mutations())              # (bytes, Mutation)

Valid images: ``png_bytes`` / ``jpeg_bytes`` (Pillow-written; ICC, EXIF, trailing bytes,
progressive), ``raw_png_bytes`` (hand-built: every colour type and bit depth, Adam7, several
IDAT chunks, or a deflate ``stream`` of your own from ``scanlines`` + ``deflate_stream``).
Damage: ``truncate``, ``corrupt_png_idat``, ``bad_zlib_header``, ``png_wrong_size``,
``bad_crc``, ``corrupt_jpeg_scan``, ``deflate_stream(raw, 'bad_adler' | 'unterminated')``.
Structure: ``png_chunks`` / ``build_png`` / ``png_chunk`` / ``png_end``, ``jpeg_segments`` /
``jpeg_end`` / ``insert_jpeg_segments``. Oracles: ``pillow_loads``, ``png_stream_complete``.
Strategies: ``images``, ``raw_pngs``, ``png_mutations``, ``jpeg_mutations``.
Decoder variants: ``variants(seed)`` -> [Variant]: valid and unusual PNGs and JPEGs (colour
spaces, coding processes, precisions, sampling, chunk and marker rules, size limits), each with
whether TensorFlow's ``decode_image`` reads it (recorded; test_image_header.py checks it live);
``big_variants()``: the size limits' allowed side (0.5-1.6 GB decoded). JPEG surgery for them:
``jpeg_set_marker``, ``jpeg_patch_frame``, ``jpeg_patch_scan``, ``drop_jpeg_segments``,
``jpeg_two_components``, ``set_adobe_transform``; PNG: ``edit_png``, ``png_insert``,
``png_patch_ihdr``.

Mutations that change PNG chunk data recompute that chunk's CRC, so the damage is in the
content, not the CRC (``bad_crc`` damages a CRC alone).
"""
import dataclasses
import io
import random
import struct
from typing import List, Optional, Tuple
import zlib

from hypothesis import strategies as st
import numpy as np
from PIL import Image

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_MODES = ('L', 'LA', 'RGB', 'RGBA', 'P', 'I;16')  # what Pillow writes as PNG
# What Pillow writes as JPEG and TensorFlow decodes (CMYK too, which TensorFlow cannot read as
# grayscale: jpeg_bytes writes it, the check refuses it; see variants()).
JPEG_MODES = ('L', 'RGB')
# PNG colour type -> channels, for raw_png_bytes (which also writes depths Pillow cannot).
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """What a generated valid image is: format ('png'|'jpeg'), size, the Pillow mode it was made
  from, and how many bytes of ``data`` are the image itself (the rest is trailing junk)."""
  format: str
  width: int
  height: int
  mode: str
  image_length: int
  trailing: int = 0
  icc_bytes: int = 0
  exif_bytes: int = 0
  progressive: bool = False


@dataclasses.dataclass(frozen=True)
class Mutation:
  """How a corrupt image was made from a valid one: kind ('truncate', 'idat_flip',
  'zlib_header', 'ihdr_size', 'jpeg_scan_flip'), detail (e.g. the cut offset), the source spec.
  ``truncated`` is True when the file was cut before the end of its end marker (IEND/EOI):
  such a file must be refused by every check, whatever Pillow makes of it."""
  kind: str
  detail: str
  spec: ImageSpec

  @property
  def truncated(self) -> bool:
    return self.kind == 'truncate'


# ---- valid images ----------------------------------------------------------------------------

def pixels(width: int, height: int, mode: str, seed: int = 0) -> Image.Image:
  """A Pillow image of ``mode`` ('1', 'L', 'LA', 'RGB', 'RGBA', 'P', 'I;16', 'CMYK') with
  smooth gradients plus noise (compresses like a photo, not like a flat image)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  base = (xx * 7 + yy * 3) % 256
  noise = rng.integers(0, 40, size=(height, width))
  gray = ((base + noise) % 256).astype(np.uint8)
  if mode == 'I;16':
    return Image.frombytes('I;16', (width, height),
                           ((gray.astype(np.uint16) << 8) | rng.integers(0, 256, gray.shape,
                                                                       dtype=np.uint16))
                           .astype('<u2').tobytes())
  if mode == 'P':
    colours = int(rng.integers(2, 40))  # Pillow writes 1/2/4/8-bit palettes by palette size
    img = Image.fromarray((gray % colours).astype(np.uint8)).convert('P')
    img.putpalette(rng.integers(0, 256, colours * 3, dtype=np.uint8).tobytes())
    return img
  img = Image.fromarray(gray)
  if mode in ('L', '1'):
    return img.convert(mode)
  bands = [Image.fromarray(np.roll(gray, k * 5, axis=1)) for k in range(len(mode))]
  return Image.merge(mode, bands)


def encode(img: Image.Image, fmt: str, **save_kwargs) -> bytes:
  """``img.save`` to bytes ('PNG' or 'JPEG', or any Pillow format)."""
  buf = io.BytesIO()
  img.save(buf, format=fmt, **save_kwargs)
  return buf.getvalue()


def icc_profile(size: int, seed: int = 0) -> bytes:
  """``size`` pseudo-random bytes to embed as an ICC profile (Pillow does not parse it; JPEG
  splits anything over 64 KB into several APP2 segments)."""
  return random.Random(seed).randbytes(size)


def exif(size: int) -> bytes:
  """An EXIF block of about ``size`` bytes (an ImageDescription of that length)."""
  e = Image.Exif()
  e[0x010E] = 'x' * size
  return e.tobytes()


def png_bytes(width: int, height: int, mode: str = 'L', seed: int = 0, trailing: bytes = b'',
              icc: Optional[bytes] = None, exif_block: Optional[bytes] = None) -> bytes:
  """A valid PNG of ``mode`` (see PNG_MODES), optionally with an iCCP / eXIf chunk and
  ``trailing`` bytes after IEND."""
  kwargs = {}
  if icc:
    kwargs['icc_profile'] = icc
  if exif_block:
    kwargs['exif'] = exif_block
  return encode(pixels(width, height, mode, seed), 'PNG', **kwargs) + trailing


def jpeg_bytes(width: int, height: int, mode: str = 'RGB', seed: int = 0, trailing: bytes = b'',
               icc: Optional[bytes] = None, exif_block: Optional[bytes] = None,
               progressive: bool = False, quality: int = 90, **save_kwargs) -> bytes:
  """A valid JPEG of ``mode`` ('L', 'RGB', 'CMYK'), optionally progressive, with an ICC
  profile (any size), EXIF and ``trailing`` bytes after EOI; ``save_kwargs`` go to Pillow
  (e.g. subsampling, optimize, keep_rgb, restart_marker_blocks)."""
  kwargs = {'quality': quality, 'progressive': progressive, **save_kwargs}
  if exif_block:
    kwargs['exif'] = exif_block
  data = encode(pixels(width, height, mode, seed), 'JPEG', **kwargs)
  if icc:  # spliced in: Pillow 12 fails to write a progressive JPEG with a > 64 KB profile
    data = insert_jpeg_segments(data, jpeg_icc_segments(icc))
  return data + trailing


def jpeg_icc_segments(icc: bytes) -> bytes:
  """``icc`` as APP2 'ICC_PROFILE' segments of at most 65519 profile bytes each (the layout
  libjpeg, Pillow and TensorFlow read back)."""
  step = 65519
  parts = [icc[i:i + step] for i in range(0, len(icc), step)]
  return b''.join(
      b'\xff\xe2' + struct.pack('>H', 2 + 14 + len(part)) + b'ICC_PROFILE\x00' +
      bytes([k + 1, len(parts)]) + part for k, part in enumerate(parts))


def insert_jpeg_segments(data: bytes, segments: bytes) -> bytes:
  """``segments`` (whole marker segments) inserted after SOI and any APP0 (JFIF) segment."""
  pos = 2
  if data[2:4] == b'\xff\xe0':
    pos += 2 + struct.unpack_from('>H', data, 4)[0]
  return data[:pos] + segments + data[pos:]


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
  """One PNG chunk: length, type, payload, CRC."""
  return (struct.pack('>I', len(payload)) + ctype + payload +
          struct.pack('>I', zlib.crc32(ctype + payload)))


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # interlace passes: first column, first row, column step, row step


def scanlines(width: int, height: int, bit_depth: int, color_type: int, interlace: bool = False,
              seed: int = 0, filters: Tuple[int, ...] = (0, 1, 2, 3, 4)) -> bytes:
  """Random filtered scanlines for such an image, each row's filter type drawn from
  ``filters`` (any bytes unfilter to some pixels): the uncompressed content of its IDAT stream
  (for Adam7, the seven passes one after another)."""
  rng = np.random.default_rng(seed)
  bits = PNG_CHANNELS[color_type] * bit_depth
  sizes = ([(width, height)] if not interlace else
           [((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in ADAM7])
  out = []
  for w, h in sizes:
    if w > 0 and h > 0:
      rows = rng.integers(0, 256, (h, (w * bits + 7) // 8), dtype=np.uint8)
      kinds = rng.choice(np.array(filters, np.uint8), size=(h, 1))
      out.append(np.concatenate([kinds, rows], axis=1).tobytes())
  return b''.join(out)


def raw_png_bytes(width: int, height: int, bit_depth: int = 8, color_type: int = 0,
                  seed: int = 0, idat_chunks: int = 1, interlace: bool = False,
                  stream: Optional[bytes] = None) -> bytes:
  """A valid PNG built by hand (random filter types), for what Pillow cannot write: 16-bit RGB/LA/
  RGBA, 1/2/4-bit grayscale, Adam7 interlace. ``idat_chunks`` splits the image data; palette
  images (colour type 3) get a full palette. ``stream`` replaces the IDAT content (a deflate
  stream of your making, e.g. one that ends early) -- the file is then valid only in structure.
  """
  rng = np.random.default_rng(seed)
  if stream is None:
    stream = zlib.compress(scanlines(width, height, bit_depth, color_type, interlace, seed), 6)
  compressed = stream
  ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, color_type, 0, 0, int(interlace))
  chunks = [png_chunk(b'IHDR', ihdr)]
  if color_type == 3:
    chunks.append(png_chunk(b'PLTE', rng.integers(0, 256, 3 * 2 ** bit_depth,
                                                  dtype=np.uint8).tobytes()))
  step = max(1, -(-len(compressed) // idat_chunks))
  chunks += [png_chunk(b'IDAT', compressed[i:i + step])
             for i in range(0, len(compressed), step)]
  chunks.append(png_chunk(b'IEND', b''))
  return PNG_SIGNATURE + b''.join(chunks)


def deflate_stream(raw: bytes, end: str = 'normal') -> bytes:
  """``raw`` as a zlib stream for ``raw_png_bytes(stream=...)``; ``end``: 'normal';
  'bad_adler' (the Adler-32 checksum at the end is wrong); 'unterminated' (sync-flushed, no
  final block and no checksum: the stream never ends)."""
  if end == 'unterminated':
    c = zlib.compressobj(6)
    return c.compress(raw) + c.flush(zlib.Z_SYNC_FLUSH)
  stream = zlib.compress(raw, 6)
  if end == 'bad_adler':
    return stream[:-4] + bytes(b ^ 0xFF for b in stream[-4:])
  assert end == 'normal', end
  return stream


def png_scanline_bytes(data: bytes) -> int:
  """How many bytes of filtered scanlines a PNG's IHDR promises (Adam7 passes included)."""
  width, height, depth, color_type, _, _, interlace = struct.unpack_from('>IIBBBBB', data, 16)
  bits = PNG_CHANNELS[color_type] * depth
  passes = [(0, 0, 1, 1)] if not interlace else ADAM7
  sizes = [((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
           for x0, y0, dx, dy in passes]
  return sum(h * (1 + (w * bits + 7) // 8) for w, h in sizes if w > 0 and h > 0)


def png_stream_complete(data: bytes) -> bool:
  """True if the IDAT chunks hold one whole zlib stream (ends, checksum right) with at least
  the scanlines IHDR promises -- stricter than libpng, which only warns about a bad checksum
  or a broken stream once every row is in."""
  idat = b''.join(p for _, t, p in png_chunks(data) if t == b'IDAT')
  try:
    return len(zlib.decompress(idat)) >= png_scanline_bytes(data)
  except zlib.error:
    return False


def pillow_loads(data: bytes) -> bool:
  """The oracle: True if ``Image.open`` + ``load()`` decode every pixel without an error."""
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()
    return True
  except Exception:  # pylint: disable=broad-except
    return False


# ---- PNG surgery ------------------------------------------------------------------------------

def png_chunks(data: bytes) -> List[Tuple[int, bytes, bytes]]:
  """[(offset, type, payload)] of a well-formed PNG, up to and including IEND (bytes after
  IEND are ignored)."""
  assert data.startswith(PNG_SIGNATURE), 'not a PNG'
  out, pos = [], len(PNG_SIGNATURE)
  while pos + 8 <= len(data):
    length, ctype = struct.unpack_from('>I4s', data, pos)
    out.append((pos, ctype, data[pos + 8:pos + 8 + length]))
    pos += 12 + length
    if ctype == b'IEND':
      break
  return out


def build_png(chunks: List[Tuple[bytes, bytes]], trailing: bytes = b'') -> bytes:
  """A PNG from [(type, payload)], each chunk with a correct CRC."""
  return PNG_SIGNATURE + b''.join(png_chunk(t, p) for t, p in chunks) + trailing


def png_end(data: bytes) -> int:
  """Offset just past IEND (the length of the PNG without trailing bytes)."""
  off, _, _ = png_chunks(data)[-1]
  return off + 12


def _replace_chunks(data: bytes, fn) -> bytes:
  """Rebuilds ``data`` with fn(index, type, payload) -> payload on each chunk (CRC recomputed),
  keeping any bytes after IEND."""
  chunks = png_chunks(data)
  body = [(t, fn(i, t, p)) for i, (_, t, p) in enumerate(chunks)]
  return build_png(body, trailing=data[png_end(data):])


def corrupt_png_idat(data: bytes, rnd: random.Random, flips: int = 0) -> bytes:
  """Flips ``flips`` (default 1-4) random bytes of the concatenated IDAT payloads (XOR with a
  non-zero byte) and recomputes the CRCs: the chunk structure stays valid, the deflate stream
  or the filtered pixel rows are damaged (or, by chance, only the pixel values change)."""
  idats = [(i, p) for i, (_, t, p) in enumerate(png_chunks(data)) if t == b'IDAT']
  total = sum(len(p) for _, p in idats)
  targets = {rnd.randrange(total) for _ in range(flips or rnd.randint(1, 4))}
  xor = {t: rnd.randint(1, 255) for t in targets}
  starts, acc = {}, 0
  for i, p in idats:
    starts[i] = acc
    acc += len(p)

  def fn(i, t, p):
    if t != b'IDAT':
      return p
    b = bytearray(p)
    for k, x in xor.items():
      if starts[i] <= k < starts[i] + len(p):
        b[k - starts[i]] ^= x
    return bytes(b)
  return _replace_chunks(data, fn)


def bad_zlib_header(data: bytes) -> bytes:
  """The first IDAT's zlib header (CMF, FLG) replaced by an invalid one, CRC recomputed: every
  inflate fails at once."""
  seen = []

  def fn(i, t, p):
    if t == b'IDAT' and not seen:
      seen.append(i)
      return b'\x78\x00' + p[2:]  # FCHECK wrong: (CMF*256 + FLG) % 31 != 0
    return p
  return _replace_chunks(data, fn)


def png_wrong_size(data: bytes, width: int, height: int) -> bytes:
  """IHDR rewritten to claim ``width`` x ``height`` (CRC recomputed), the image data unchanged:
  larger than the data -> the deflate stream ends early; smaller -> rows misparsed or extra."""
  def fn(i, t, p):
    return struct.pack('>II', width, height) + p[8:] if t == b'IHDR' else p
  return _replace_chunks(data, fn)


def bad_crc(data: bytes, chunk_type: bytes = b'IDAT') -> bytes:
  """The CRC of the first ``chunk_type`` chunk inverted (the payload untouched)."""
  for off, t, p in png_chunks(data):
    if t == chunk_type:
      end = off + 8 + len(p)
      crc = struct.unpack_from('>I', data, end)[0] ^ 0xFFFFFFFF
      return data[:end] + struct.pack('>I', crc) + data[end + 4:]
  raise ValueError(f'no {chunk_type!r} chunk')


def truncate(data: bytes, rnd: random.Random, end: Optional[int] = None) -> bytes:
  """``data`` cut at a random offset in [1, end) where ``end`` (default: all of it) is the end
  of the image's end marker: the result lacks at least the marker's last byte."""
  end = len(data) if end is None else end
  return data[:rnd.randrange(1, end)]


def jpeg_segments(data: bytes) -> List[Tuple[int, int, int]]:
  """[(offset, marker, segment length)] of a well-formed JPEG's header segments, from the
  first after SOI up to and including the first SOS (e.g. 0xC0 = SOF0, 0xE2 = APP2)."""
  out, pos = [], 2
  while True:
    j = data.index(b'\xff', pos)
    m = data[j + 1]
    if m == 0xFF:
      pos = j + 1
      continue
    length = struct.unpack_from('>H', data, j + 2)[0]
    out.append((j, m, length))
    if m == 0xDA:
      return out
    pos = j + 2 + length


def jpeg_end(data: bytes) -> int:
  """Offset just past the first end-of-image marker after the first scan (the JPEG without
  trailing bytes), found by walking the segments."""
  pos, scans = 2, 0
  while True:
    j = data.index(b'\xff', pos)
    m = data[j + 1]
    if m == 0xD9 and scans:
      return j + 2
    if m in (0x00, 0x01, 0xFF) or 0xD0 <= m <= 0xD8:
      pos = j + 1 if m == 0xFF else j + 2
      continue
    scans += m == 0xDA
    pos = j + 2 + struct.unpack_from('>H', data, j + 2)[0]


def corrupt_jpeg_scan(data: bytes, rnd: random.Random, flips: int = 0) -> bytes:
  """XORs ``flips`` (default 1-4) random bytes between the first scan header and the end
  marker: the Huffman-coded data is damaged (libjpeg often only warns)."""
  sos = data.index(b'\xff\xda')
  start = sos + 2 + struct.unpack_from('>H', data, sos + 2)[0]
  stop = jpeg_end(data) - 2
  b = bytearray(data)
  for _ in range(flips or rnd.randint(1, 4)):
    if stop > start:
      b[rnd.randrange(start, stop)] ^= rnd.randint(1, 255)
  return bytes(b)


# ---- hypothesis strategies --------------------------------------------------------------------

@st.composite
def images(draw, formats=('png', 'jpeg'), max_side: int = 48, extras: bool = True):
  """(bytes, ImageSpec): a valid PNG (modes PNG_MODES) or JPEG (JPEG_MODES, maybe progressive)
  of random small size; with ``extras``, maybe trailing bytes after the end marker, a big ICC
  profile (up to 100 KB: several APP2 segments in a JPEG) and/or EXIF."""
  fmt = draw(st.sampled_from(formats))
  width = draw(st.integers(1, max_side))
  height = draw(st.integers(1, max_side))
  seed = draw(st.integers(0, 2 ** 16))
  icc_size = draw(st.sampled_from([0, 0, 200, 70_000, 100_000])) if extras else 0
  exif_size = draw(st.sampled_from([0, 0, 100, 20_000])) if extras else 0
  trailing = draw(st.binary(min_size=0, max_size=64)) if extras else b''
  icc = icc_profile(icc_size, seed) if icc_size else None
  exif_block = exif(exif_size) if exif_size else None
  if fmt == 'png':
    mode = draw(st.sampled_from(PNG_MODES))
    data = png_bytes(width, height, mode, seed, icc=icc, exif_block=exif_block)
    progressive = False
  else:
    mode = draw(st.sampled_from(JPEG_MODES))
    progressive = draw(st.booleans())
    data = jpeg_bytes(width, height, mode, seed, icc=icc, exif_block=exif_block,
                      progressive=progressive)
  spec = ImageSpec(fmt, width, height, mode, len(data), len(trailing), icc_size, exif_size,
                   progressive)
  return data + trailing, spec


@st.composite
def raw_pngs(draw, max_side: int = 32):
  """(bytes, ImageSpec): a valid hand-built PNG (``raw_png_bytes``) of any colour type and bit
  depth, maybe Adam7-interlaced, its data in 1-3 IDAT chunks, random filter types; spec.mode
  is e.g. 'type2-16bit-adam7'."""
  color_type = draw(st.sampled_from(sorted(PNG_BIT_DEPTHS)))
  bit_depth = draw(st.sampled_from(PNG_BIT_DEPTHS[color_type]))
  interlace = draw(st.booleans())
  width, height = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
  data = raw_png_bytes(width, height, bit_depth, color_type, seed=draw(st.integers(0, 2 ** 16)),
                       idat_chunks=draw(st.integers(1, 3)), interlace=interlace)
  mode = f'type{color_type}-{bit_depth}bit' + ('-adam7' if interlace else '')
  return data, ImageSpec('png', width, height, mode, len(data))


@st.composite
def png_mutations(draw, max_side: int = 32):
  """(bytes, Mutation): a valid PNG from ``images`` or ``raw_pngs`` damaged one way -- cut
  before the end of IEND, IDAT bytes flipped (CRC recomputed), an invalid zlib header, or IHDR
  claiming another size than the data holds."""
  data, spec = draw(st.one_of(images(formats=('png',), max_side=max_side),
                              raw_pngs(max_side=max_side)))
  rnd = random.Random(draw(st.integers(0, 2 ** 32)))
  kind = draw(st.sampled_from(['truncate', 'idat_flip', 'zlib_header', 'ihdr_size']))
  if kind == 'truncate':
    bad = truncate(data, rnd, end=spec.image_length)
    detail = f'cut at {len(bad)} of {spec.image_length}'
  elif kind == 'idat_flip':
    bad, detail = corrupt_png_idat(data, rnd), 'IDAT bytes flipped'
  elif kind == 'zlib_header':
    bad, detail = bad_zlib_header(data), 'zlib header'
  else:
    w = draw(st.integers(1, 2 * max_side))
    h = draw(st.integers(1, 2 * max_side))
    bad = png_wrong_size(data, w, h)
    detail = f'IHDR says {w}x{h}, data is {spec.width}x{spec.height}'
  return bad, Mutation(kind, detail, spec)


@st.composite
def jpeg_mutations(draw, max_side: int = 32):
  """(bytes, Mutation): a valid JPEG from ``images`` cut before the end of its EOI marker, or
  with bytes of its scan data flipped."""
  data, spec = draw(images(formats=('jpeg',), max_side=max_side))
  rnd = random.Random(draw(st.integers(0, 2 ** 32)))
  if draw(st.booleans()):
    bad = truncate(data, rnd, end=spec.image_length)
    return bad, Mutation('truncate', f'cut at {len(bad)} of {spec.image_length}', spec)
  return corrupt_jpeg_scan(data, rnd), Mutation('jpeg_scan_flip', 'scan bytes flipped', spec)


# ---- decoder variants -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Variant:
  """A well-formed or unusual PNG/JPEG for the agreement with TensorFlow's decoder.

  ``decodes``: whether ``tf.io.decode_image(data, channels=c, expand_animations=False)``
  succeeds for c = 1 and for c = 3, the Transform's two settings (TensorFlow 2.16: recorded
  here, checked live by test_image_header.py). ``header``: False when only the pixel data
  tells (verify='header' does not decode, so it accepts; verify='full' must agree)."""
  name: str
  data: bytes
  decodes: bool
  header: bool = True


_SOF_MARKERS = frozenset([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                          0xCF, 0xF7])


def _replace_segment(data: bytes, want, fn) -> bytes:
  for off, marker, length in jpeg_segments(data):
    if want(marker):
      seg = bytearray(data[off:off + 2 + length])
      fn(seg)
      return data[:off] + bytes(seg) + data[off + 2 + length:]
  raise ValueError('no such segment')


def jpeg_set_marker(data: bytes, old: int, new: int) -> bytes:
  """The first header segment 0xFF``old`` relabelled 0xFF``new`` (SOF0 -> SOF9: the same frame
  header, another coding process; the scan data is then garbage to the decoder, which libjpeg
  decodes anyway, with warnings: what is tested is the header)."""
  return _replace_segment(data, lambda m: m == old, lambda seg: seg.__setitem__(1, new))


def jpeg_patch_frame(data: bytes, precision: Optional[int] = None,
                     height: Optional[int] = None, width: Optional[int] = None,
                     sampling=(), tables=()) -> bytes:
  """The frame header (SOF) rewritten: sample precision, size, and per component (None: keep)
  sampling factors (h, v) and quantization table; the scan data unchanged."""
  def fn(seg):
    if precision is not None:
      seg[4] = precision
    if height is not None:
      seg[5:7] = struct.pack('>H', height)
    if width is not None:
      seg[7:9] = struct.pack('>H', width)
    for k, hv in enumerate(sampling):
      if hv is not None:
        seg[11 + 3 * k] = hv[0] << 4 | hv[1]
    for k, table in enumerate(tables):
      if table is not None:
        seg[12 + 3 * k] = table
  return _replace_segment(data, lambda m: m in _SOF_MARKERS, fn)


def jpeg_patch_scan(data: bytes, component: int, cid: Optional[int] = None,
                    tables: Optional[int] = None) -> bytes:
  """The first scan header (SOS): its ``component``-th entry's id and/or tables (DC << 4 | AC)."""
  def fn(seg):
    if cid is not None:
      seg[5 + 2 * component] = cid
    if tables is not None:
      seg[6 + 2 * component] = tables
  return _replace_segment(data, lambda m: m == 0xDA, fn)


def drop_jpeg_segments(data: bytes, marker: int) -> bytes:
  """Every header segment 0xFF``marker`` before the first scan removed (e.g. 0xC4: no DHT)."""
  while True:
    for off, m, length in jpeg_segments(data):
      if m == marker:
        data = data[:off] + data[off + 2 + length:]
        break
    else:
      return data


def set_adobe_transform(data: bytes, transform: int) -> bytes:
  """The Adobe (APP14) segment's colour transform set: 0 RGB / CMYK, 1 YCbCr, 2 YCCK."""
  return _replace_segment(data, lambda m: m == 0xEE,
                          lambda seg: seg.__setitem__(len(seg) - 1, transform))


def jpeg_two_components(data: bytes) -> bytes:
  """A 3-component JPEG's frame and first scan cut to their first two components."""
  def frame(seg):
    seg[9] = 2
    del seg[16:19]
    seg[2:4] = struct.pack('>H', len(seg) - 2)

  def scan(seg):
    seg[4] = 2
    del seg[9:11]
    seg[2:4] = struct.pack('>H', len(seg) - 2)
  return _replace_segment(_replace_segment(data, lambda m: m in _SOF_MARKERS, frame),
                          lambda m: m == 0xDA, scan)


def edit_png(data: bytes, fn) -> bytes:
  """A PNG rebuilt from fn([(type, payload)]) -> [(type, payload)], CRCs recomputed, bytes
  after IEND kept."""
  return build_png(fn([(t, p) for _, t, p in png_chunks(data)]), trailing=data[png_end(data):])


def png_insert(data: bytes, where: str, *chunks: Tuple[bytes, bytes]) -> bytes:
  """``chunks`` inserted 'after IHDR', 'before IDAT' (the first) or 'after IDAT' (the last)."""
  def fn(cs):
    types = [t for t, _ in cs]
    at = {'after IHDR': 1, 'before IDAT': types.index(b'IDAT'),
          'after IDAT': len(types) - types[::-1].index(b'IDAT')}[where]
    return cs[:at] + list(chunks) + cs[at:]
  return edit_png(data, fn)


def png_patch_ihdr(data: bytes, **fields: int) -> bytes:
  """IHDR rewritten (CRC recomputed): any of width, height, bit_depth, color_type, compression,
  filter_method, interlace; the image data unchanged."""
  names = ('width', 'height', 'bit_depth', 'color_type', 'compression', 'filter_method',
           'interlace')

  def fn(cs):
    values = dict(zip(names, struct.unpack('>IIBBBBB', cs[0][1])))
    values.update(fields)
    return [(b'IHDR', struct.pack('>IIBBBBB', *(values[n] for n in names)))] + cs[1:]
  return edit_png(data, fn)


def variants(seed: int = 0) -> List[Variant]:
  """Valid and unusual PNGs and JPEGs of a random small size (by ``seed``), each with whether
  TensorFlow 2.16's ``decode_image`` reads it with channels 1 and 3. JPEG: colour spaces (gray,
  YCbCr, Adobe RGB, CMYK, YCCK, 2 components), coding processes (baseline, extended,
  progressive, arithmetic, lossless, hierarchical, JPEG-LS), precisions (8/12/16 bits),
  sampling, tables and markers, libjpeg's size limits. PNG: every colour type, bit depth and
  interlace, transparency (tRNS: palette, gray, RGB), palettes (missing, short, oversized,
  suggested), chunk order rules, unknown chunks, libpng's and TensorFlow's size limits.

  Patched headers leave the scan data as it was: libjpeg decodes garbage data without an error
  (warnings only), so a refusal is the header's doing.
  """
  rnd = random.Random(seed)
  w, h = rnd.randint(8, 48), rnd.randint(8, 48)
  gray, rgb = jpeg_bytes(w, h, 'L', seed), jpeg_bytes(w, h, 'RGB', seed)
  rgb444 = jpeg_bytes(w, h, 'RGB', seed, subsampling=0)
  prog = jpeg_bytes(w, h, 'RGB', seed, progressive=True)
  adobe_rgb = jpeg_bytes(w, h, 'RGB', seed, keep_rgb=True)
  cmyk = jpeg_bytes(w, h, 'CMYK', seed)
  sof = next((off, length) for off, m, length in jpeg_segments(rgb) if m == 0xC0)
  mpo = io.BytesIO()
  pixels(w, h, 'RGB', seed).save(mpo, format='MPO', save_all=True,
                                 append_images=[pixels(w, h, 'RGB', seed + 1)])

  def with_plte(data, payload):
    return edit_png(data, lambda cs: [(t, payload if t == b'PLTE' else p) for t, p in cs])

  def long_frame(seg):  # 3 bytes more than its components need
    seg[2:4] = struct.pack('>H', len(seg) + 1)
    seg += b'\x04\x11\x00'

  jpeg_ok = [
      ('baseline gray', gray), ('baseline RGB 4:2:0', rgb), ('RGB 4:4:4', rgb444),
      ('RGB 4:2:2', jpeg_bytes(w, h, 'RGB', seed, subsampling=1)),
      ('progressive RGB', prog), ('progressive gray', jpeg_bytes(w, h, 'L', seed,
                                                                 progressive=True)),
      ('optimized Huffman tables', jpeg_bytes(w, h, 'RGB', seed, optimize=True)),
      ('restart markers', jpeg_bytes(w, h, 'RGB', seed, restart_marker_blocks=1)),
      ('Adobe RGB (no colour transform)', adobe_rgb),
      ('Adobe transform 2 on 3 components', set_adobe_transform(adobe_rgb, 2)),
      ('ICC profile over 64 KB, EXIF', jpeg_bytes(w, h, 'RGB', seed, exif_block=exif(100),
                                                  icc=icc_profile(70_000, seed))),
      ('bytes after EOI', rgb + b'trailing'), ('MPO (two frames)', mpo.getvalue()),
      ('no DHT: the default Huffman tables', drop_jpeg_segments(rgb, 0xC4)),
      ('SOF1 extended sequential', jpeg_set_marker(rgb, 0xC0, 0xC1)),
      ('SOF9 arithmetic-coded', jpeg_set_marker(rgb, 0xC0, 0xC9)),
      ('SOF10 progressive arithmetic-coded', jpeg_set_marker(prog, 0xC2, 0xCA)),
      ('COM and APP15 segments', insert_jpeg_segments(rgb, b'\xff\xfe\x00\x07hello'
                                                           b'\xff\xef\x00\x04ab')),
      ('RST and DNL markers before the frame', insert_jpeg_segments(
          rgb, b'\xff\xd0\xff\xdc\x00\x04\x00\x01')),
      ('bytes between segments', insert_jpeg_segments(rgb, b'junk')),
      ('sampling Y 1x1, chroma 2x2', jpeg_patch_frame(rgb444, sampling=[(1, 1), (2, 2), (2, 2)])),
      ('sampling Y 4x2: 10 blocks per MCU', jpeg_patch_frame(rgb, sampling=[(4, 2)])),
      ('sampling Y 3x2', jpeg_patch_frame(rgb, sampling=[(3, 2)])),
      ('sampling Y 2x2, Cb 1x1, Cr 2x1', jpeg_patch_frame(rgb, sampling=[None, None, (2, 1)])),
      ('gray sampled 4x4', jpeg_patch_frame(gray, sampling=[(4, 4)])),
      ('Huffman tables 1 for luma', jpeg_patch_scan(rgb, 0, tables=0x11)),
      ('quantization table 1 for luma', jpeg_patch_frame(rgb, tables=[1])),
      ('65500 pixels wide', jpeg_bytes(65500, 2, 'L', seed)),
  ]
  jpeg_refused = [
      ('CMYK', cmyk), ('CMYK progressive', jpeg_bytes(w, h, 'CMYK', seed, progressive=True)),
      ('YCCK (Adobe transform 2)', set_adobe_transform(cmyk, 2)),
      ('CMYK without an Adobe segment', drop_jpeg_segments(cmyk, 0xEE)),
      ('2 components', jpeg_two_components(rgb444)),
      ('12-bit SOF1', jpeg_patch_frame(jpeg_set_marker(gray, 0xC0, 0xC1), precision=12)),
      ('12-bit SOF0', jpeg_patch_frame(rgb, precision=12)),
      ('16-bit SOF1', jpeg_patch_frame(jpeg_set_marker(gray, 0xC0, 0xC1), precision=16)),
      *[(f'SOF{m - 0xC0} frame', jpeg_set_marker(rgb, 0xC0, m))
        for m in (0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF)],
      ('JPEG-LS frame (SOF55)', jpeg_set_marker(gray, 0xC0, 0xF7)),
      *[(f'reserved marker 0xFF{m:02X}', insert_jpeg_segments(rgb, bytes([0xFF, m, 0, 4, 1, 2])))
        for m in (0xC8, 0xDE, 0xDF, 0xF0, 0xF8, 0xFD)],
      ('height 0 (DNL)', jpeg_patch_frame(rgb, height=0)),
      ('width 0', jpeg_patch_frame(rgb, width=0)),
      ('65501 pixels wide', jpeg_patch_frame(gray, width=65501)),
      ('65501 pixels high', jpeg_patch_frame(gray, height=65501)),
      ('gray 32768x16384 = 2^29 values', jpeg_patch_frame(gray, width=32768, height=16384)),
      ('RGB 13378x13378 >= 2^29 values', jpeg_patch_frame(rgb, width=13378, height=13378)),
      ('fractional sampling (Y 3x1, Cb 2x1)', jpeg_patch_frame(
          rgb, sampling=[(3, 1), (2, 1), (1, 1)])),
      ('11 blocks per MCU (Y 3x3)', jpeg_patch_frame(rgb, sampling=[(3, 3)])),
      ('sampling factor 5', jpeg_patch_frame(rgb, sampling=[(5, 1)])),
      ('sampling factor 0', jpeg_patch_frame(rgb, sampling=[(0, 1)])),
      ('quantization table 4', jpeg_patch_frame(rgb, tables=[4])),
      ('undefined quantization table', jpeg_patch_frame(rgb, tables=[3])),
      ('no DQT', drop_jpeg_segments(rgb, 0xDB)),
      ('scan names an unknown component', jpeg_patch_scan(rgb, 0, cid=9)),
      ('scan names a component twice', jpeg_patch_scan(rgb, 1, cid=rgb[sof[0] + 10])),
      ('undefined Huffman table', jpeg_patch_scan(rgb, 0, tables=0x22)),
      ('progressive without DHT', drop_jpeg_segments(prog, 0xC4)),
      ('second SOI', insert_jpeg_segments(rgb, b'\xff\xd8')),
      ('second SOF', insert_jpeg_segments(rgb, rgb[sof[0]:sof[0] + 2 + sof[1]])),
      ('DQT index 4', insert_jpeg_segments(rgb, b'\xff\xdb\x00\x43\x04' + bytes(range(1, 65)))),
      ('DHT index 4', insert_jpeg_segments(rgb, b'\xff\xc4\x00\x14\x04\x01' + bytes(16))),
      ('DRI of length 5', insert_jpeg_segments(rgb, b'\xff\xdd\x00\x05\x00\x01\x00')),
      ('frame header 3 bytes too long', _replace_segment(rgb, lambda m: m == 0xC0, long_frame)),
  ]
  out = [Variant('JPEG ' + name, data, True) for name, data in jpeg_ok]
  out += [Variant('JPEG ' + name, data, False) for name, data in jpeg_refused]

  for ct, depths in PNG_BIT_DEPTHS.items():
    for depth in depths:
      for interlace in (False, True):
        out.append(Variant(f'PNG colour type {ct}, {depth}-bit' + (', Adam7' * interlace),
                           raw_png_bytes(w, h, depth, ct, seed, 2, interlace), True))
  pal, gray8 = raw_png_bytes(w, h, 8, 3, seed), raw_png_bytes(w, h, 8, 0, seed)
  rgb8 = raw_png_bytes(w, h, 8, 2, seed)
  pal2 = raw_png_bytes(w, h, 2, 3, seed, interlace=True)
  apng = io.BytesIO()
  pixels(w, h, 'RGBA', seed).save(apng, format='PNG', save_all=True,
                                  append_images=[pixels(w, h, 'RGBA', seed + 1)])
  plte = (b'PLTE', bytes(range(12)))
  text = (b'tEXt', b'k\x00v')

  png_ok = [
      *[(f'Pillow {mode}', png_bytes(w, h, mode, seed)) for mode in PNG_MODES + ('1',)],
      ('Pillow palette with transparency', encode(pixels(w, h, 'P', seed), 'PNG',
                                                  transparency=0)),
      ('palette with tRNS', png_insert(pal, 'before IDAT', (b'tRNS', bytes(range(0, 256, 3))))),
      ('2-bit palette, Adam7, tRNS', png_insert(pal2, 'before IDAT', (b'tRNS', b'\x00\x80'))),
      ('gray with tRNS', png_insert(gray8, 'after IHDR', (b'tRNS', b'\x00\x10'))),
      ('16-bit gray with tRNS', png_insert(raw_png_bytes(w, h, 16, 0, seed), 'after IHDR',
                                          (b'tRNS', b'\x10\x10'))),
      ('RGB with tRNS', png_insert(rgb8, 'after IHDR', (b'tRNS', bytes([0, 16] * 3)))),
      ('16-bit RGB, Adam7, tRNS', png_insert(raw_png_bytes(w, h, 16, 2, seed, interlace=True),
                                            'after IHDR', (b'tRNS', bytes([0, 16] * 3)))),
      ('tRNS too long (ignored)', png_insert(gray8, 'after IHDR', (b'tRNS', bytes(10)))),
      ('tRNS before PLTE (ignored)', png_insert(pal, 'after IHDR', (b'tRNS', b'\x00'))),
      ('palette shorter than its indices', with_plte(pal, bytes(range(12)))),
      ('2-bit palette of 16 entries', with_plte(pal2, bytes(48))),
      ('suggested palette in RGB', png_insert(rgb8, 'before IDAT', plte)),
      ('RGB palette of 10 bytes (ignored)', png_insert(rgb8, 'before IDAT', (b'PLTE', bytes(10)))),
      ('RGB palette after the image data (ignored)', png_insert(rgb8, 'after IDAT', plte)),
      ('palette in grayscale (ignored)', png_insert(gray8, 'after IHDR', plte)),
      ('unknown ancillary chunks', png_insert(gray8, 'before IDAT', (b'abCd', b'x'),
                                              (b'abcd', b'y'))),
      ('APNG', apng.getvalue()),
      ('iCCP and eXIf', png_bytes(w, h, 'RGB', seed, icc=icc_profile(300, seed),
                                  exif_block=exif(100))),
      ('IEND with data (ignored)', edit_png(gray8, lambda cs: cs[:-1] + [(b'IEND', b'xx')])),
      ('empty IDAT chunks', png_insert(png_insert(gray8, 'before IDAT', (b'IDAT', b'')),
                                       'after IDAT', (b'IDAT', b''))),
      ('IDAT after another chunk (ignored)', png_insert(gray8, 'after IDAT', text,
                                                        (b'IDAT', b'junk'))),
      ('bytes after IEND', gray8 + b'trailing'),
      ('1,000,000 pixels wide', raw_png_bytes(1_000_000, 1, 1, 0, seed)),
      ('1,000,000 pixels high', raw_png_bytes(1, 1_000_000, 1, 0, seed)),
  ]
  png_refused = [
      ('palette without PLTE', edit_png(pal, lambda cs: [c for c in cs if c[0] != b'PLTE'])),
      ('palette PLTE after the image data', edit_png(
          pal, lambda cs: [cs[0]] + cs[2:-1] + [cs[1], cs[-1]])),
      *[(f'palette PLTE of {n} bytes', with_plte(pal, bytes(n))) for n in (0, 10, 771)],
      ('RGB PLTE of 0 bytes', png_insert(rgb8, 'before IDAT', (b'PLTE', b''))),
      ('second PLTE in gray', png_insert(gray8, 'after IHDR', plte, plte)),
      ('second PLTE in RGB, after the image data', png_insert(
          png_insert(rgb8, 'before IDAT', plte), 'after IDAT', plte)),
      ('second PLTE in a palette image', png_insert(pal, 'before IDAT', plte)),
      ('second IHDR', edit_png(gray8, lambda cs: cs[:1] + cs)),
      ('second IHDR after the image data', edit_png(gray8, lambda cs: cs[:-1] + cs[:1] + cs[-1:])),
      ('IHDR of 14 bytes', edit_png(gray8, lambda cs: [(b'IHDR', cs[0][1] + b'\x00')] + cs[1:])),
      ('unknown critical chunk', png_insert(gray8, 'before IDAT', (b'ABCD', b'x'))),
      ('unknown critical chunk after the image data', png_insert(gray8, 'after IDAT',
                                                                 (b'AbCd', b'x'))),
      ('CgBI (Apple) chunk', png_insert(gray8, 'after IHDR', (b'CgBI', b'\x50\x00\x20\x06'))),
      ('bad IEND CRC', gray8[:-4] + bytes(4)),
      ('1,000,001 pixels wide', raw_png_bytes(1_000_001, 1, 1, 0, seed)),
      ('1,000,001 pixels high', raw_png_bytes(1, 1_000_001, 1, 0, seed)),
      ('32768x16384 = 2^29 pixels', png_patch_ihdr(gray8, width=32768, height=16384)),
      ('width 0', png_patch_ihdr(gray8, width=0)),
      ('RGB at 4 bits', png_patch_ihdr(rgb8, bit_depth=4)),
      ('16-bit palette', png_patch_ihdr(pal, bit_depth=16)),
      ('gray at 3 bits', png_patch_ihdr(gray8, bit_depth=3)),
      ('colour type 5', png_patch_ihdr(gray8, color_type=5)),
      ('compression method 1', png_patch_ihdr(gray8, compression=1)),
      ('filter method 1', png_patch_ihdr(gray8, filter_method=1)),
      ('interlace method 2', png_patch_ihdr(gray8, interlace=2)),
  ]
  out += [Variant('PNG ' + name, data, True) for name, data in png_ok]
  out += [Variant('PNG ' + name, data, False) for name, data in png_refused]
  # Only the pixel data tells: the image data cut in two by another chunk (libpng reads the
  # first run of IDAT chunks, which ends early).
  split = raw_png_bytes(w, h, 8, 0, seed, idat_chunks=2)
  out.append(Variant('PNG image data split by another chunk', edit_png(
      split, lambda cs: cs[:2] + [text] + cs[2:]), False, header=False))
  return out


def big_variants() -> List[Variant]:
  """The allowed side of TensorFlow's 2^29 limits: real images of just under 2^29 values
  (decoded: 0.5 GB as grayscale, 1.6 GB as RGB). The refused side is in ``variants``."""
  return [
      Variant('PNG 1-bit 32767x16384 (2^29 - 16384 pixels)', raw_png_bytes(
          32767, 16384, 1, 0, stream=zlib.compress(bytes(16384 * 4097), 9)), True),
      Variant('JPEG gray 23170x23170 (< 2^29 values)',
              encode(Image.new('L', (23170, 23170), 128), 'JPEG'), True),
      Variant('JPEG RGB 13377x13377 (< 2^29 values)',
              encode(Image.new('RGB', (13377, 13377), (9, 99, 199)), 'JPEG'), True),
  ]
