"""The template model's shapes and its losses: the mask loss ignores examples without a mask,
the class loss applies class weights."""
import numpy as np


def test_two_heads_have_the_input_size_for_any_image_size():
  from components.trainer.model import build_model
  for shape in ((64, 64, 1), (37, 50, 3)):
    model = build_model(shape, num_classes=4, filters=2)
    out = model(np.zeros((2,) + shape, np.float32))
    assert out['class'].shape == (2, 4)
    assert out['mask'].shape == (2, shape[0], shape[1], 1)


def test_mask_loss_counts_only_examples_with_a_mask():
  import tensorflow as tf

  from components.trainer.model import mask_target
  from components.trainer.model import masked_mask_loss
  rng = np.random.RandomState(0)
  masks = (rng.rand(3, 8, 8, 1) > 0.5).astype(np.float32)
  logits = tf.constant(rng.randn(3, 8, 8, 1).astype(np.float32))
  has_mask = tf.constant([1, 0, 1], tf.int64)
  loss = masked_mask_loss(mask_target(tf.constant(masks), has_mask), logits)
  # the unmasked example's target is arbitrary: changing it changes nothing
  other = masks.copy()
  other[1] = 1 - other[1]
  assert float(masked_mask_loss(mask_target(tf.constant(other), has_mask), logits)) == float(loss)
  expected = np.mean([tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=masks[i], logits=logits[i])).numpy() for i in (0, 2)])
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)  # mean over masked examples
  none = masked_mask_loss(mask_target(tf.constant(masks), tf.zeros([3], tf.int64)), logits)
  assert float(none) == 0.0
  with tf.GradientTape() as tape:  # and no gradient flows from an unmasked example
    tape.watch(logits)
    value = masked_mask_loss(mask_target(tf.constant(masks), has_mask), logits)
  grad = tape.gradient(value, logits).numpy()
  assert not grad[1].any() and grad[0].any() and grad[2].any()


def test_class_loss_weights_each_example_by_its_class():
  import tensorflow as tf

  from components.trainer.model import class_loss
  labels = tf.constant([0, 1, 1], tf.int64)
  logits = tf.constant([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
  plain = class_loss()(labels, logits).numpy()
  weighted = class_loss([3.0, 0.5])(labels, logits).numpy()
  np.testing.assert_allclose(weighted, plain * np.array([3.0, 0.5, 0.5]), rtol=1e-6)
