"""The served SavedModel: raw image bytes -> the Transform graph -> the model -> predictions.

``tf.saved_model.save`` of a ``tf.Module`` holding the Keras model and the Transform layer,
with two explicit signatures (works whatever Keras the model uses):

* ``serving_default(image: string [B])``: PNG (8- or 16-bit) or JPEG file bytes, one per
  request item, exactly what ImageExampleGen stored in ``image``;
* ``from_examples(examples: string [B])``: serialized tf.Examples, parsed with the schema's
  SERVING feature spec (only ``image`` is read): the Evaluator's signature.

Both return ``class_probabilities`` float32 [B, K], ``class_id`` int64 [B], ``class_name``
string [B] and ``mask`` float32 [B, H, W, 1] (per-pixel lung probability at the Transform's
image size). The class names, in the order of ``class_probabilities``, are also in
``assets.extra/class_names.json``. Bytes that are not PNG or JPEG fail the request with an
InvalidArgumentError naming the item; corrupt data inside a PNG/JPEG fails it with the decoder's
InvalidArgumentError. Either way the request fails, not the process.

**Pixel limit** (issue #29, defect 6). A decoder allocates what the image's header says: a
389 KB PNG saying 20000x20000 took 2.4 GB to serve, and a batch of four aborted the process
(std::bad_alloc). So every item's size is read from its header before anything is decoded
(``encoded_image_sizes``: a PNG's IHDR, a JPEG's SOF through ``tf.image.extract_jpeg_shape``)
and a request holding an item of more than ``MAX_SERVING_PIXELS`` pixels fails with an
InvalidArgumentError naming the limit, the items and their sizes; the next request is served.
The limit is saved with the model (the ``max_image_pixels`` variable; ``export_serving_model``'s
``max_pixels``).

**An empty batch** (defect 9) returns empty outputs of the usual shapes ([0, K], [0], [0],
[0, H, W, 1]) without running the model (whose convolutions failed on it with "input depth must
be evenly divisible by filter depth"): a batch of N items gives N answers, N = 0 included, so a
client that sends what is left of a list needs no special case, and nothing is wrong with it.
"""
import json
import os
from typing import Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import config as config_lib
from components.transform import config as transform_config
from components.transform.input_fn import serving_feature_spec

_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_JPEG_MAGIC = b'\xff\xd8\xff'

# The most pixels (width x height) one request item may have: 4096 x 4096. Serving decodes an
# item to its full size (uint8/uint16, then a float32 copy) before resizing it to the
# Transform's size, and the Transform's map_fn decodes up to 10 items of a batch at once.
# Measured with the default 256x256 Transform, a 4096x4096 PNG adds about 80 MB to the peak
# RSS (280 MB with --channels 3) and a batch of ten 450 MB (940 MB); the 20000x20000
# PNG added 2.4 GB alone. Ingest's --max-pixels default (50,000,000) would allow 3 times these.
# 4096 x 4096 holds every chest radiograph format (the largest, 35x43 cm CR at 100 um, is
# 3520 x 4280 = 15.1 MP), and the model sees 256x256 of it: a larger image is downscaled by
# the client first.
MAX_SERVING_PIXELS = 4096 * 4096


def check_encoded_images(images: tf.Tensor) -> tf.Tensor:
  """``images`` (string [B]) once every item starts like a PNG or a JPEG file; otherwise an
  InvalidArgumentError listing the offending batch indices."""
  ok = tf.logical_or(tf.equal(tf.strings.substr(images, 0, len(_PNG_MAGIC)), _PNG_MAGIC),
                     tf.equal(tf.strings.substr(images, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC))
  check = tf.debugging.Assert(
      tf.reduce_all(ok),
      ['request items that are not PNG or JPEG image bytes (batch indices):',
       tf.reshape(tf.where(tf.logical_not(ok)), [-1])], summarize=16)
  with tf.control_dependencies([check]):
    return tf.identity(images)


def _big_endian_u32(head: tf.Tensor, start: int) -> tf.Tensor:
  return tf.add_n([head[:, start + k] * (1 << (8 * (3 - k))) for k in range(4)])


def encoded_image_sizes(images: tf.Tensor) -> tf.Tensor:
  """int64 [B, 2]: (width, height) of each item of ``images`` (string [B], each a PNG or a
  JPEG: ``check_encoded_images``), from its header, nothing decoded. PNG: the IHDR chunk, which
  must come first (libpng refuses anything else), its width and height big-endian at bytes
  16..23. JPEG: ``tf.image.extract_jpeg_shape``, libjpeg reading the markers up to the frame
  header as the decoder does (a header it cannot read fails as the decoder would)."""
  is_png = tf.equal(tf.strings.substr(images, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
  # substr from 0 never fails; decode_raw pads a short item with zeros (its decode fails later)
  head = tf.cast(tf.io.decode_raw(tf.strings.substr(images, 0, 24), tf.uint8, fixed_length=24),
                 tf.int64)
  png = tf.stack([_big_endian_u32(head, 16), _big_endian_u32(head, 20)], axis=1)

  def jpeg_size(item):
    data, png_item = item
    return tf.cond(png_item, lambda: tf.zeros([2], tf.int64),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(data)[1::-1], tf.int64))

  jpeg = tf.map_fn(jpeg_size, (images, is_png),
                   fn_output_signature=tf.TensorSpec([2], tf.int64))
  return tf.where(is_png[:, tf.newaxis], png, jpeg)


def check_pixel_limit(images: tf.Tensor, max_pixels: tf.Tensor) -> tf.Tensor:
  """``images`` (string [B] of PNG/JPEG bytes) once no item's header says more than
  ``max_pixels`` (int64 scalar) pixels; otherwise an InvalidArgumentError naming the limit,
  the items' batch indices and their sizes, raised before anything is decoded."""
  sizes = encoded_image_sizes(images)
  too_large = sizes[:, 0] * sizes[:, 1] > max_pixels
  items = tf.reshape(tf.where(too_large), [-1])[:16]
  named = tf.gather(tf.strings.as_string(sizes), items)
  message = tf.strings.join([
      'request items larger than the serving limit of ', tf.strings.as_string(max_pixels),
      ' pixels (MAX_SERVING_PIXELS, saved with the model as max_image_pixels): batch indices ',
      tf.strings.reduce_join(tf.strings.as_string(items), separator=', '), ' are ',
      tf.strings.reduce_join(tf.strings.join([named[:, 0], named[:, 1]], 'x'), separator=', '),
      ' pixels (width x height); downscale them before sending (the model sees them at its '
      'input size)'])
  check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(too_large)), [message])
  with tf.control_dependencies([check]):
    return tf.identity(images)


