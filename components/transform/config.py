"""Transform's configuration and output names (pure: no TensorFlow import)."""
import argparse
import dataclasses
from typing import Any, Dict, Tuple, Union

from components import features
from components import options
from components.errors import ConfigError
from components.options import option

# Outputs of preprocessing_fn (the transformed features).
IMAGE = features.IMAGE  # float32 [H, W, C] in [0, 1]
MASK = features.MASK  # float32 [H, W, 1] in {0, 1}; zeros when the record has no mask
HAS_MASK = 'has_mask'  # int64: 1 if the record had a mask
LABEL = features.LABEL  # int64 class
IMAGE_ID = features.IMAGE_ID  # string key
OUTPUTS = (IMAGE, MASK, HAS_MASK, LABEL, IMAGE_ID)

# custom_config keys (Transform serialises custom_config as JSON).
IMAGE_SIZE_KEY = 'image_size'  # [height, width]
CHANNELS_KEY = 'channels'  # 1 or 3

DEFAULT_IMAGE_SIZE = (256, 256)  # the real masks' size
DEFAULT_CHANNELS = 1  # the X-rays are grayscale
PREPROCESSING_FN = 'components.transform.preprocessing.preprocessing_fn'  # module path


def parse_image_size(text: str) -> Tuple[int, int]:
  """'256x256' (height x width) -> (256, 256); an argparse type."""
  try:
    height, width = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected HxW, e.g. 256x256, got {text!r}') from None
  return height, width


@dataclasses.dataclass(frozen=True)
class TransformConfig:
  """How records are decoded, and what the Transform component writes: one field per option,
  its help line (``option``) says what it does (components/options.py). The image size and
  channels travel in Transform's custom_config (``to_custom_config``), not as exec properties.
  """
  image_size: Union[int, Tuple[int, int]] = option(
      DEFAULT_IMAGE_SIZE, flag='--image-size', metavar='HxW', exec_property=False,
      parse=lambda text: parse_image_size(text), show=lambda size: 'x'.join(map(str, size)),
      help="size (height x width) of every decoded image and mask (default %(default)s: the "
           "masks' size; one int in Python: a square)")
  channels: int = option(
      DEFAULT_CHANNELS, flag='--channels', kind=int, choices=(1, 3), exec_property=False,
      help='channels of the decoded image: 1 grayscale, 3 RGB; masks always have 1 (default '
           '%(default)s: grayscale)')
  materialize: bool = option(
      False, flag='--materialize', exec_property=False,
      help='also write transformed examples (decoded float pixels: about 0.26 MB per '
           '256x256x1 image, 5.5 GB for the 21,165 real images); default: graph only, applied '
           'at read time by make_dataset')
  disable_statistics: bool = option(
      True, exec_property=False,
      help='skip TFDV statistics over raw and transformed features inside Transform '
           '(StatisticsGen already profiled the raw data; the decoded tensors are pixels)')

  def __post_init__(self):
    size = self.image_size
    if isinstance(size, int) and not isinstance(size, bool):
      size = (size, size)
    size = tuple(size) if isinstance(size, (list, tuple)) else None
    if (size is None or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192
                   for v in size)):
      raise ConfigError(f'image_size must be (height, width) of ints in 1..8192, got '
                        f'{self.image_size!r} (option --image-size).')
    object.__setattr__(self, 'image_size', size)
    options.validate(self)

  def to_custom_config(self) -> Dict[str, Any]:
    return {IMAGE_SIZE_KEY: list(self.image_size),  # type: ignore[arg-type]  # a tuple by now
            CHANNELS_KEY: self.channels}

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> 'TransformConfig':
    custom_config = custom_config or {}
    return cls(image_size=tuple(custom_config.get(IMAGE_SIZE_KEY, DEFAULT_IMAGE_SIZE)),
               channels=int(custom_config.get(CHANNELS_KEY, DEFAULT_CHANNELS)))
