"""The template model: a small two-head Keras model (class logits + mask logits) and its losses.

Keras: the stack has Keras 3 (``keras`` 3.12) and Keras 2 (``tf_keras`` 2.16, which TFT and
TFMA use). Which one ``tf.keras`` means depends on the process: importing
``tensorflow_transform`` sets ``TF_USE_LEGACY_KERAS=1`` before ``tf.keras`` is first touched,
so inside any TFX component ``tf.keras`` is tf_keras. This module imports ``keras`` (Keras 3)
by name, so the model is the same everywhere. The export does not depend on Keras's own saving
(``model.save(save_format='tf')`` is gone in Keras 3): see ``export.py``.

Replace ``build_model`` with your own: it must map ``image`` float32 [B, H, W, C] to
``{'class': logits [B, K], 'mask': logits [B, H, W, 1]}``, both float32.
"""
from typing import Optional, Sequence, Tuple

import keras
import tensorflow as tf

from components.trainer import config as config_lib

# The model looks at every image at WORK_SIZE x WORK_SIZE (antialiased downscale of the
# Transform's output, 256x256 by default): 16 times fewer pixels to convolve, which is what
# lets the template train in about a minute on two CPU cores. Raise it for finer detail.
WORK_SIZE = 64
MASK_LOGITS = 'mask_logits'  # the mask head at WORK_SIZE, before the resize to the input size


def build_model(image_shape: Tuple[int, int, int], num_classes: int, filters: int = 8,
                precision: str = 'float32') -> keras.Model:
  """A small U-Net at WORK_SIZE: an encoder of three stages (``filters``, 2x, 4x channels)
  whose deepest features, pooled to a 4x4 grid (where in the lungs a pattern lies matters),
  give the class logits; a decoder with skip connections gives the mask logits at WORK_SIZE,
  resized bilinearly to the input's H x W (any size).

  The input is standardised per image (zero mean, unit variance over its pixels): exposure
  and contrast, which say nothing about disease, are taken out before the first convolution.
  ``precision`` is a Keras dtype policy (config.PRECISIONS): the convolutions compute in it,
  the input steps and both heads' outputs stay float32.
  """
  height, width, _ = image_shape

  def conv(x, width_, name):
    return keras.layers.Conv2D(width_, 3, padding='same', activation='relu', dtype=precision,
                               name=name)(x)

  def pool(x, name):
    return keras.layers.MaxPooling2D(dtype=precision, name=name)(x)

  image = keras.Input(image_shape, name=config_lib.IMAGE_INPUT)
  x = keras.layers.Resizing(WORK_SIZE, WORK_SIZE, antialias=True, dtype='float32',
                            name='to_work_size')(image)
  x = keras.layers.LayerNormalization(axis=(1, 2, 3), epsilon=1e-6, center=False, scale=False,
                                      dtype='float32', name='standardize')(x)
  c1 = conv(conv(x, filters, 'conv1a'), filters, 'conv1b')  # WORK_SIZE
  c2 = conv(conv(pool(c1, 'pool1'), 2 * filters, 'conv2a'), 2 * filters, 'conv2b')  # / 2
  c3 = conv(conv(pool(c2, 'pool2'), 4 * filters, 'conv3a'), 4 * filters, 'conv3b')  # / 4
  c4 = conv(pool(c3, 'pool3'), 4 * filters, 'conv4')  # / 8
  grid = keras.layers.AveragePooling2D(WORK_SIZE // 32, dtype=precision, name='grid')(c4)
  pooled = keras.layers.Dropout(0.3, name='dropout')(keras.layers.Flatten(name='flat')(grid))
  class_logits = keras.layers.Dense(num_classes, dtype='float32',
                                    name=config_lib.CLASS_HEAD)(pooled)
  up = keras.layers.UpSampling2D(interpolation='bilinear', dtype=precision, name='up2')(c3)
  up = conv(keras.layers.Concatenate(dtype=precision, name='skip2')([up, c2]), 2 * filters,
            'conv5')
  up = keras.layers.UpSampling2D(interpolation='bilinear', dtype=precision, name='up1')(up)
  up = conv(keras.layers.Concatenate(dtype=precision, name='skip1')([up, c1]), filters,
            'conv6')
  mask_logits = keras.layers.Conv2D(1, 1, dtype='float32', name=MASK_LOGITS)(up)
  mask_logits = keras.layers.Resizing(height, width, interpolation='bilinear', dtype='float32',
                                      name=config_lib.MASK_HEAD)(mask_logits)
  return keras.Model(image, {config_lib.CLASS_HEAD: class_logits,
                             config_lib.MASK_HEAD: mask_logits}, name='cxr_two_head')


def class_loss(class_weights: Optional[Sequence[float]] = None):
  """Sparse softmax cross-entropy per example, times the weight of the example's class
  (Keras then averages over the batch, as ``fit(class_weight=...)`` would)."""
  weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

  def loss(labels, logits):
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(logits, tf.float32))
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
  per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=mask,
                                                      logits=tf.cast(logits, tf.float32))
  per_example = tf.reduce_mean(per_pixel * present, axis=[1, 2, 3])
  count = tf.reduce_sum(present[:, 0, 0, 0])
  return tf.math.divide_no_nan(tf.reduce_sum(per_example), count)


def dice(mask: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
  """Per-example Dice coefficient [B] of two binary masks [B, H, W, 1] (1 when both are
  empty)."""
  mask, predicted = tf.cast(mask, tf.float32), tf.cast(predicted, tf.float32)
  overlap = tf.reduce_sum(mask * predicted, axis=[1, 2, 3])
  total = tf.reduce_sum(mask, axis=[1, 2, 3]) + tf.reduce_sum(predicted, axis=[1, 2, 3])
  return tf.where(total > 0, 2.0 * overlap / tf.maximum(total, 1.0), 1.0)


@keras.saving.register_keras_serializable(package='cxr_tfx')
class MaskDice(keras.metrics.Metric):
  """Mean Dice of the thresholded mask head (logit > 0) over the examples that have a mask:
  TensorBoard's and the log's ``mask_dice`` (the Evaluator measures it on its split too)."""

  def __init__(self, name='dice', **kwargs):
    super().__init__(name=name, **kwargs)
    self.total = self.add_variable(shape=(), initializer='zeros', name='total')
    self.count = self.add_variable(shape=(), initializer='zeros', name='count')

  def update_state(self, y_true, y_pred, sample_weight=None):
    del sample_weight
    present = y_true[:, 0, 0, 1]
    per_example = dice(y_true[..., :1], tf.cast(y_pred > 0, tf.float32))
    self.total.assign_add(tf.reduce_sum(per_example * present))
    self.count.assign_add(tf.reduce_sum(present))

  def result(self):
    return tf.math.divide_no_nan(self.total, self.count)


def compile_model(model: keras.Model, learning_rate: float, mask_loss_weight: float,
                  class_weights: Optional[Sequence[float]] = None,
                  precision: str = 'float32') -> keras.Model:
  optimizer = keras.optimizers.Adam(learning_rate)
  if precision == 'mixed_float16':  # float16 gradients underflow without loss scaling
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  model.compile(
      optimizer=optimizer,
      loss={config_lib.CLASS_HEAD: class_loss(class_weights),
            config_lib.MASK_HEAD: masked_mask_loss},
      loss_weights={config_lib.CLASS_HEAD: 1.0, config_lib.MASK_HEAD: mask_loss_weight},
      metrics={config_lib.CLASS_HEAD: [keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
               config_lib.MASK_HEAD: [MaskDice()]})
  return model
