"""The preprocessing_fn gives the outputs of the one it replaced, kept below as the reference:
images within 1e-6 (and in [0, 1]), masks bit-identical, ``has_mask``, ``class`` and
``image_id`` equal.

Through real Transform graphs (tf.Transform traces both functions; the layer make_dataset and
the served model apply) on the demo data's PNGs (299x299 8-bit images, 256x256 masks) and
variants of them (16-bit, RGB, RGBA, palette, JPEG; masks missing, 16-bit, smaller), with the
default size, and with ``--channels 3`` at the images' own size (no resize). Then the decode
functions alone on every PNG colour type and bit depth.
"""
import functools
import io
import os

import numpy as np
from PIL import Image
import pytest

from tests.support import corrupt_images

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
DEFAULT = {'image_size': [256, 256], 'channels': 1}
SAME_SIZE_RGB = {'image_size': [299, 299], 'channels': 3}  # the demo images' size


# ---- the reference: the preprocessing_fn replaced, verbatim but for the names -------------

def _reference_decode_image(data, size, channels):
  import tensorflow as tf
  image = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
  image = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR)
  image = tf.clip_by_value(image, 0.0, 1.0)
  return tf.ensure_shape(image, [size[0], size[1], channels])


def _reference_decode_mask(data, size):
  import tensorflow as tf

  def decoded():
    mask = tf.io.decode_image(data, channels=1, expand_animations=False)  # uint8 or uint16
    mask = tf.image.resize(mask, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return tf.cast(mask > 0, tf.float32)

  mask = tf.cond(tf.strings.length(data) > 0, decoded,
                 lambda: tf.zeros([size[0], size[1], 1], tf.float32))
  return tf.ensure_shape(mask, [size[0], size[1], 1])


def _reference_preprocessing_fn(inputs, custom_config=None):
  import tensorflow as tf

  from components.transform import config as config_lib
  config = config_lib.TransformConfig.from_custom_config(custom_config)
  size, channels = config.image_size, config.channels
  images = tf.reshape(inputs['image'], [-1])
  masks = tf.reshape(inputs['mask'], [-1])
  return {
      'image': tf.map_fn(
          lambda b: _reference_decode_image(b, size, channels), images,
          fn_output_signature=tf.TensorSpec([size[0], size[1], channels], tf.float32)),
      'mask': tf.map_fn(
          lambda b: _reference_decode_mask(b, size), masks,
          fn_output_signature=tf.TensorSpec([size[0], size[1], 1], tf.float32)),
      'has_mask': tf.cast(tf.strings.length(masks) > 0, tf.int64),
      'class': tf.reshape(inputs['class'], [-1]),
      'image_id': tf.reshape(inputs['image_id'], [-1]),
  }


# ---- inputs ----------------------------------------------------------------------------------

def _png(img: Image.Image) -> bytes:
  return corrupt_images.encode(img, 'PNG')


def _sixteen_bit(values: np.ndarray) -> Image.Image:
  return Image.frombytes('I;16', values.shape[::-1], values.astype('<u2').tobytes())


def _low_byte_noise(gray: np.ndarray) -> np.ndarray:
  """An 8-bit array as 16-bit values whose low bytes are noise (an 8-bit decode rounds them)."""
  low = np.random.default_rng(0).integers(0, 256, gray.shape, dtype=np.uint16)
  return (gray.astype(np.uint16) << 8) | low


def _colour(gray: np.ndarray, mode: str) -> Image.Image:
  bands = [Image.fromarray(np.roll(gray, 7 * k, axis=1)) for k in range(len(mode))]
  return Image.merge(mode, bands)


@pytest.fixture(scope='module')
def records(demo_dataset):
  """[(name, image bytes, mask bytes)]: the demo data's first records as written, then variants
  of their pixels in other encodings."""
  from tests.support.testutil import read_csv_rows
  rows = read_csv_rows(demo_dataset.csv_path)
  read = lambda path: open(os.path.join(demo_dataset.root, path), 'rb').read() if path else b''
  demo = [(r['image_path'], read(r['image_path']), read(r['mask_path'])) for r in rows[:6]]
  gray = np.asarray(Image.open(io.BytesIO(demo[0][1])))
  mask = np.asarray(Image.open(io.BytesIO(next(m for _, _, m in demo if m))))
  assert gray.shape == (299, 299) and gray.dtype == np.uint8 and mask.shape == (256, 256)
  # 16-bit mask values: 65535 inside, 0..299 outside (an 8-bit decode rounds some to 0, some
  # to 1: either way, as the reference does).
  mask16 = np.where(mask > 0, 65535, np.arange(mask.size).reshape(mask.shape) % 300)
  variants = [
      ('16-bit gray', _png(_sixteen_bit(_low_byte_noise(gray))), _png(_sixteen_bit(mask16))),
      ('RGB', _png(_colour(gray, 'RGB')), _png(_colour(mask, 'RGB'))),
      ('RGBA', _png(_colour(gray, 'RGBA')), b''),
      ('gray + alpha', _png(_colour(gray, 'LA')), _png(Image.fromarray(mask[::2, ::2]))),
      ('palette', _png(Image.fromarray(gray).convert('P')), _png(Image.fromarray(mask[:200]))),
      ('JPEG', corrupt_images.encode(Image.fromarray(gray), 'JPEG'),
       corrupt_images.encode(Image.fromarray(mask), 'JPEG')),
      ('16-bit RGB', corrupt_images.raw_png_bytes(299, 299, 16, 2), b''),
  ]
  return demo + variants


def _write_graph(preprocessing_fn, custom_config, root, name):
  """A TransformGraph as TFX's Transform writes it: the traced function and the raw schema."""
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata
  from tensorflow_transform.tf_metadata import metadata_io
  with open(os.path.join(REPO, 'schemas', 'schema.pbtxt')) as f:
    metadata = dataset_metadata.DatasetMetadata(text_format.Parse(f.read(), schema_pb2.Schema()))
  graph = str(root / name)
  with tft_beam.Context(temp_dir=str(root / 'tmp'), force_tf_compat_v1=False):
    transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(
        functools.partial(preprocessing_fn, custom_config=custom_config))
    _ = transform_fn | tft_beam.WriteTransformFn(graph)
  metadata_io.write_metadata(metadata, os.path.join(graph, 'metadata'))
  return tft.TFTransformOutput(graph)


@pytest.fixture(scope='module')
def graphs(tmp_path_factory):
  """{config name: (reference TransformGraph, current TransformGraph)}."""
  from components.transform import preprocessing
  root = tmp_path_factory.mktemp('equality')
  return {name: (_write_graph(_reference_preprocessing_fn, config, root, f'{name}-reference'),
                 _write_graph(preprocessing.preprocessing_fn, config, root, f'{name}-current'))
          for name, config in (('default', DEFAULT), ('same size, RGB', SAME_SIZE_RGB))}


def _assert_equal(expected, actual, names, what):
  """Images within 1e-6, everything else identical, per record (its name in the message)."""
  assert sorted(expected) == sorted(actual), what
  for key in expected:
    e, a = expected[key].numpy(), actual[key].numpy()
    assert e.dtype == a.dtype and e.shape == a.shape, (what, key)
    for name, x, y in zip(names, e, a):
      if key == 'image':
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-6, err_msg=f'{what}: {name}')
        assert 0 <= y.min() and y.max() <= 1, f'{what}: {name}'
      else:
        np.testing.assert_array_equal(y, x, err_msg=f'{what}: {key} of {name}')


