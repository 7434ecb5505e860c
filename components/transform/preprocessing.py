"""The preprocessing_fn: decode the image, decode the mask only when present, one shape.

Referenced by module path (``components.transform.config.PREPROCESSING_FN``), so KFP runs it
from the container image and no wheel is built at compile time.

Cost per record (bench/read_variants.py): the PNG decode dominates. Around it, nothing is
computed that does not change the output: an image is decoded at 8 bits unless it is a 16-bit
PNG, resized while its values are still integers and scaled to [0, 1] after (on the output
size), and neither an image nor a mask is resized when it already has the output size (a
bilinear or nearest-neighbour resize to the same size is the identity). Images are those of a
16-bit decode to float, resized, within float32 rounding (1e-6); masks are bit-identical.
"""
from typing import Any, Callable, Dict, Optional, Sequence

import tensorflow as tf

from components import features
from components.transform import config as config_lib

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# A PNG starts with its signature and the IHDR chunk: length (4 bytes), type (4), width (4),
# height (4), bit depth (1), ... (libpng refuses a file whose first chunk is not IHDR).
_PNG_BIT_DEPTH_AT = 24


def _is_16_bit_png(data: tf.Tensor) -> tf.Tensor:
  """bool scalar: ``data`` is a 16-bit PNG, whose pixels an 8-bit decode would round.

  Any other image decodes at 8 bits to the pixels of a 16-bit decode divided by 257 exactly,
  in every PNG colour type and bit depth (also RGB or palette read as gray, tRNS, Adam7) and
  with ``channels`` 1 or 3 (test_preprocessing_equality.py holds TensorFlow's decoder to it);
  JPEG is 8-bit.
  """
  # substr from 0 never fails; decode_raw pads a short item with zeros (its decode then fails).
  head = tf.io.decode_raw(tf.strings.substr(data, 0, _PNG_BIT_DEPTH_AT + 1), tf.uint8,
                          fixed_length=_PNG_BIT_DEPTH_AT + 1)
  is_png = tf.reduce_all(tf.equal(head[:len(_PNG_SIGNATURE)],
                                  tf.constant(list(_PNG_SIGNATURE), tf.uint8)))
  return tf.logical_and(is_png, tf.equal(head[_PNG_BIT_DEPTH_AT], 16))


def _unless_same_size(image: tf.Tensor, size: Sequence[int],
                      resize: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
  """``resize(image)``, or ``image`` itself when it already is ``size`` (height, width)."""
  same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(size, tf.int32)))
  return tf.cond(same, lambda: image, lambda: resize(image))


def decode_image(data: tf.Tensor, size: Sequence[int], channels: int) -> tf.Tensor:
  """PNG (8/16-bit; gray, gray+alpha, RGB, RGBA, palette) or JPEG bytes -> float32 [H, W, C].

  Pixels are scaled to [0, 1] by the source's bit depth (x / 255 or x / 65535), converted to
  ``channels`` (RGB -> gray by luma, gray -> RGB by copying, alpha dropped), then resized
  bilinearly to ``size`` (no antialiasing: ``tf.image.resize``'s default; none when the image
  already has ``size``).
  """

  def at(dtype: tf.DType, scale: float) -> Callable[[], tf.Tensor]:
    def decode():
      image = tf.io.decode_image(data, channels=channels, dtype=dtype, expand_animations=False)
      # Integer values as float32 (exact); the resize interpolates them as it would the
      # integers (ResizeBilinear computes in float32), faster on float32 input.
      image = tf.cast(image, tf.float32)
      image = _unless_same_size(image, size, lambda x: tf.image.resize(
          x, size, method=tf.image.ResizeMethod.BILINEAR))
      return image * scale
    return decode

  image = tf.cond(_is_16_bit_png(data), at(tf.uint16, 1.0 / 65535.0), at(tf.uint8, 1.0 / 255.0))
  # Clipped from above only: the resize's float32 lerps a + (b - a) * t (a, b >= 0, 0 <= t < 1)
  # never round below 0, and the scale is positive; rounding can lift a value just over 1.
  image = tf.minimum(image, 1.0)
  return tf.ensure_shape(image, [size[0], size[1], channels])


def decode_mask(data: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """Mask bytes -> float32 [H, W, 1] in {0, 1}: zeros when ``data`` is empty, otherwise one
  channel, nearest-neighbour resize to ``size`` (none when the mask already has ``size``) and
  non-zero -> 1. Both branches have the output size, so masked and unmasked records batch
  together."""

  def decoded():
    mask = tf.io.decode_image(data, channels=1, expand_animations=False)  # uint8
    mask = _unless_same_size(mask, size, lambda x: tf.image.resize(
        x, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR))
    return tf.cast(tf.cast(mask, tf.bool), tf.float32)  # non-zero -> 1 (a unary op: cheaper)

  mask = tf.cond(tf.strings.length(data) > 0, decoded,
                 lambda: tf.zeros([size[0], size[1], 1], tf.float32))
  return tf.ensure_shape(mask, [size[0], size[1], 1])


def transform_batch(inputs: Dict[str, tf.Tensor],
                    config: config_lib.TransformConfig) -> Dict[str, tf.Tensor]:
  """Raw batch (each feature [B, 1] or [B]) -> the outputs of ``config_lib.OUTPUTS``."""
  size, channels = config.image_size, config.channels
  images = tf.reshape(inputs[features.IMAGE], [-1])
  masks = tf.reshape(inputs[features.MASK], [-1])
  return {
      config_lib.IMAGE: tf.map_fn(
          lambda b: decode_image(b, size, channels), images,
          fn_output_signature=tf.TensorSpec([size[0], size[1], channels], tf.float32)),
      config_lib.MASK: tf.map_fn(
          lambda b: decode_mask(b, size), masks,
          fn_output_signature=tf.TensorSpec([size[0], size[1], 1], tf.float32)),
      config_lib.HAS_MASK: tf.cast(tf.strings.length(masks) > 0, tf.int64),
      config_lib.LABEL: tf.reshape(inputs[features.LABEL], [-1]),
      config_lib.IMAGE_ID: tf.reshape(inputs[features.IMAGE_ID], [-1]),
  }


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
  """tf.Transform entry point; ``custom_config`` is ``TransformConfig.to_custom_config()``."""
  return transform_batch(inputs, config_lib.TransformConfig.from_custom_config(custom_config))
