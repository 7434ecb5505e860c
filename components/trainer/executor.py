"""The pipeline Trainer's executor: TFX's GenericExecutor, with ClassBalance's class weights
added to ``custom_config`` first."""
import json
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.trainer import executor as trainer_executor

from components.class_balance import spec as balance_spec
from components.trainer import config as config_lib
from components.trainer import spec


def balance_class_weights(balance: List[types.Artifact]) -> Optional[Dict[int, float]]:
  """ClassBalance's published class weights (its JSON custom property
  ``balance_spec.CLASS_WEIGHTS_PROPERTY``), or None when it published none."""
  if not balance:
    return None
  artifact = balance[0]
  if not artifact.has_custom_property(balance_spec.CLASS_WEIGHTS_PROPERTY):
    return None
  return config_lib.parse_class_weights(
      artifact.get_string_custom_property(balance_spec.CLASS_WEIGHTS_PROPERTY))


def with_class_weights(custom_config_json: Optional[str],
                       weights: Optional[Dict[int, float]]) -> str:
  """custom_config (JSON) with ``class_weights`` set from ``weights``; weights already given in
  custom_config win (they were set on purpose)."""
  custom_config = json.loads(custom_config_json or 'null') or {}
  if weights is not None and config_lib.CLASS_WEIGHTS_KEY not in custom_config:
    custom_config[config_lib.CLASS_WEIGHTS_KEY] = json.loads(
        config_lib.class_weights_to_json(weights))
  return json.dumps(custom_config, sort_keys=True)


class Executor(trainer_executor.GenericExecutor):
  """Validates ClassBalance's weights, records them on the Model, then trains as TFX does."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
    weights = balance_class_weights(input_dict.get(spec.CLASS_BALANCE_KEY, []))
    exec_properties = dict(exec_properties)
    exec_properties[spec.CUSTOM_CONFIG_KEY] = with_class_weights(
        exec_properties.get(spec.CUSTOM_CONFIG_KEY), weights)
    used = json.loads(exec_properties[spec.CUSTOM_CONFIG_KEY]).get(config_lib.CLASS_WEIGHTS_KEY)
    logging.info('class weights: %s', used or 'none (unweighted)')
    for model in output_dict[spec.MODEL_KEY]:
      model.set_string_custom_property(spec.CLASS_WEIGHTS_USED_PROPERTY,
                                       json.dumps(used, sort_keys=True) if used else '')
    super().Do(input_dict, output_dict, exec_properties)
