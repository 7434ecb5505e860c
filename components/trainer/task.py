"""``run_fn``: the Trainer's entry point (``components.trainer.task.run_fn``, by module path).

Works with the pipeline's Trainer and with the stock one::

  tfx.components.Trainer(run_fn='components.trainer.task.run_fn',
                         examples=example_gen.outputs['examples'],
                         transform_graph=transform.outputs['transform_graph'],
                         schema=schema_gen.outputs['schema'],
                         train_args=tfx.proto.TrainArgs(num_steps=100),
                         eval_args=tfx.proto.EvalArgs(num_steps=5),
                         custom_config=TrainConfig().to_custom_config())

Reads the raw examples with ``make_dataset`` (the Transform graph applied per batch, batches
prefetched), trains ``model.build_model`` with the hyperparameters of ``custom_config`` under a
distribution strategy (``distribution_strategy``: every visible GPU, or the one device) and the
``precision`` dtype policy, writes TensorBoard logs and the Keras model (``model.keras``) to the
ModelRun dir, and exports the serving SavedModel (``export.py``) to the Model's
``Format-Serving``.
"""
import json
import os
from typing import Dict, Optional, Sequence, Tuple

from absl import logging
import keras
import tensorflow as tf
import tensorflow_transform as tft

from components.image_example_gen.summary import SUMMARY_FILE
from components.trainer import config as config_lib
from components.trainer import export
from components.trainer import model as model_lib
from components.transform import config as transform_config
from components.transform.input_fn import make_dataset

SPLIT_PREFIX = 'Split-'  # TFX's split folder prefix (<examples>/Split-<name>/)
# Splits whose decoded images and masks take at most this are decoded once and cached in
# memory for all epochs (training_dataset's ``cache``): the demo's 339 training records take
# 180 MB at 256x256; the real 16,900 take 8.9 GB and are decoded every epoch.
CACHE_LIMIT_BYTES = 1 << 30


def class_names_for(patterns: Sequence[str], hparams: config_lib.Hyperparameters
                    ) -> Dict[int, str]:
  """{label: name}: custom_config's ``class_names``, else the ingest summary ImageExampleGen
  wrote next to the split folders (``<examples>/Split-train/*`` -> ``<examples>/``)."""
  if hparams.class_names:
    return hparams.class_names
  examples_dir = os.path.dirname(os.path.dirname(patterns[0]))
  path = os.path.join(examples_dir, SUMMARY_FILE)
  if not tf.io.gfile.exists(path):
    raise config_lib.ConfigError(
        f'no class names: {path} does not exist (not ImageExampleGen output?); give '
        f'custom_config["{config_lib.CLASS_NAMES_KEY}"] = {{"0": "name", ...}}.')
  with tf.io.gfile.GFile(path) as f:
    names = json.load(f)['class_names']
  return config_lib.Hyperparameters(class_names=names).class_names


def split_record_count(patterns: Sequence[str]) -> Optional[int]:
  """Records the file patterns (``<examples>/Split-<name>/*``, TFX's FnArgs.train_files)
  hold, from the ingest summaries ImageExampleGen wrote; None when one is missing."""
  total = 0
  for pattern in patterns:
    split_dir = os.path.dirname(pattern)
    path = os.path.join(os.path.dirname(split_dir), SUMMARY_FILE)
    if not tf.io.gfile.exists(path):
      return None
    with tf.io.gfile.GFile(path) as f:
      shards = json.load(f).get('shards', [])
    split = os.path.basename(split_dir)[len(SPLIT_PREFIX):]
    total += sum(int(s.get('count', 0)) for s in shards if s.get('split') == split)
  return total


def fits_in_memory(records: Optional[int], tf_transform_output: tft.TFTransformOutput) -> bool:
  """Whether ``records`` decoded images and masks take at most CACHE_LIMIT_BYTES."""
  if records is None:
    return False
  height, width, channels = image_shape(tf_transform_output)
  return records * height * width * (channels + 1) * 4 <= CACHE_LIMIT_BYTES


