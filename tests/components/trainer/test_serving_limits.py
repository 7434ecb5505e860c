"""The served SavedModel under hostile and degenerate requests (issue #29, defects 6 and 9): a
decompression-bomb image is refused from its header, before anything is decoded, with an
error naming the limit and the item's size; an empty batch gives empty outputs.

The model is real and small: the repository's preprocessing_fn traced into a Transform graph
by tf.Transform (Beam, no data: it has no analyzers), the template model at 32x32 with 2
filters (untrained), exported by ``export_serving_model`` and loaded back -- a few seconds
after TensorFlow's import.
"""
import functools
import io
import os
import re
import struct
import time
import zlib

import numpy as np
from PIL import Image
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
SIZE = 32
CLASS_NAMES = {0: 'a', 1: 'b'}
BOMB = 20000  # the issue's PNG: 20000x20000, ~390 KB of zero rows


def _chunk(kind, body):
  return (struct.pack('>I', len(body)) + kind + body
          + struct.pack('>I', zlib.crc32(body, zlib.crc32(kind))))


def zero_png(width, height):
  """An 8-bit grayscale PNG of zeros, written by hand (IHDR, one IDAT, IEND): the IDAT is
  compressed a block of rows at a time, so a 20000x20000 one costs ~1 s and no 400 MB."""
  z = zlib.compressobj(9)
  row = bytes(width + 1)  # filter byte 0, then the row
  step = max(1, min(height, (8 << 20) // len(row)))
  idat = b''.join(z.compress(row * min(step, height - y)) for y in range(0, height, step))
  return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0,
                                                                0, 0, 0))
          + _chunk(b'IDAT', idat + z.flush()) + _chunk(b'IEND', b''))


def jpeg(width=48, height=40):
  out = io.BytesIO()
  Image.fromarray(np.full((height, width), 128, np.uint8)).save(out, 'JPEG')
  return out.getvalue()


def jpeg_saying(width, height):
  """A small real JPEG whose frame header (SOF0) is rewritten to say width x height."""
  data = bytearray(jpeg())
  sof = data.index(b'\xff\xc0')
  struct.pack_into('>HH', data, sof + 5, height, width)
  return bytes(data)


def _rss_kb():
  status = open('/proc/self/status').read()
  return {k: int(re.search(rf'{k}:\s+(\d+)', status).group(1)) for k in ('VmRSS', 'VmHWM')}


def peak_growth(fn):
  """(fn's result or the exception it raised, seconds, bytes the peak RSS rose above the RSS
  before it): the kernel's high-water mark is reset first (Linux /proc/self/clear_refs)."""
  if not os.access('/proc/self/clear_refs', os.W_OK):
    pytest.skip('needs Linux /proc/self/clear_refs to measure the peak RSS of one call')
  before = _rss_kb()['VmRSS']
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
  start = time.perf_counter()
  try:
    result = fn()
  except Exception as e:  # pylint: disable=broad-except  (returned for the caller to check)
    result = e
  seconds = time.perf_counter() - start
  return result, seconds, (_rss_kb()['VmHWM'] - before) * 1024


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """(export dir, tf.saved_model.load of it): the real export of a small untrained model."""
  from google.protobuf import text_format
  import tensorflow as tf
  from tensorflow_metadata.proto.v0 import schema_pb2
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata
  from tensorflow_transform.tf_metadata import metadata_io

  from components.trainer import export
  from components.trainer import model as model_lib
  from components.transform import preprocessing
  root = tmp_path_factory.mktemp('serving_limits')
  with open(os.path.join(REPO, 'schemas', 'schema.pbtxt')) as f:
    metadata = dataset_metadata.DatasetMetadata(text_format.Parse(f.read(), schema_pb2.Schema()))
  graph = str(root / 'transform_graph')
  preprocessing_fn = functools.partial(preprocessing.preprocessing_fn,
                                       custom_config={'image_size': [SIZE, SIZE], 'channels': 1})
  with tft_beam.Context(temp_dir=str(root / 'tmp'), force_tf_compat_v1=False):
    transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
    _ = transform_fn | tft_beam.WriteTransformFn(graph)
  metadata_io.write_metadata(metadata, os.path.join(graph, 'metadata'))  # as TFX's Transform
  model = model_lib.build_model((SIZE, SIZE, 1), len(CLASS_NAMES), filters=2)
  path = export.export_serving_model(model, tft.TFTransformOutput(graph), CLASS_NAMES,
                                     str(root / 'model'))
  return path, tf.saved_model.load(path)


