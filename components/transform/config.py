"""Transform's configuration and output names (pure: no TensorFlow import)."""
import dataclasses
from typing import Any, Dict, Tuple, Union

from components import features
from components.errors import ConfigError

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




@dataclasses.dataclass(frozen=True)
class TransformConfig:
  """How records are decoded, and what the Transform component writes.

  Attributes:
    image_size: (height, width) of every output image and mask (or one int for a square).
    channels: 1 (grayscale) or 3 (RGB) channels of the output image; masks always have 1.
    materialize: write transformed examples. Off by default: a decoded 256x256x1 float image is
      256 KB (x3 for RGB), about 5.5 GB (16.5 GB) for the 21,165 real images, against about
      0.8 GB of PNG bytes; training applies the graph at read time with ``make_dataset``.
    disable_statistics: skip TFDV statistics over raw and transformed features inside
      Transform (StatisticsGen already profiled the raw data; the decoded tensors are pixels).
  """
  image_size: Union[int, Tuple[int, int]] = DEFAULT_IMAGE_SIZE
  channels: int = DEFAULT_CHANNELS
  materialize: bool = False
  disable_statistics: bool = True

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
    if self.channels not in (1, 3):
      raise ConfigError(f'channels must be 1 or 3, got {self.channels!r} (option --channels).')
    for name in ('materialize', 'disable_statistics'):
      if not isinstance(getattr(self, name), bool):
        raise ConfigError(f'{name} must be True or False, got {getattr(self, name)!r}.')

  def to_custom_config(self) -> Dict[str, Any]:
    return {IMAGE_SIZE_KEY: list(self.image_size),  # type: ignore[arg-type]  # a tuple by now
            CHANNELS_KEY: self.channels}

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> 'TransformConfig':
    custom_config = custom_config or {}
    return cls(image_size=tuple(custom_config.get(IMAGE_SIZE_KEY, DEFAULT_IMAGE_SIZE)),
               channels=int(custom_config.get(CHANNELS_KEY, DEFAULT_CHANNELS)))