def training_dataset(patterns: Sequence[str], tf_transform_output: tft.TFTransformOutput,
                     batch_size: int, *, shuffle: bool, seed: int = 0,
                     shuffle_buffer: int = 256, cache: bool = False) -> tf.data.Dataset:
  """``make_dataset`` (repeated) shaped for ``build_model``: (image, {'class': label [B],
  'mask': mask_target [B, H, W, 2]}), prefetched.

  ``cache``: decode each record once and keep the decoded tensors in memory (the first pass
  reads through ``make_dataset``; later epochs reshuffle the cache). For a split whose decoded
  size fits (``fits_in_memory``): with a few hundred records, decoding every epoch costs more
  than the model's steps."""
  keys = dict(label_keys=(transform_config.LABEL, transform_config.MASK,
                          transform_config.HAS_MASK),
              feature_keys=(transform_config.IMAGE,))
  if cache:
    dataset = make_dataset(list(patterns), tf_transform_output, batch_size, **keys,
                           num_epochs=1).unbatch().cache()
    if shuffle:
      dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(batch_size)
  else:
    dataset = make_dataset(list(patterns), tf_transform_output, batch_size, **keys,
                           shuffle=shuffle, shuffle_buffer=shuffle_buffer, seed=seed,
                           num_epochs=None)

  def to_heads(features, labels):
    # image [B, H, W, C]; class [B]; mask [B, H, W, 1] + has_mask [B] -> [B, H, W, 2]
    return (features[transform_config.IMAGE],
            {config_lib.CLASS_HEAD: labels[transform_config.LABEL],
             config_lib.MASK_HEAD: model_lib.mask_target(labels[transform_config.MASK],
                                                         labels[transform_config.HAS_MASK])})
  return dataset.map(to_heads, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def distribution_strategy() -> Tuple[tf.distribute.Strategy, str]:
  """(strategy, what it is): MirroredStrategy over every visible GPU when there are several
  (each replica gets batch_size / N of a batch), else TensorFlow's default strategy on the one
  device there is (a GPU if there is one, else the CPU)."""
  gpus = tf.config.list_logical_devices('GPU')
  if len(gpus) > 1:
    strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
    return strategy, f'MirroredStrategy over {len(gpus)} GPUs'
  return tf.distribute.get_strategy(), ('one GPU' if gpus else 'the CPU')


def image_shape(tf_transform_output: tft.TFTransformOutput):
  """(H, W, C) of the Transform graph's ``image`` output."""
  spec = tf_transform_output.transformed_feature_spec()[transform_config.IMAGE]
  return tuple(int(d) for d in spec.shape)


def run_fn(fn_args) -> None:
  """TFX's Trainer entry point (``fn_args``: ``tfx.components.FnArgs``)."""
  hparams = config_lib.Hyperparameters.from_custom_config(fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  class_names = class_names_for(fn_args.train_files, hparams)
  weights = config_lib.class_weight_list(hparams.class_weights, len(class_names))
  train_steps = fn_args.train_steps or config_lib.TrainConfig.train_steps  # TrainArgs unset
  steps_per_epoch = -(-train_steps // hparams.epochs)
  logging.info('training %d steps (%d epochs), %d classes %s, class weights %s', train_steps,
               hparams.epochs, len(class_names), class_names, weights or 'none')

  strategy, devices = distribution_strategy()
  logging.info('devices: %s (%d replica(s)); precision %s', devices,
               strategy.num_replicas_in_sync, hparams.precision)

  keras.utils.set_random_seed(hparams.seed)
  cache = fits_in_memory(split_record_count(fn_args.train_files), tf_transform_output)
  logging.info('decoded training records cached in memory: %s', cache)
  train = training_dataset(fn_args.train_files, tf_transform_output, hparams.batch_size,
                           shuffle=True, seed=hparams.seed,
                           shuffle_buffer=hparams.shuffle_buffer, cache=cache)
  validation = training_dataset(fn_args.eval_files, tf_transform_output, hparams.batch_size,
                                shuffle=False, cache=cache)
  with strategy.scope():  # variables on every replica
    model = model_lib.compile_model(
        model_lib.build_model(image_shape(tf_transform_output), len(class_names),
                              hparams.filters, hparams.precision),
        hparams.learning_rate, hparams.mask_loss_weight, weights, hparams.precision)
  history = model.fit(
      train, epochs=hparams.epochs, steps_per_epoch=steps_per_epoch,
      validation_data=validation, validation_steps=fn_args.eval_steps or 1,
      callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                             update_freq='epoch')],
      verbose=0)  # the metrics go to TensorBoard and the log, not to stdout
  logging.info('last epoch: %s', {k: round(float(v[-1]), 4)
                                  for k, v in history.history.items()})
  model.save(os.path.join(fn_args.model_run_dir, config_lib.KERAS_MODEL_FILE))
  export.export_serving_model(model, tf_transform_output, class_names,
                              fn_args.serving_model_dir)