def test_the_issues_png_bomb_is_refused_from_its_header_without_decoding(exported):
  """Before: served, 1.7 s and +2.4 GB of peak RSS for one item (a batch of four aborted the
  process). Now: refused in milliseconds, the peak RSS as it was, and the next request served."""
  import tensorflow as tf

  from components.trainer import export
  serve = exported[1].signatures['serving_default']
  bomb = zero_png(BOMB, BOMB)
  assert len(bomb) < 400_000
  good = zero_png(64, 48)
  serve(image=tf.constant([good]))  # warm: the graph runs once before measuring
  for batch, bad in (([bomb], [0]), ([good, bomb, bomb, bomb, bomb], [1, 2, 3, 4])):
    request = tf.constant(batch)
    error, seconds, grew = peak_growth(functools.partial(serve, image=request))
    assert isinstance(error, tf.errors.InvalidArgumentError), error
    expected = (f'request items larger than the serving limit of {export.MAX_SERVING_PIXELS} '
                f'pixels (MAX_SERVING_PIXELS, saved with the model as max_image_pixels): batch '
                f'indices {", ".join(map(str, bad))} are '
                f'{", ".join(["20000x20000"] * len(bad))} pixels (width x height); downscale '
                'them before sending')
    assert expected in error.message, error.message
    assert seconds < 5 and grew < (64 << 20), (seconds, grew)
  out = serve(image=tf.constant([good]))
  assert out['class_probabilities'].shape == (1, len(CLASS_NAMES))


def test_the_limit_is_saved_with_the_model_and_applies_at_the_limit(exported):
  import tensorflow as tf

  from components.trainer import export
  loaded = exported[1]
  assert export.MAX_SERVING_PIXELS == 4096 * 4096
  assert int(loaded.max_image_pixels.numpy()) == export.MAX_SERVING_PIXELS
  serve = loaded.signatures['serving_default']
  at_limit, _, grew = peak_growth(lambda: serve(image=tf.constant([zero_png(4096, 4096)])))
  assert at_limit['class_id'].shape == (1,), at_limit  # served: 16,777,216 pixels
  over = [zero_png(4097, 4096), jpeg_saying(4097, 4096), jpeg_saying(65000, 65000)]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'batch indices 0, 1, 2 are 4097x4096, 4097x4096, 65000x65000 '):
    serve(image=tf.constant(over))
  # a real JPEG and PNG are sized from their headers and served
  out = serve(image=tf.constant([jpeg(), zero_png(30, 20)]))
  assert out['class_name'].shape == (2,)


def test_sizes_are_read_from_headers_and_malformed_requests_fail_as_before(exported):
  import tensorflow as tf

  from components.trainer import export
  images = tf.constant([zero_png(30, 20), jpeg(48, 40), jpeg_saying(7, 9), zero_png(1, 1)])
  assert export.encoded_image_sizes(images).numpy().tolist() == [[30, 20], [48, 40], [7, 9],
                                                                  [1, 1]]
  assert export.encoded_image_sizes(tf.constant([], tf.string)).shape == (0, 2)
  checked = export.check_pixel_limit(images, tf.constant(48 * 40, tf.int64))  # at the limit
  assert checked.shape == (4,)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'limit of 599 pixels .*: batch indices 0, 1 are 30x20, 48x40 pixels'):
    export.check_pixel_limit(images, tf.constant(599, tf.int64))
  serve = exported[1].signatures['serving_default']
  # not an image: the format check answers first, the size check never reads it
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'not PNG or JPEG image bytes \(batch indices\):\] \[1 2\]'):
    serve(image=tf.constant([zero_png(8, 8), b'not an image', b'']))
  with pytest.raises(tf.errors.InvalidArgumentError, match='Invalid PNG'):
    serve(image=tf.constant([zero_png(8, 8)[:40]]))  # a PNG cut short: its decoder's error
  with pytest.raises(tf.errors.InvalidArgumentError):  # a JPEG cut before its frame header
    serve(image=tf.constant([jpeg()[:20]]))


def test_an_empty_batch_gives_empty_outputs(exported):
  """Before: "input depth must be evenly divisible by filter depth: 1 vs 2" from the model's
  convolution. Now: N = 0 items in, 0 answers out, in the shapes of any batch."""
  import tensorflow as tf
  loaded = exported[1]
  for name, key in (('serving_default', 'image'), ('from_examples', 'examples')):
    out = loaded.signatures[name](**{key: tf.constant([], tf.string)})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        'class_probabilities': (0, len(CLASS_NAMES)), 'class_id': (0,), 'class_name': (0,),
        'mask': (0, SIZE, SIZE, 1)}, name
    assert [v.dtype for _, v in sorted(out.items())] == [tf.int64, tf.string, tf.float32,
                                                         tf.float32]


def test_a_session_based_loader_refuses_too_and_answers_an_empty_batch(exported):
  """What TF Serving does: the SignatureDef run in a TF1 session, the limit restored from the
  variables."""
  import tensorflow as tf
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.load(session, ['serve'], exported[0])
    signature = meta_graph.signature_def['serving_default']
    feed = signature.inputs['image'].name
    fetch = {k: v.name for k, v in signature.outputs.items()}
    empty = session.run(fetch, {feed: np.array([], object)})
    assert empty['class_probabilities'].shape == (0, len(CLASS_NAMES))
    assert empty['mask'].shape == (0, SIZE, SIZE, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match='larger than the serving limit'):
      session.run(fetch, {feed: [zero_png(5000, 4000)]})
    one = session.run(fetch, {feed: [zero_png(64, 48)]})
    assert one['class_probabilities'].shape == (1, len(CLASS_NAMES))
