"""The pipeline's Evaluator: TFX's Evaluator with an executor that knows the classes.

Before TFX's executor runs TFMA, it adds one-vs-rest AUC for every class of the Examples (the
class names ImageExampleGen wrote in ``ingest_summary.json``) to the eval config; after it, it
measures the candidate's lung masks on the evaluation split (mean Dice over the records that
have a mask) and writes ``evaluation_summary.json`` (``report.py``) next to TFMA's output: the
split and its size, per-class precision, recall and AUC, the confusion matrix, the baseline,
the blessing and its reasons. Blessing itself is TFX's: TFMA's thresholds
(``evaluation.eval_config``).
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as keys
from tfx.utils import io_utils
from tfx.utils import json_utils
from tfx.utils import path_utils
from tfx.utils import proto_utils

from components import features
from components.image_example_gen.summary import SUMMARY_FILE
from components.trainer import config as config_lib
from components.trainer import evaluation
from components.trainer import model as model_lib
from components.trainer import report as report_lib
from components.trainer import spec
from components.transform.preprocessing import decode_mask

DICE_BATCH = 32  # records per call of the model's from_examples signature


def class_names_of(examples: types.Artifact) -> Dict[int, str]:
  """{label: name} from the ingest summary ImageExampleGen wrote in the Examples' folder."""
  path = os.path.join(examples.uri, SUMMARY_FILE)
  if not tf.io.gfile.exists(path):
    raise config_lib.ConfigError(f'{path} does not exist: the Evaluator evaluates '
                                 'ImageExampleGen\'s Examples, whose ingest summary names the '
                                 'classes.')
  with tf.io.gfile.GFile(path) as f:
    names = json.load(f)['class_names']
  return {int(k): v for k, v in names.items()}


def mask_dice(saved_model_dir: str, file_patterns: Sequence[str],
              batch_size: int = DICE_BATCH) -> Optional[Dict[str, Any]]:
  """{'mean': mean Dice, 'examples': n} of the served model's mask (probability > 0.5)
  against the records' own masks, decoded as the Transform decodes them, over the records of
  ``file_patterns`` (gzipped tf.Examples) that have a mask; None for a model without the
  ``from_examples`` signature's ``mask`` output (one exported some other way)."""
  serve = tf.saved_model.load(saved_model_dir).signatures.get(config_lib.EXAMPLES_SIGNATURE)
  if serve is None or config_lib.MASK_OUTPUT not in serve.structured_outputs:
    logging.info('no mask Dice: %s has no %s signature with a %s output', saved_model_dir,
                 config_lib.EXAMPLES_SIGNATURE, config_lib.MASK_OUTPUT)
    return None
  files = sorted({f for p in file_patterns for f in tf.io.gfile.glob(p)})
  total, count = 0.0, 0
  spec = {features.MASK: tf.io.FixedLenFeature([], tf.string, default_value=b'')}
  for batch in tf.data.TFRecordDataset(files, compression_type='GZIP').batch(batch_size):
    masks = tf.io.parse_example(batch, spec)[features.MASK]
    present = tf.strings.length(masks) > 0
    if not bool(tf.reduce_any(present)):
      continue
    predicted = serve(examples=tf.boolean_mask(batch, present))[config_lib.MASK_OUTPUT]
    size = (int(predicted.shape[1]), int(predicted.shape[2]))
    truth = tf.map_fn(lambda m: decode_mask(m, size), tf.boolean_mask(masks, present),
                      fn_output_signature=tf.TensorSpec([size[0], size[1], 1], tf.float32))
    per_example = model_lib.dice(truth, tf.cast(predicted > 0.5, tf.float32))
    total += float(tf.reduce_sum(per_example))
    count += int(per_example.shape[0])
  return {'mean': total / count if count else None, 'examples': count}


class Executor(evaluator_executor.Executor):
  """TFX's Evaluator executor, plus AUC per class, the mask Dice and the report."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
    class_names = class_names_of(examples)
    config = tfma.EvalConfig()
    proto_utils.json_to_proto(exec_properties[keys.EVAL_CONFIG_KEY], config)
    exec_properties = dict(exec_properties)
    exec_properties[keys.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
        evaluation.with_class_ids(config, len(class_names)))
    super().Do(input_dict, output_dict, exec_properties)

    splits = json_utils.loads(exec_properties.get(keys.EXAMPLE_SPLITS_KEY, 'null')) or ['eval']
    output_uri = artifact_utils.get_single_uri(output_dict[keys.EVALUATION_KEY])
    model = artifact_utils.get_single_instance(input_dict[keys.MODEL_KEY])
    patterns = [io_utils.all_files_pattern(uri) for split in splits
                for uri in artifact_utils.get_split_uris([examples], split)]
    dice = mask_dice(path_utils.serving_model_path(model.uri), patterns)
    logging.info('mask Dice on %s: %s', splits, dice)
    blessing = output_dict.get(keys.BLESSING_KEY) or []
    blessed = bool(blessing) and blessing[0].get_int_custom_property(spec.BLESSED_PROPERTY) == 1
    baseline: Optional[types.Artifact] = (input_dict.get(keys.BASELINE_MODEL_KEY) or [None])[0]
    report = evaluation.build_report(output_uri, config, class_names, splits, blessed,
                                     baseline.uri if baseline else '', dice)
    io_utils.write_string_file(os.path.join(output_uri, report_lib.REPORT_FILE),
                               json.dumps(report, indent=1, sort_keys=True))
    logging.info('evaluation: %s', '; '.join(report['reasons']))


class Evaluator(evaluator_component.Evaluator):
  """TFX's Evaluator (same arguments, inputs and outputs) with ``Executor`` above."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
