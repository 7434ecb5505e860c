"""The Evaluator's TFMA configuration (what blesses a model) and the report it writes.

Blessing (``eval_config``), on the evaluation split, as TFMA thresholds on the overall slice:

1. ``accuracy_over_majority`` >= ``majority_margin``: accuracy at least the share of the
   split's largest class (what always answering that class scores) plus the margin;
2. ``top_class_share`` < ``config.TOP_CLASS_SHARE_LIMIT``: no class predicted for 95 % of the
   split or more;
3. ``sparse_categorical_accuracy`` >= ``min_accuracy`` and, when a blessed model exists (TFX's
   latest-blessed-model baseline, as the TFX templates do), no more than ``max_regression``
   below that model's accuracy on the same examples (a TFMA change threshold; ignored when
   there is no baseline yet).

Thresholds sit on the overall slice only: a ``MetricConfig.threshold`` would gate every class
slice too, and a class with a handful of examples would make the blessing a coin toss. Metrics
besides: example count, per-class precision and recall (``metrics.py``), one-vs-rest AUC per
class (added by the Evaluator's executor once it knows the classes: ``with_class_ids``), the
confusion matrix (a TFMA plot), all also sliced by ``class``.

``build_report`` turns TFMA's output into the JSON the Evaluator writes next to it
(``report.REPORT_FILE``), which ``cxr-tfx run`` prints (``report.format_lines``).
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from google.protobuf import json_format
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer

from components import features
from components.trainer import config as config_lib
from components.trainer import metrics as metrics_lib
from components.trainer import report as report_lib

ACCURACY = 'sparse_categorical_accuracy'  # TFMA's name of SparseCategoricalAccuracy
AUC = 'auc'
CONFUSION_PLOT = 'MultiClassConfusionMatrixPlot'
_EPSILON = 1e-9  # thresholds are inclusive of the value a user gives, despite rounding


def _overall(threshold: tfma.MetricThreshold) -> List[tfma.PerSliceMetricThreshold]:
  return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def eval_config(train_config: config_lib.TrainConfig) -> tfma.EvalConfig:
  """TFMA EvalConfig for the exported SavedModel, blessing as the module docstring says.

  The model is evaluated through its ``from_examples`` signature (serialized tf.Examples in,
  ``class_probabilities`` out; ``tf_generic``: no Keras loading), against the ``class``
  label, overall and sliced by ``class`` (per-class accuracy = recall of that class).
  """
  module = metrics_lib.__name__
  accuracy = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(
          lower_bound={'value': float(train_config.min_accuracy)}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={'value': -float(train_config.max_regression) - _EPSILON}))
  over_majority = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
      lower_bound={'value': float(train_config.majority_margin) - _EPSILON}))
  top_share = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
      upper_bound={'value': math.nextafter(config_lib.TOP_CLASS_SHARE_LIMIT, 0.0)}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name=config_lib.EXAMPLES_SIGNATURE,
                                  label_key=features.LABEL,
                                  prediction_key=config_lib.PROBABILITIES,
                                  model_type=tfma.TF_GENERIC)],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(class_name='SparseCategoricalAccuracy',
                            per_slice_thresholds=_overall(accuracy)),
          tfma.MetricConfig(class_name='AccuracyOverMajority', module=module,
                            per_slice_thresholds=_overall(over_majority)),
          tfma.MetricConfig(class_name='TopClassShare', module=module,
                            per_slice_thresholds=_overall(top_share)),
          tfma.MetricConfig(class_name='ClassPrecisionRecall', module=module),
          tfma.MetricConfig(class_name=CONFUSION_PLOT),
      ])])


def with_class_ids(config: tfma.EvalConfig, num_classes: int) -> tfma.EvalConfig:
  """``config`` plus one-vs-rest AUC for classes 0..num_classes-1 (a binarized MetricsSpec)."""
  out = tfma.EvalConfig()
  out.CopyFrom(config)
  out.metrics_specs.append(tfma.MetricsSpec(
      metrics=[tfma.MetricConfig(class_name='AUC')],
      binarize=tfma.BinarizationOptions(class_ids={'values': list(range(num_classes))})))
  return out


def thresholds(config: tfma.EvalConfig) -> Dict[str, float]:
  """The blessing's numbers back from a config made by ``eval_config``: {'majority_margin',
  'min_accuracy', 'max_regression', 'top_class_share_limit'}."""
  found: Dict[str, float] = {}
  for spec in config.metrics_specs:
    for metric in spec.metrics:
      for per_slice in metric.per_slice_thresholds:
        t = per_slice.threshold
        if metric.class_name == 'SparseCategoricalAccuracy':
          found['min_accuracy'] = t.value_threshold.lower_bound.value
          if t.HasField('change_threshold'):
            found['max_regression'] = round(-t.change_threshold.absolute.value - _EPSILON, 12)
        elif metric.class_name == 'AccuracyOverMajority':
          found['majority_margin'] = round(t.value_threshold.lower_bound.value + _EPSILON, 12)
        elif metric.class_name == 'TopClassShare':
          found['top_class_share_limit'] = config_lib.TOP_CLASS_SHARE_LIMIT
  return found


def _value(value) -> Optional[float]:
  kind = value.WhichOneof('type')
  return float(value.double_value.value) if kind == 'double_value' else None


def overall_metrics(metrics_for_slices: Sequence[Any]) -> Dict[str, Dict[Any, float]]:
  """{model name: {(metric name, class id or None, is_diff): value}} of the overall slice
  (TFMA MetricsForSlice protos, e.g. ``tfma.load_metrics(uri)``)."""
  out: Dict[str, Dict[Any, float]] = {}
  for for_slice in metrics_for_slices:
    if for_slice.slice_key.single_slice_keys or for_slice.HasField('cross_slice_key'):
      continue
    for kv in for_slice.metric_keys_and_values:
      value = _value(kv.value)
      if value is None:
        continue
      class_id = kv.key.sub_key.class_id.value if kv.key.sub_key.HasField('class_id') else None
      out.setdefault(kv.key.model_name, {})[(kv.key.name, class_id, kv.key.is_diff)] = value
  return out


def overall_confusion(plots_for_slices: Sequence[Any], model_name: str) -> Dict[Any, float]:
  """{(label, predicted class): count} of the overall slice's confusion matrix plot."""
  for for_slice in plots_for_slices:
    if for_slice.slice_key.single_slice_keys:
      continue
    for kv in for_slice.plot_keys_and_values:
      if kv.key.model_name != model_name or not kv.value.HasField(
          'multi_class_confusion_matrix_at_thresholds'):
        continue
      (matrix,) = kv.value.multi_class_confusion_matrix_at_thresholds.matrices[:1]
      return {(e.actual_class_id, e.predicted_class_id): e.num_weighted_examples
              for e in matrix.entries}
  return {}


