"""TFMA metrics the blessing needs and TFMA does not have, derived from its multi-class
confusion matrix (each example counted once, under its label and its top-scored class).

* ``AccuracyOverMajority`` (``accuracy_over_majority``): accuracy minus the share of the
  largest class among the labels -- what a model that always answers that class scores. Also
  emits ``majority_class_rate``. The Evaluator requires it >= the majority margin.
* ``TopClassShare`` (``top_class_share``): the share of the examples given the most predicted
  class. The Evaluator refuses a model at >= ``config.TOP_CLASS_SHARE_LIMIT``.
* ``ClassPrecisionRecall``: ``precision`` and ``recall`` of each class (sub key ``classId``),
  from the top-scored class, as the confusion matrix counts them; and ``classes_seen``, the
  number of classes among the labels and predictions.

The Evaluator loads them by module path (``MetricConfig(class_name=..., module=__name__)``), so
this module must be importable where it runs (installed, or in the container image).
"""
import collections
from typing import Any, Dict, List, Optional, Tuple

from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as matrices_lib
from tensorflow_model_analysis.proto import config_pb2

ACCURACY_OVER_MAJORITY = 'accuracy_over_majority'
MAJORITY_CLASS_RATE = 'majority_class_rate'
TOP_CLASS_SHARE = 'top_class_share'
PRECISION = 'precision'
RECALL = 'recall'
CLASSES_SEEN = 'classes_seen'
_THRESHOLD = 0.0  # every example has a predicted class (its top score is > 0)


class Tally(collections.namedtuple('Tally', 'labels predicted correct total')):
  """Example counts: per label, per predicted class, correct, all."""


def tally(matrices: Dict[float, Dict[Any, float]]) -> Tally:
  """A confusion matrix (TFMA's ``Matrices`` at threshold 0) -> its counts."""
  labels: Dict[int, float] = collections.Counter()
  predicted: Dict[int, float] = collections.Counter()
  correct = total = 0.0
  for key, count in matrices.get(_THRESHOLD, {}).items():
    labels[key.actual_class_id] += count
    predicted[key.predicted_class_id] += count
    correct += count if key.actual_class_id == key.predicted_class_id else 0.0
    total += count
  return Tally(dict(labels), dict(predicted), correct, total)


def _divide(a: float, b: float) -> float:
  return a / b if b else float('nan')


def _matrices(eval_config: Optional[config_pb2.EvalConfig], model_name: str, output_name: str,
              example_weighted: bool) -> Tuple[List[Any], metric_types.MetricKey]:
  computations = matrices_lib.multi_class_confusion_matrices(
      thresholds=[_THRESHOLD], eval_config=eval_config, model_name=model_name,
      output_name=output_name, example_weighted=example_weighted)
  return computations, computations[-1].keys[-1]


def _key(name: str, model_name: str, output_name: str, example_weighted: bool,
         sub_key: Optional[metric_types.SubKey] = None) -> metric_types.MetricKey:
  return metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                sub_key=sub_key, example_weighted=example_weighted)


def _accuracy_over_majority(name: str = ACCURACY_OVER_MAJORITY,
                            eval_config: Optional[config_pb2.EvalConfig] = None,
                            model_name: str = '', output_name: str = '',
                            example_weighted: bool = False) -> metric_types.MetricComputations:
  computations, matrices_key = _matrices(eval_config, model_name, output_name, example_weighted)
  key = _key(name, model_name, output_name, example_weighted)
  rate_key = _key(MAJORITY_CLASS_RATE, model_name, output_name, example_weighted)

  def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
    counts = tally(metrics[matrices_key])
    majority = _divide(max(counts.labels.values(), default=0.0), counts.total)
    return {key: _divide(counts.correct, counts.total) - majority, rate_key: majority}

  computations.append(metric_types.DerivedMetricComputation(keys=[key, rate_key],
                                                            result=result))
  return computations


def _top_class_share(name: str = TOP_CLASS_SHARE,
                     eval_config: Optional[config_pb2.EvalConfig] = None,
                     model_name: str = '', output_name: str = '',
                     example_weighted: bool = False) -> metric_types.MetricComputations:
  computations, matrices_key = _matrices(eval_config, model_name, output_name, example_weighted)
  key = _key(name, model_name, output_name, example_weighted)

  def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
    counts = tally(metrics[matrices_key])
    return {key: _divide(max(counts.predicted.values(), default=0.0), counts.total)}

  computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
  return computations


def _class_precision_recall(name: str = PRECISION,
                            eval_config: Optional[config_pb2.EvalConfig] = None,
                            model_name: str = '', output_name: str = '',
                            example_weighted: bool = False) -> metric_types.MetricComputations:
  del name  # PRECISION and RECALL, one sub key per class (known once the matrix is)
  computations, matrices_key = _matrices(eval_config, model_name, output_name, example_weighted)
  # The declared key identifies the computation (TFMA deduplicates derived computations by
  # their keys and their result function's type, which is 'function' for every function).
  seen_key = _key(CLASSES_SEEN, model_name, output_name, example_weighted)

  def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
    counts = tally(metrics[matrices_key])
    classes = sorted(c for c in set(counts.labels) | set(counts.predicted) if c >= 0)
    out = {seen_key: float(len(classes))}
    hits = {k.actual_class_id: v for k, v in metrics[matrices_key].get(_THRESHOLD, {}).items()
            if k.actual_class_id == k.predicted_class_id}
    for class_id in classes:
      sub_key = metric_types.SubKey(class_id=class_id)
      out[_key(PRECISION, model_name, output_name, example_weighted, sub_key)] = _divide(
          hits.get(class_id, 0.0), counts.predicted.get(class_id, 0.0))
      out[_key(RECALL, model_name, output_name, example_weighted, sub_key)] = _divide(
          hits.get(class_id, 0.0), counts.labels.get(class_id, 0.0))
    return out

  computations.append(metric_types.DerivedMetricComputation(keys=[seen_key], result=result))
  return computations


class AccuracyOverMajority(metric_types.Metric):
  """Accuracy minus the majority-class rate of the evaluated examples (and that rate)."""

  def __init__(self, name: str = ACCURACY_OVER_MAJORITY):
    super().__init__(metric_util.merge_per_key_computations(_accuracy_over_majority),
                     name=name)


class TopClassShare(metric_types.Metric):
  """The share of the evaluated examples whose top-scored class is the most frequent one."""

  def __init__(self, name: str = TOP_CLASS_SHARE):
    super().__init__(metric_util.merge_per_key_computations(_top_class_share), name=name)


class ClassPrecisionRecall(metric_types.Metric):
  """Precision and recall of every class, from the top-scored class."""

  def __init__(self, name: str = PRECISION):
    super().__init__(metric_util.merge_per_key_computations(_class_precision_recall),
                     name=name)

  @property
  def compute_confidence_interval(self) -> bool:
    return False
