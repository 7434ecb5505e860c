"""The Evaluator's TFMA configuration: accuracy overall and per class, and the blessing."""
import tensorflow_model_analysis as tfma

from components import features
from components.trainer import config as config_lib

ACCURACY = 'sparse_categorical_accuracy'  # TFMA's name of the metric below


def eval_config(min_accuracy: float) -> tfma.EvalConfig:
  """TFMA EvalConfig for the exported SavedModel.

  The model is evaluated through its ``from_examples`` signature (serialized tf.Examples in,
  ``class_probabilities`` out; ``tf_generic``: no Keras loading), against the ``class``
  label. Metrics: example count and sparse categorical accuracy, overall and sliced by
  ``class`` (per-class accuracy = recall of that class). The model is blessed when overall
  accuracy >= ``min_accuracy`` (the threshold is set on the overall slice only: a
  ``MetricConfig.threshold`` would gate every class slice too, and a class with a handful of
  evaluation examples would make the blessing a coin toss).
  """
  threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
      lower_bound={'value': float(min_accuracy)}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name=config_lib.EXAMPLES_SIGNATURE,
                                  label_key=features.LABEL,
                                  prediction_key=config_lib.PROBABILITIES,
                                  model_type=tfma.TF_GENERIC)],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(class_name='SparseCategoricalAccuracy', per_slice_thresholds=[
              tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                           threshold=threshold)])])])
