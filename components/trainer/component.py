"""The pipeline's Trainer: TFX's Trainer with ClassBalance's output as an optional input.

Its executor adds ClassBalance's class weights to ``custom_config`` and runs TFX's
GenericExecutor; the model code is ``config.RUN_FN``, referenced by module path (KFP runs it
from the container image: no wheel). ``run_fn`` also works with the stock
``tfx.components.Trainer(run_fn=config.RUN_FN, ...)``; class weights then come from
``custom_config['class_weights']`` or nowhere.
"""
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from components.trainer import config as config_lib
from components.trainer import executor
from components.trainer import spec


class Trainer(base_component.BaseComponent):
  """Trains ``config.run_fn`` (default ``config_lib.RUN_FN``) on ImageExampleGen's examples
  through the Transform graph.

  Outputs, as TFX's Trainer: ``model`` (Model: ``Format-Serving/`` is the SavedModel) and
  ``model_run`` (ModelRun: TensorBoard logs and the Keras model, ``model.keras``).
  """

  SPEC_CLASS = spec.TrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
               schema: types.BaseChannel,
               config: Optional[config_lib.TrainConfig] = None,
               class_balance: Optional[types.BaseChannel] = None,
               train_splits: Sequence[str] = ('train',), eval_splits: Sequence[str] = ('eval',)):
    """Args:
      examples: ImageExampleGen's Examples (raw: the Transform graph is applied while reading).
      transform_graph: Transform's graph.
      schema: the curated schema (its SERVING environment defines the serving request).
      config: steps and hyperparameters (default TrainConfig()).
      class_balance: ClassBalance's output; its ``class_weights`` property, when present,
        weights the class loss (leave None to train unweighted).
      train_splits, eval_splits: the splits trained on and validated on.
    """
    config = config or config_lib.TrainConfig()
    super().__init__(spec=spec.TrainerSpec(**{
        spec.EXAMPLES_KEY: examples,
        spec.TRANSFORM_GRAPH_KEY: transform_graph,
        spec.SCHEMA_KEY: schema,
        spec.CLASS_BALANCE_KEY: class_balance,
        spec.TRAIN_ARGS_KEY: trainer_pb2.TrainArgs(splits=list(train_splits),
                                                   num_steps=config.train_steps),
        spec.EVAL_ARGS_KEY: trainer_pb2.EvalArgs(splits=list(eval_splits),
                                                 num_steps=config.eval_steps),
        spec.RUN_FN_KEY: config.run_fn,
        spec.CUSTOM_CONFIG_KEY: json_utils.dumps(config.to_custom_config()),
        spec.MODEL_KEY: types.Channel(type=standard_artifacts.Model),
        spec.MODEL_RUN_KEY: types.Channel(type=standard_artifacts.ModelRun),
    }))
