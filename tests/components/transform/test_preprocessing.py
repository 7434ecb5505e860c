"""The decode functions on real PNG/JPEG bytes: seed parity, bit depths, modes, one shape."""
import io

import numpy as np
from PIL import Image
import pytest

from components.transform.config import ConfigError
from components.transform.config import TransformConfig

SIZE = (256, 256)


def _encode(array, fmt='PNG', mode=None):
  buf = io.BytesIO()
  Image.fromarray(array, mode=mode).save(buf, format=fmt)
  return buf.getvalue()


def _xray(shape=(299, 299), seed=0):
  rng = np.random.RandomState(seed)
  y, x = np.mgrid[:shape[0], :shape[1]]
  return (128 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.randint(0, 20, shape)).clip(
      0, 255).astype(np.uint8)


def test_gray_image_equals_the_seeds_decode_png_over_255_after_the_same_resize():
  import tensorflow as tf

  from components.transform.preprocessing import decode_image
  data = _encode(_xray())
  seed = tf.cast(tf.io.decode_png(data, channels=3), tf.float32) / 255.0  # the seed's decode
  for channels in (1, 3):
    ours = decode_image(tf.constant(data), SIZE, channels).numpy()
    expected = tf.image.resize(seed[..., :channels], SIZE).numpy()
    assert ours.shape == (256, 256, channels) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-6)
  same_size = decode_image(tf.constant(data), (299, 299), 1).numpy()[..., 0]
  np.testing.assert_allclose(same_size, _xray() / 255.0, atol=1e-6)  # no resize: exact pixels


def test_16_bit_rgb_rgba_palette_and_jpeg_inputs():
  import tensorflow as tf

  from components.transform.preprocessing import decode_image
  gray16 = np.full((40, 30), 65535 // 4, np.uint16)
  out = decode_image(tf.constant(_encode(gray16, mode='I;16')), (40, 30), 1).numpy()
  np.testing.assert_allclose(out, 0.25, atol=1e-4)  # scaled by 65535, not 255
  rgb = np.zeros((20, 20, 3), np.uint8)
  rgb[..., 0] = 255
  out3 = decode_image(tf.constant(_encode(rgb)), (20, 20), 3).numpy()
  np.testing.assert_allclose(out3[..., 0], 1.0)
  np.testing.assert_allclose(out3[..., 1:], 0.0)
  out1 = decode_image(tf.constant(_encode(rgb)), (20, 20), 1).numpy()
  assert out1.shape == (20, 20, 1) and 0.2 < out1.mean() < 0.4  # luma of pure red
  rgba = np.dstack([rgb, np.full((20, 20), 128, np.uint8)])
  assert decode_image(tf.constant(_encode(rgba)), (8, 8), 3).shape == (8, 8, 3)
  palette = Image.fromarray(_xray((20, 20))).convert('P')
  buf = io.BytesIO()
  palette.save(buf, format='PNG')
  assert decode_image(tf.constant(buf.getvalue()), (8, 8), 1).shape == (8, 8, 1)
  jpeg = _encode(_xray((64, 64)), fmt='JPEG')
  expected = tf.image.resize(tf.cast(tf.io.decode_jpeg(jpeg, channels=1), tf.float32) / 255,
                             SIZE).numpy()
  np.testing.assert_allclose(decode_image(tf.constant(jpeg), SIZE, 1).numpy(), expected,
                             atol=1e-6)


def test_masks_are_zeros_when_absent_and_binary_nearest_when_present():
  import tensorflow as tf

  from components.transform.preprocessing import decode_mask
  absent = decode_mask(tf.constant(b''), SIZE).numpy()
  assert absent.shape == (256, 256, 1) and not absent.any()
  mask = np.zeros((256, 256), np.uint8)
  mask[50:200, 30:120] = 255
  present = decode_mask(tf.constant(_encode(mask)), SIZE).numpy()
  assert set(np.unique(present)) == {0.0, 1.0}
  np.testing.assert_array_equal(present[..., 0], (mask > 0).astype(np.float32))
  small = decode_mask(tf.constant(_encode(mask[::2, ::2])), SIZE).numpy()  # 128 -> 256
  assert set(np.unique(small)) == {0.0, 1.0} and small.shape == (256, 256, 1)


def test_a_batch_mixing_masked_and_unmasked_records_has_one_shape():
  """The seed's failure: its zero mask took the image's 299x299 while real masks are 256x256."""
  import tensorflow as tf

  from components.transform.preprocessing import transform_batch
  mask = _encode(np.full((256, 256), 255, np.uint8))
  batch = {'image': tf.constant([[_encode(_xray())], [_encode(_xray(seed=1))]]),
           'mask': tf.constant([[mask], [b'']]), 'class': tf.constant([[1], [3]], tf.int64),
           'image_id': tf.constant([[b'a'], [b'b']])}
  out = transform_batch(batch, TransformConfig())
  assert out['image'].shape == (2, 256, 256, 1) and out['mask'].shape == (2, 256, 256, 1)
  assert out['has_mask'].numpy().tolist() == [1, 0]
  assert out['mask'].numpy()[0].all() and not out['mask'].numpy()[1].any()
  assert out['class'].numpy().tolist() == [1, 3]


def test_config_validation_and_round_trip():
  assert TransformConfig(image_size=128).image_size == (128, 128)
  config = TransformConfig(image_size=(224, 192), channels=3)
  assert TransformConfig.from_custom_config(config.to_custom_config()) == config
  with pytest.raises(ConfigError, match='--channels'):
    TransformConfig(channels=2)
  with pytest.raises(ConfigError, match='--image-size'):
    TransformConfig(image_size=(0, 10))
