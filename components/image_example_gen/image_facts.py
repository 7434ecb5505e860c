"""What the workers learn from an image's pixels, on the one decode that verified it (pure: NumPy).

Per image: its perceptual fingerprint (``perceptual.py``: near-duplicate grouping), its quality
measures (``quality.py``: dark, light, blurry, low information, ...) and its non-anatomical
properties (``shortcut.py``: size, mode, intensity, border and corner statistics, which must not
predict the class). The fingerprint is written into the image's record; the measures and
properties travel with the row to the deal, which turns them into findings per class and split
and the shortcut-risk assessment.
"""
import dataclasses
import json
from typing import Any, Dict

_DIGITS = 5  # measures and properties are rounded: the plan stays small and deterministic


@dataclasses.dataclass(frozen=True)
class ImageFacts:
  fingerprint: str  # perceptual.Fingerprint.to_text()
  measures: Dict[str, float]  # quality.measure
  properties: Dict[str, float]  # shortcut.properties

  def encode(self) -> str:
    """The measures and properties as one compact JSON text (the row's ``measures``)."""
    return json.dumps({'q': self.measures, 'p': self.properties}, sort_keys=True,
                      separators=(',', ':'))


def decode_measures(text: str) -> Dict[str, Dict[str, float]]:
  """A row's ``measures`` text -> {'q': quality measures, 'p': properties} ({} when empty)."""
  return json.loads(text) if text else {}


def measure(pixels: Any, width: int, height: int, mode: str, bit_depth: int,
            file_format: str) -> ImageFacts:
  """The facts of one decoded image (``image_header.Decoded.pixels``)."""
  # NumPy work, imported by the workers that measure (not by the launcher or the CLI)
  import numpy as np

  from components.image_example_gen import perceptual
  from components.image_example_gen import quality
  from components.image_example_gen import shortcut
  image = np.asarray(pixels)
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[:, :, 0]
  # uint8 grey (the common case) is measured as decoded; anything else as float grey.
  grey = image if quality.is_grey8(image) else perceptual.to_grey(image)
  summary = quality.summarise(grey)  # the strided sample, its histogram and moments: shared

  def rounded(values: Dict[str, float]) -> Dict[str, float]:
    return {k: round(float(v), _DIGITS) for k, v in sorted(values.items())}

  return ImageFacts(
      perceptual.fingerprint(grey).to_text(),
      rounded(quality.measure(grey, width, height, mode, summary)),
      rounded(shortcut.properties(grey, width, height, mode, bit_depth, file_format, summary)))
