"""What a lung mask must be (pure: NumPy on the pixels of the one decode, run by the Beam workers
on the bytes written).

A mask decodes; it is single-channel (or an RGB/LA/P image whose colour channels are equal, which
TensorFlow's ``decode_png(channels=1)`` turns into the same grey values); it is binary: every
pixel is 0 or the mask's one foreground value; and it has the image's size, or the declared mask
size (the COVID-19 Radiography Database ships 299x299 images with 256x256 masks). An all-zero
mask is binary but worth counting: it is reported per class, never refused.

``--mask-check warn`` (the default) records the findings in the ingest summary and ClassBalance's
report; ``fail`` makes every finding except EMPTY a bad record; ``off`` skips the decode.
"""
from typing import Any, List, Optional, Sequence, Tuple, TYPE_CHECKING

if TYPE_CHECKING:  # config imports this module, and image_header imports config
  from components.image_example_gen import image_header as header_lib

# Finding codes: keys of the per-class counts in the ingest summary (summary.mask_checks).
MASKS = 'masks'  # masks present (a count, not a finding)
EMPTY = 'empty'  # every pixel 0
NOT_BINARY = 'not_binary'
NOT_SINGLE_CHANNEL = 'not_single_channel'
SIZE_MISMATCH = 'size_mismatch'
UNDECODABLE = 'undecodable'
FINDINGS = (EMPTY, NOT_BINARY, NOT_SINGLE_CHANNEL, SIZE_MISMATCH, UNDECODABLE)
REFUSED = frozenset(FINDINGS) - {EMPTY}  # what --mask-check fail turns into bad records
COUNT_KEYS = (MASKS,) + FINDINGS


def new_counts() -> dict:
  return {k: 0 for k in COUNT_KEYS}


def check_mask(mask: bytes, mask_header: Optional['header_lib.ImageHeader'],
               image_header: Optional['header_lib.ImageHeader'],
               declared_size: Sequence[int] = (), pixels: Any = None
               ) -> Tuple[Tuple[str, str], ...]:
  """-> ((finding code, reason), ...) for one mask; () for a good, non-empty mask.

  Args:
    mask: the mask file's bytes (already read and header-checked by files.read_image).
    mask_header, image_header: their headers (sizes); None skips the size comparison.
    declared_size: (width, height) every mask may have instead of its image's size.
    pixels: the mask's pixels from the decode that verified it (``image_header.decode_image``
      with verify 'full'); None: that decode runs here (the one decode of the mask either way).
  """
  import numpy as np

  from components.image_example_gen import image_header as decoder
  found = []
  if mask_header is not None and image_header is not None:
    size = (mask_header.width, mask_header.height)
    allowed: List[Tuple[int, ...]] = [(image_header.width, image_header.height)]
    if declared_size:
      allowed.append(tuple(declared_size))
    if size not in allowed:
      hint = (f'the declared mask size is {declared_size[0]}x{declared_size[1]}'
              if declared_size else
              f'if all masks have this size, declare it: --mask-size {size[0]}x{size[1]}')
      found.append((SIZE_MISMATCH, f'mask is {size[0]}x{size[1]} but its image is '
                                   f'{image_header.width}x{image_header.height} ({hint})'))
  if pixels is None:
    try:
      pixels = decoder.decode_image(mask, verify=decoder.VERIFY_FULL).pixels
    except decoder.BadImage as e:
      found.append((UNDECODABLE, f'mask does not decode: {e}'))
      return tuple(found)
  if pixels.ndim == 3:  # colour (RGB, RGBA, palette expanded, grey + alpha as RGBA)
    colour = pixels[..., :3]
    pixels = colour[..., 0]
    if not (colour == pixels[..., None]).all():
      mode = mask_header.mode if mask_header is not None else 'colour'
      found.append((NOT_SINGLE_CHANNEL,
                    f'mask is a colour ({mode}) image whose channels differ; expected a '
                    'single-channel (grayscale) mask'))
      return tuple(found)
  top = pixels.max() if pixels.size else 0
  if not top:
    found.append((EMPTY, 'mask is empty: every pixel is 0'))
  else:
    other = int(np.count_nonzero((pixels != 0) & (pixels != top)))
    if other:
      found.append((NOT_BINARY, f'mask is not binary: {other} of {pixels.size} pixels are '
                                f'neither 0 nor its foreground value {top}'))
  return tuple(found)


def parse_size(text: str) -> Tuple[int, ...]:
  """'256x256' -> (256, 256); '' -> (). ValueError on anything else."""
  if not text:
    return ()
  width, sep, height = text.lower().partition('x')
  if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
    raise ValueError(f'expected WIDTHxHEIGHT, e.g. 256x256, got {text!r}')
  return int(width), int(height)
