"""The pipeline's Trainer spec: TFX's TrainerSpec + ClassBalance's output (optional input)."""
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter

EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
TRANSFORM_GRAPH_KEY = standard_component_specs.TRANSFORM_GRAPH_KEY
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY
TRAIN_ARGS_KEY = standard_component_specs.TRAIN_ARGS_KEY
EVAL_ARGS_KEY = standard_component_specs.EVAL_ARGS_KEY
RUN_FN_KEY = standard_component_specs.RUN_FN_KEY
CUSTOM_CONFIG_KEY = standard_component_specs.CUSTOM_CONFIG_KEY
MODEL_KEY = standard_component_specs.MODEL_KEY  # Model (output)
MODEL_RUN_KEY = standard_component_specs.MODEL_RUN_KEY  # ModelRun (output: TensorBoard logs)
# ClassBalance's output artifact (optional input): its custom property
# components.class_balance.spec.CLASS_WEIGHTS_PROPERTY, when present, weights the class loss.
CLASS_BALANCE_KEY = 'class_balance'

# Custom property set on the output Model: the class weights used, as JSON ('' = unweighted).
CLASS_WEIGHTS_USED_PROPERTY = 'cxr_class_weights'

# The Evaluator's and Pusher's outputs and the custom properties TFX sets on them (read back by
# pipeline.local_runner; TFX keeps the Pusher's as private names in its executor).
EVALUATION_KEY = standard_component_specs.EVALUATION_KEY
BLESSING_KEY = standard_component_specs.BLESSING_KEY
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
BLESSED_PROPERTY = 'blessed'  # tfx.components.evaluator.constants.ARTIFACT_PROPERTY_BLESSED_KEY
PUSHED_PROPERTY = 'pushed'  # int 1/0 (tfx/components/pusher/executor.py _PUSHED_KEY)
PUSHED_DESTINATION_PROPERTY = 'pushed_destination'  # the <serving dir>/<version> written


class TrainerSpec(standard_component_specs.TrainerSpec):
  """TFX's TrainerSpec (same parameters, inputs and outputs) + ``class_balance``."""

  INPUTS = {
      **standard_component_specs.TrainerSpec.INPUTS,
      CLASS_BALANCE_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies,
                                          optional=True),
  }
