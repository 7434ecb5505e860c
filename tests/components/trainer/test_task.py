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
