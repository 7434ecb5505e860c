"""The served SavedModel: raw image bytes -> the Transform graph -> the model -> predictions.

``tf.saved_model.save`` of a ``tf.Module`` holding the Keras model and the Transform layer,
with two explicit signatures (works whatever Keras the model uses):

* ``serving_default(image: string [B])``: PNG (8- or 16-bit) or JPEG file bytes, one per
  request item, exactly what ImageExampleGen stored in ``image``;
* ``from_examples(examples: string [B])``: serialized tf.Examples, parsed with the schema's
  SERVING feature spec (only ``image`` is read): the Evaluator's signature.

Both return ``class_probabilities`` float32 [B, K], ``class_id`` int64 [B], ``class_name``
string [B] and ``mask`` float32 [B, H, W, 1] (per-pixel lung probability at the Transform's
image size). Bytes that are not PNG or JPEG fail the request with an InvalidArgumentError
naming the item; corrupt data inside a PNG/JPEG fails it with the decoder's
InvalidArgumentError. Either way the request fails, not the process.
"""
from typing import Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import config as config_lib
from components.transform import config as transform_config
from components.transform.input_fn import serving_feature_spec

_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_JPEG_MAGIC = b'\xff\xd8\xff'


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


class ServingModule(tf.Module):
  """What is saved: the model, the Transform layer, the class names and the signatures."""

  def __init__(self, model: tf.Module, tf_transform_output: tft.TFTransformOutput,
               class_names: Mapping[int, str]):
    super().__init__(name='cxr_serving')
    self.model = model
    self.tft_layer = tf_transform_output.transform_features_layer()
    self._request_spec = serving_feature_spec(tf_transform_output)
    if set(self._request_spec) != {features.IMAGE}:
      raise ValueError(f'the schema\'s SERVING environment must hold only {features.IMAGE!r}, '
                       f'got {sorted(self._request_spec)} (schemas/schema.pbtxt)')
    self._class_names = tf.constant([class_names[k] for k in range(len(class_names))])

  def _predict(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
    encoded = check_encoded_images(tf.reshape(encoded, [-1]))
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
                         class_names: Mapping[int, str], export_dir: str) -> str:
  """Saves the SavedModel with both signatures to ``export_dir`` and returns it."""
  module = ServingModule(model, tf_transform_output, class_names)
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
  return export_dir