class ServingModule(tf.Module):
  """What is saved: the model, the Transform layer, the class names and the signatures."""

  def __init__(self, model: tf.Module, tf_transform_output: tft.TFTransformOutput,
               class_names: Mapping[int, str], max_pixels: int = MAX_SERVING_PIXELS):
    super().__init__(name='cxr_serving')
    if max_pixels < 1:
      raise ValueError(f'max_pixels must be a positive number of pixels, got {max_pixels}')
    self.model = model
    self.tft_layer = tf_transform_output.transform_features_layer()
    self._request_spec = serving_feature_spec(tf_transform_output)
    if set(self._request_spec) != {features.IMAGE}:
      raise ValueError(f'the schema\'s SERVING environment must hold only {features.IMAGE!r}, '
                       f'got {sorted(self._request_spec)} (schemas/schema.pbtxt)')
    self._class_names = tf.constant([class_names[k] for k in range(len(class_names))])
    self.max_image_pixels = tf.Variable(max_pixels, dtype=tf.int64, trainable=False,
                                        name='max_image_pixels')
    spec = tf_transform_output.transformed_feature_spec()[transform_config.IMAGE]
    self._mask_size = [int(d) for d in spec.shape[:2]]  # the model's input (and mask) size

  def _predict(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
    encoded = check_encoded_images(tf.reshape(encoded, [-1]))
    encoded = check_pixel_limit(encoded, self.max_image_pixels)
    return tf.cond(tf.size(encoded) > 0, lambda: self._predict_batch(encoded), self._empty)

  def _empty(self) -> Dict[str, tf.Tensor]:
    """The outputs of a batch of 0 items, shaped as any batch's."""
    height, width = self._mask_size
    return {config_lib.PROBABILITIES: tf.zeros([0, self._class_names.shape[0]], tf.float32),
            config_lib.CLASS_ID: tf.zeros([0], tf.int64),
            config_lib.CLASS_NAME: tf.zeros([0], tf.string),
            config_lib.MASK_OUTPUT: tf.zeros([0, height, width, 1], tf.float32)}

  def _predict_batch(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
    transformed = self.tft_layer({features.IMAGE: tf.reshape(encoded, [-1, 1])})
    outputs = self.model(transformed[transform_config.IMAGE], training=False)
    probabilities = tf.nn.softmax(outputs[config_lib.CLASS_HEAD], axis=-1)
    class_id = tf.argmax(probabilities, axis=-1)
    return {config_lib.PROBABILITIES: probabilities,
            config_lib.CLASS_ID: class_id,
            config_lib.CLASS_NAME: tf.gather(self._class_names, class_id),
            config_lib.MASK_OUTPUT: tf.sigmoid(outputs[config_lib.MASK_HEAD])}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=config_lib.IMAGE_INPUT)])
  def serve_images(self, image):
    return self._predict(image)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name=config_lib.EXAMPLES_INPUT)])
  def serve_examples(self, examples):
    raw = tf.io.parse_example(examples, self._request_spec)
    return self._predict(raw[features.IMAGE])


def export_serving_model(model: tf.Module, tf_transform_output: tft.TFTransformOutput,
                         class_names: Mapping[int, str], export_dir: str,
                         max_pixels: Optional[int] = None) -> str:
  """Saves the SavedModel with both signatures to ``export_dir`` and returns it; request
  items of more than ``max_pixels`` (default ``MAX_SERVING_PIXELS``) pixels are refused."""
  module = ServingModule(model, tf_transform_output, class_names,
                         MAX_SERVING_PIXELS if max_pixels is None else max_pixels)
  signatures = {
      config_lib.SERVING_SIGNATURE: module.serve_images.get_concrete_function(),
      config_lib.EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
  }
  # Track the tf.Variables the signatures read, as Keras's own ExportArchive does: a Keras 3
  # model's variables are wrappers, and without this a session-based loader (saved_model_cli,
  # TF Serving) finds no variable to restore ("Could not find variable conv2d/kernel").
  used = {}
  for function in signatures.values():
    for variable in function.variables:
      used[id(variable)] = variable
  module.signature_variables = list(used.values())
  tf.saved_model.save(module, export_dir, signatures=signatures)
  write_class_names(export_dir, class_names)
  return export_dir


def write_class_names(export_dir: str, class_names: Mapping[int, str]) -> None:
  """``<export_dir>/assets.extra/class_names.json``: ["name of label 0", ...], the order of
  ``class_probabilities`` (TF Serving ignores assets.extra; ``cxr-tfx predict`` reads it)."""
  folder = os.path.join(export_dir, config_lib.EXTRA_ASSETS_DIR)
  tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(os.path.join(folder, config_lib.CLASS_NAMES_FILE), 'w') as f:
    json.dump([class_names[k] for k in range(len(class_names))], f)
