"""The training tail of the pipeline: Trainer -> Evaluator -> Pusher, with the latest blessed
model as the Evaluator's baseline (``create_pipeline`` adds it when given a ``TrainConfig``)."""
from tfx import v1 as tfx
from tfx.types import standard_component_specs as keys

from pipeline import configs

# The Resolver node giving the Evaluator its baseline: the newest model an Evaluator of this
# pipeline blessed (its id in the TFX templates).
BASELINE_RESOLVER = 'latest_blessed_model_resolver'


def training_components(example_gen, schema_gen, class_balance, transform, split_names,
                        train_config, serving_model_dir, training_examples):
  """Resolver (latest blessed model) and Trainer (on ``training_examples``: this span, or the
  span window) -> Evaluator (on this span, against the baseline) -> Pusher."""
  from components.class_balance import spec as balance_spec
  from components.trainer.component import Trainer
  from components.trainer.evaluation import eval_config
  from components.trainer.evaluator import Evaluator

  validation_split, evaluation_split = configs.training_splits(split_names)
  examples = example_gen.outputs[keys.EXAMPLES_KEY]
  schema = schema_gen.outputs[keys.SCHEMA_KEY]
  baseline = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id(BASELINE_RESOLVER)
  trainer = Trainer(
      examples=training_examples, transform_graph=transform.outputs[configs.TRANSFORM_GRAPH_KEY],
      schema=schema, config=train_config,
      class_balance=(class_balance.outputs[balance_spec.ANOMALIES_KEY]
                     if train_config.use_balance_weights else None),
      train_splits=['train'], eval_splits=[validation_split]).with_id(configs.TRAINER)
  evaluator = Evaluator(
      examples=examples, model=trainer.outputs[keys.MODEL_KEY],
      baseline_model=baseline.outputs['model'], schema=schema,
      eval_config=eval_config(train_config),
      example_splits=[evaluation_split]).with_id(configs.EVALUATOR)
  pusher = tfx.components.Pusher(
      model=trainer.outputs[keys.MODEL_KEY], model_blessing=evaluator.outputs[keys.BLESSING_KEY],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)),
  ).with_id(configs.PUSHER)
  return [baseline, trainer, evaluator, pusher]