@pytest.mark.parametrize('config', ['default', 'same size, RGB'])
def test_the_transform_graph_gives_the_reference_graphs_outputs(records, graphs, config):
  """What make_dataset applies (every raw feature) and what the served model applies (the
  image alone: the layer prunes the graph to it)."""
  import tensorflow as tf
  reference, current = (g.transform_features_layer() for g in graphs[config])
  names = [n for n, _, _ in records]
  raw = {'image': tf.constant([[i] for _, i, _ in records]),
         'mask': tf.constant([[m] for _, _, m in records]),
         'class': tf.constant([[k % 4] for k in range(len(records))], tf.int64),
         'image_id': tf.constant([[n.encode()] for n in names])}
  expected, actual = reference(raw), current(raw)
  size = SAME_SIZE_RGB['image_size'] if config != 'default' else DEFAULT['image_size']
  assert actual['image'].shape[1:3] == size and actual['mask'].shape[1:3] == size
  assert 0 < actual['has_mask'].numpy().sum() < len(records)
  _assert_equal(expected, actual, names, f'{config}, training')
  serving = {'image': raw['image']}
  _assert_equal(reference(serving), current(serving), names, f'{config}, serving')


_PNG_KINDS = [(depth, colour) for colour, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)),
                                                     (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16)))
              for depth in depths]


def _all_kinds():
  """(name, bytes): every PNG colour type and bit depth (plain and Adam7), tRNS, JPEG."""
  out = [(f'PNG depth {d} colour type {c}{" Adam7" if i else ""}',
          corrupt_images.raw_png_bytes(37, 23, d, c, seed=d + c, interlace=i))
         for d, c in _PNG_KINDS for i in (False, True)]
  for mode, transparency in (('L', 7), ('RGB', (1, 2, 3)), ('P', 0)):
    buf = io.BytesIO()
    corrupt_images.pixels(31, 17, mode, seed=2).save(buf, 'PNG', transparency=transparency)
    out.append((f'PNG {mode} with tRNS', buf.getvalue()))
  out += [(f'JPEG {m}', corrupt_images.jpeg_bytes(40, 30, m)) for m in ('L', 'RGB')]
  return out


def test_every_png_kind_decodes_to_the_references_pixels():
  """Sizes: down, up on one side, and the image's own (no resize); channels 1 and 3. Also holds
  what decode_image relies on: below 16 bits, an 8-bit decode is the 16-bit one / 257."""
  import tensorflow as tf

  from components.transform.preprocessing import decode_image
  for name, data in _all_kinds():
    height, width = Image.open(io.BytesIO(data)).size[::-1]
    for channels in (1, 3):
      for size in ((16, 16), (height, 2 * width), (height, width)):
        expected = _reference_decode_image(tf.constant(data), size, channels).numpy()
        actual = decode_image(tf.constant(data), size, channels).numpy()
        assert actual.shape == expected.shape == (*size, channels)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6,
                                   err_msg=f'{name}, channels {channels}, size {size}')
        assert 0 <= actual.min() and actual.max() <= 1, (name, channels, size)


def test_masks_are_bit_identical_to_the_references():
  import tensorflow as tf

  from components.transform.preprocessing import decode_mask
  for name, data in _all_kinds() + [('empty', b'')]:
    own = Image.open(io.BytesIO(data)).size[::-1] if data else (5, 5)
    for size in ((16, 16), (40, 80), own):
      expected = _reference_decode_mask(tf.constant(data), size).numpy()
      actual = decode_mask(tf.constant(data), size).numpy()
      assert actual.dtype == np.float32 and actual.shape == (*size, 1)
      np.testing.assert_array_equal(actual, expected, err_msg=f'{name}, size {size}')
