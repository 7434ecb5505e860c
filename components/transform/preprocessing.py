"""The preprocessing_fn: decode the image, decode the mask only when present, one shape.

Referenced by module path (``components.transform.config.PREPROCESSING_FN``), so KFP runs it
from the container image and no wheel is built at compile time.
"""
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf

from components import features
from components.transform import config as config_lib


def decode_image(data: tf.Tensor, size: Sequence[int], channels: int) -> tf.Tensor:
  """PNG (8/16-bit; gray, gray+alpha, RGB, RGBA, palette) or JPEG bytes -> float32 [H, W, C].

  Pixels are scaled to [0, 1] by the source's bit depth (x / 255 or x / 65535), converted to
  ``channels`` (RGB -> gray by luma, gray -> RGB by copying, alpha dropped), then resized
  bilinearly to ``size`` (no antialiasing: ``tf.image.resize``'s default).
  """
  image = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
  image = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR)
  image = tf.clip_by_value(image, 0.0, 1.0)
  return tf.ensure_shape(image, [size[0], size[1], channels])


def decode_mask(data: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
  """Mask bytes -> float32 [H, W, 1] in {0, 1}: zeros when ``data`` is empty, otherwise one
  channel, nearest-neighbour resize to ``size`` and non-zero -> 1. Both branches have the
  output size, so masked and unmasked records batch together."""

  def decoded():
    mask = tf.io.decode_image(data, channels=1, expand_animations=False)  # uint8 or uint16
    mask = tf.image.resize(mask, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return tf.cast(mask > 0, tf.float32)

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
