"""run_fn under TFX's stock Trainer executor (GenericExecutor, what
``tfx.components.Trainer(run_fn=...)`` runs), on the balanced run's real Examples and
TransformGraph, with class weights given by hand in custom_config."""
import json
import os

import pytest


@pytest.fixture(scope='module')
def stock_trainer_output(balanced_run, tmp_path_factory):
  from tfx.components.trainer import executor as trainer_executor
  from tfx.proto import trainer_pb2
  from tfx.types import standard_artifacts
  from tfx.utils import proto_utils

  from components.trainer import config as config_lib
  out = tmp_path_factory.mktemp('stock_trainer')

  def artifact(cls, uri, **properties):
    a = cls()
    a.uri = uri
    for k, v in properties.items():
      setattr(a, k, v)
    return a

  examples = artifact(standard_artifacts.Examples, balanced_run.examples_uri,
                      split_names='["train", "test"]')
  graph = artifact(standard_artifacts.TransformGraph, balanced_run.transform_graph_uri)
  model = artifact(standard_artifacts.Model, str(out / 'model'))
  model_run = artifact(standard_artifacts.ModelRun, str(out / 'model_run'))
  custom_config = dict(config_lib.TrainConfig(batch_size=4).to_custom_config(),
                       class_weights={'0': 2.0, '1': 0.5, '2': 4.0, '3': 1.0})
  trainer_executor.GenericExecutor().Do(
      {'examples': [examples], 'transform_graph': [graph]},
      {'model': [model], 'model_run': [model_run]},
      {'run_fn': config_lib.RUN_FN, 'custom_config': json.dumps(custom_config),
       'train_args': proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=4)),
       'eval_args': proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=['test'],
                                                                   num_steps=1))})
  return balanced_run, model.uri, model_run.uri


def test_the_stock_trainer_runs_it_and_gets_a_served_model(stock_trainer_output, demo_dataset):
  import tensorflow as tf
  result, model_uri, model_run_uri = stock_trainer_output
  loaded = tf.saved_model.load(os.path.join(model_uri, 'Format-Serving'))
  assert set(loaded.signatures) == {'serving_default', 'from_examples'}
  with open(os.path.join(demo_dataset.root, 'COVID-19_Radiography_Dataset', 'COVID', 'images',
                         'COVID-1.png'), 'rb') as f:
    out = loaded.signatures['serving_default'](image=tf.constant([f.read()]))
  # class names come from ImageExampleGen's ingest summary next to the split folders
  assert out['class_name'].numpy()[0].decode() in result.summary.class_names.values()
  assert out['class_probabilities'].shape == (1, len(result.summary.class_names))
  assert os.path.isfile(os.path.join(model_run_uri, 'model.keras'))


def test_class_names_without_an_ingest_summary_must_be_given(tmp_path):
  from components.trainer import config as config_lib
  from components.trainer.task import class_names_for
  pattern = str(tmp_path / 'Split-train' / '*')
  with pytest.raises(config_lib.ConfigError, match='class_names'):
    class_names_for([pattern], config_lib.Hyperparameters())
  given = config_lib.Hyperparameters(class_names={'1': 'b', '0': 'a'})
  assert class_names_for([pattern], given) == {0: 'a', 1: 'b'}


def test_one_device_without_gpus_and_the_cache_only_for_what_fits(tmp_path):
  import json as json_lib

  import tensorflow as tf

  from components.image_example_gen.summary import SUMMARY_FILE
  from components.trainer import task
  strategy, devices = task.distribution_strategy()
  if not tf.config.list_logical_devices('GPU'):
    assert devices == 'the CPU' and strategy.num_replicas_in_sync == 1
  for name, shards in (('a', [('train', 300), ('train', 39), ('eval', 42)]),
                       ('b', [('train', 1000)])):
    os.makedirs(tmp_path / name / 'Split-train')
    (tmp_path / name / SUMMARY_FILE).write_text(json_lib.dumps(
        {'shards': [{'split': s, 'count': n} for s, n in shards]}))
  patterns = [str(tmp_path / n / 'Split-train' / '*') for n in ('a', 'b')]
  assert task.split_record_count(patterns[:1]) == 339
  assert task.split_record_count(patterns) == 1339  # a span window: every Examples' share
  assert task.split_record_count([str(tmp_path / 'c' / 'Split-train' / '*')]) is None

  class Graph:  # what fits_in_memory asks of a TFTransformOutput
    def __init__(self, shape):
      self.shape = shape

    def transformed_feature_spec(self):
      return {'image': tf.io.FixedLenFeature(self.shape, tf.float32)}

  limit = task.CACHE_LIMIT_BYTES
  per_record = 256 * 256 * 2 * 4  # image and mask, float32
  assert task.fits_in_memory(limit // per_record, Graph([256, 256, 1]))
  assert not task.fits_in_memory(limit // per_record + 1, Graph([256, 256, 1]))
  assert not task.fits_in_memory(None, Graph([256, 256, 1]))
