"""``run_fn``: the Trainer's entry point (``components.trainer.task.run_fn``, by module path).

Works with the pipeline's Trainer and with the stock one::

  tfx.components.Trainer(run_fn='components.trainer.task.run_fn',
                         examples=example_gen.outputs['examples'],
                         transform_graph=transform.outputs['transform_graph'],
                         schema=schema_gen.outputs['schema'],
                         train_args=tfx.proto.TrainArgs(num_steps=100),
                         eval_args=tfx.proto.EvalArgs(num_steps=5),
                         custom_config=TrainConfig().to_custom_config())

Reads the raw examples with ``make_dataset`` (the Transform graph applied per batch), trains
``model.build_model`` with the hyperparameters of ``custom_config``, writes TensorBoard logs and
the Keras model (``model.keras``) to the ModelRun dir, and exports the serving SavedModel
(``export.py``) to the Model's ``Format-Serving``.
"""
import json
import os
from typing import Dict, Sequence

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


def training_dataset(patterns: Sequence[str], tf_transform_output: tft.TFTransformOutput,
                     batch_size: int, *, shuffle: bool, seed: int = 0,
                     shuffle_buffer: int = 256) -> tf.data.Dataset:
  """``make_dataset`` (repeated) shaped for ``build_model``: (image, {'class': label [B],
  'mask': mask_target [B, H, W, 2]})."""
  dataset = make_dataset(
      list(patterns), tf_transform_output, batch_size,
      label_keys=(transform_config.LABEL, transform_config.MASK, transform_config.HAS_MASK),
      feature_keys=(transform_config.IMAGE,), shuffle=shuffle, shuffle_buffer=shuffle_buffer,
      seed=seed, num_epochs=None)

  def to_heads(features, labels):
    # image [B, H, W, C]; class [B]; mask [B, H, W, 1] + has_mask [B] -> [B, H, W, 2]
    return (features[transform_config.IMAGE],
            {config_lib.CLASS_HEAD: labels[transform_config.LABEL],
             config_lib.MASK_HEAD: model_lib.mask_target(labels[transform_config.MASK],
                                                         labels[transform_config.HAS_MASK])})
  return dataset.map(to_heads, num_parallel_calls=tf.data.AUTOTUNE)


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

  keras.utils.set_random_seed(hparams.seed)
  train = training_dataset(fn_args.train_files, tf_transform_output, hparams.batch_size,
                           shuffle=True, seed=hparams.seed,
                           shuffle_buffer=hparams.shuffle_buffer)
  validation = training_dataset(fn_args.eval_files, tf_transform_output, hparams.batch_size,
                                shuffle=False)
  model = model_lib.compile_model(
      model_lib.build_model(image_shape(tf_transform_output), len(class_names), hparams.filters),
      hparams.learning_rate, hparams.mask_loss_weight, weights)
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
