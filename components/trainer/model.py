"""The template model: a small two-head Keras model (class logits + mask logits) and its losses.

Keras: the stack has Keras 3 (``keras`` 3.12) and Keras 2 (``tf_keras`` 2.16, which TFT and
TFMA use). Which one ``tf.keras`` means depends on the process: importing
``tensorflow_transform`` sets ``TF_USE_LEGACY_KERAS=1`` before ``tf.keras`` is first touched,
so inside any TFX component ``tf.keras`` is tf_keras. This module imports ``keras`` (Keras 3)
by name, so the model is the same everywhere. The export does not depend on Keras's own saving
(``model.save(save_format='tf')`` is gone in Keras 3): see ``export.py``.

Replace ``build_model`` with your own: it must map ``image`` float32 [B, H, W, C] to
``{'class': logits [B, K], 'mask': logits [B, H, W, 1]}``.
"""
from typing import Optional, Sequence, Tuple

import keras
import tensorflow as tf

from components.trainer import config as config_lib


def build_model(image_shape: Tuple[int, int, int], num_classes: int,
                filters: int = 8) -> keras.Model:
  """Two strided convolutions shared by a pooled class head and a 1x1-convolution mask head
  resized back to the input size (any H, W)."""
  height, width, _ = image_shape
  image = keras.Input(image_shape, name=config_lib.IMAGE_INPUT)
  x = keras.layers.Conv2D(filters, 3, strides=2, padding='same', activation='relu')(image)
  x = keras.layers.Conv2D(2 * filters, 3, strides=2, padding='same', activation='relu')(x)
  pooled = keras.layers.GlobalAveragePooling2D()(x)
  class_logits = keras.layers.Dense(num_classes, name=config_lib.CLASS_HEAD)(pooled)
  mask_logits = keras.layers.Conv2D(1, 1, name='mask_logits')(x)
  mask_logits = keras.layers.Resizing(height, width, interpolation='bilinear',
                                      name=config_lib.MASK_HEAD)(mask_logits)
  return keras.Model(image, {config_lib.CLASS_HEAD: class_logits,
                             config_lib.MASK_HEAD: mask_logits}, name='cxr_two_head')


def class_loss(class_weights: Optional[Sequence[float]] = None):
  """Sparse softmax cross-entropy per example, times the weight of the example's class
  (Keras then averages over the batch, as ``fit(class_weight=...)`` would)."""
  weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

  def loss(labels, logits):
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if weights is not None:
      per_example *= tf.gather(weights, labels)
    return per_example
  return loss


def mask_target(mask: tf.Tensor, has_mask: tf.Tensor) -> tf.Tensor:
  """The mask head's target: [B, H, W, 2] = (mask, has_mask broadcast over the pixels)."""
  present = tf.cast(tf.reshape(has_mask, [-1, 1, 1, 1]), mask.dtype)
  return tf.concat([mask, tf.ones_like(mask) * present], axis=-1)


def masked_mask_loss(target, logits):
  """Pixel-wise sigmoid cross-entropy, averaged over the examples that have a mask only.

  ``target`` is ``mask_target(mask, has_mask)``. Examples without a mask (their mask is all
  zeros by the Transform's convention, not "no lung") contribute nothing, and a batch with no
  mask at all has loss 0. Returns a scalar.
  """
  mask, present = target[..., :1], target[..., 1:]
  per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=mask, logits=logits)
  per_example = tf.reduce_mean(per_pixel * present, axis=[1, 2, 3])
  count = tf.reduce_sum(present[:, 0, 0, 0])
  return tf.math.divide_no_nan(tf.reduce_sum(per_example), count)


def compile_model(model: keras.Model, learning_rate: float, mask_loss_weight: float,
                  class_weights: Optional[Sequence[float]] = None) -> keras.Model:
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate),
      loss={config_lib.CLASS_HEAD: class_loss(class_weights),
            config_lib.MASK_HEAD: masked_mask_loss},
      loss_weights={config_lib.CLASS_HEAD: 1.0, config_lib.MASK_HEAD: mask_loss_weight},
      metrics={config_lib.CLASS_HEAD: [keras.metrics.SparseCategoricalAccuracy(name='accuracy')]})
  return model
