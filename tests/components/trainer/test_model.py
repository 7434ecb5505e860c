"""The template model's shapes and its losses: the mask loss ignores examples without a mask,
the class loss applies class weights."""
import numpy as np
import pytest


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


def test_mixed_precision_computes_in_16_bits_and_answers_in_float32():
  from components.trainer.model import build_model
  model = build_model((32, 32, 1), num_classes=3, filters=2, precision='mixed_bfloat16')
  assert model.get_layer('conv1a').compute_dtype == 'bfloat16'
  assert model.get_layer('conv1a').variable_dtype == 'float32'
  out = model(np.random.rand(2, 32, 32, 1).astype(np.float32))
  assert out['class'].dtype == 'float32' and out['mask'].dtype == 'float32'
  assert out['mask'].shape == (2, 32, 32, 1)


def test_the_input_is_standardised_so_exposure_changes_nothing():
  """A brighter or contrastier film (a * x + b) gives the same outputs."""
  from components.trainer.model import build_model
  model = build_model((48, 48, 1), num_classes=2, filters=2)
  x = np.random.RandomState(1).rand(2, 48, 48, 1).astype(np.float32)
  a, b = model(x), model(0.5 * x + 0.3)
  np.testing.assert_allclose(a['class'], b['class'], atol=1e-3)
  np.testing.assert_allclose(a['mask'], b['mask'], atol=1e-3)


def test_dice_and_the_mask_dice_metric_count_masked_examples_only():
  import tensorflow as tf

  from components.trainer.model import dice
  from components.trainer.model import mask_target
  from components.trainer.model import MaskDice
  mask = np.zeros((3, 4, 4, 1), np.float32)
  mask[:, :2] = 1  # 8 lung pixels each
  predicted = np.zeros_like(mask)
  predicted[0, :2] = 1  # perfect
  predicted[1, :1] = 1  # 4 of 8: Dice 2*4/(8+4)
  np.testing.assert_allclose(dice(mask, predicted).numpy(), [1.0, 2 * 4 / 12, 0.0])
  assert dice(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1))).numpy().tolist() == [1.0]
  metric = MaskDice()
  logits = tf.constant(np.where(predicted > 0, 5.0, -5.0).astype(np.float32))
  metric.update_state(mask_target(tf.constant(mask), tf.constant([1, 1, 0])), logits)
  assert float(metric.result()) == pytest.approx((1.0 + 2 * 4 / 12) / 2)  # the third has none