def build_report(output_uri: str, config: tfma.EvalConfig, class_names: Mapping[int, str],
                 splits: Sequence[str], blessed: bool, baseline_uri: str = '',
                 mask_dice: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """The evaluation report (``report.py`` documents its fields) from TFMA's output at
  ``output_uri`` (metrics, plots, validation result); ``config`` is the eval config the
  Evaluator was given (its thresholds: TFX drops the change threshold when there is no
  baseline)."""
  ran = eval_config_writer.load_eval_run(output_uri)[0]
  by_model = overall_metrics(list(tfma.load_metrics(output_uri)))
  candidate = tfma.CANDIDATE_KEY if tfma.CANDIDATE_KEY in by_model else ''
  values = by_model.get(candidate, {})
  shared = by_model.get('', {})  # model-independent (example count)

  def get(name, class_id=None, diff=False, model=values):
    value = model.get((name, class_id, diff), shared.get((name, class_id, diff)))
    return None if value is None or math.isnan(value) else value

  matrix = overall_confusion(list(tfma.load_plots(output_uri)), candidate)
  labels = {k: sum(v for (a, _), v in matrix.items() if a == k) for k in class_names}
  predicted = {k: sum(v for (_, p), v in matrix.items() if p == k) for k in class_names}
  count = get('example_count') or float(sum(labels.values()))
  majority = max(labels, key=lambda k: (labels[k], -k)) if labels else None
  top = max(predicted, key=lambda k: (predicted[k], -k)) if predicted else None
  classes = [dict(label=k, name=class_names[k], examples=int(labels.get(k, 0)),
                  predicted=int(predicted.get(k, 0)),
                  precision=get(metrics_lib.PRECISION, k), recall=get(metrics_lib.RECALL, k),
                  auc=get(AUC, k)) for k in sorted(class_names)]
  baseline = None
  if baseline_uri:
    base_values = by_model.get(tfma.BASELINE_KEY, {})
    baseline = dict(model_uri=baseline_uri, accuracy=get(ACCURACY, model=base_values),
                    accuracy_change=get(ACCURACY, diff=True))
  validation = tfma.load_validation_result(output_uri)
  failures = [dict(metric=f.metric_key.name, is_diff=f.metric_key.is_diff,
                   value=_value(f.metric_value), message=f.message)
              for per_slice in validation.metric_validations_per_slice
              for f in per_slice.failures]
  report = dict(
      splits=list(splits), examples=int(count), class_names={str(k): v for k, v in
                                                           sorted(class_names.items())},
      accuracy=get(ACCURACY), majority_class=None if majority is None else class_names[majority],
      majority_class_rate=get(metrics_lib.MAJORITY_CLASS_RATE),
      accuracy_over_majority=get(metrics_lib.ACCURACY_OVER_MAJORITY),
      top_class=None if top is None else class_names[top],
      top_class_share=get(metrics_lib.TOP_CLASS_SHARE), classes=classes,
      confusion_matrix=[[int(matrix.get((a, p), 0)) for p in sorted(class_names)]
                        for a in sorted(class_names)],
      unpredicted=int(sum(v for (_, p), v in matrix.items() if p < 0)),
      thresholds=thresholds(config), baseline=baseline, mask_dice=mask_dice,
      blessed=bool(blessed), failures=failures,
      eval_config=json_format.MessageToDict(ran))
  report['reasons'] = report_lib.reasons(report)
  return report
