"""The blessing's TFMA metrics (components/trainer/metrics.py) on confusion matrices, the eval
config's thresholds, and the report's words (components/trainer/report.py).

The metrics are derived from TFMA's multi-class confusion matrix: each is checked here through
the computations TFMA builds from the metric (the derived step called on a matrix, as TFMA's
evaluator calls it per slice); whole evaluations run in tests/pipeline/test_train.py.
"""
import json
import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

# {(label, predicted class): count}, 2..5 classes
matrices_st = st.integers(2, 5).flatmap(lambda k: st.dictionaries(
    st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), st.integers(1, 40), min_size=1))


def _derived(metric, counts):
  """{(metric name, class id or None): value}: ``metric``'s computations (as TFMA builds them
  for one model and output) with the derived step run on the confusion matrix ``counts``."""
  from tensorflow_model_analysis.metrics import metric_types
  from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as lib
  computations = metric.computations()
  (matrices_key,) = computations[0].keys
  matrices = lib.Matrices({0.0: {lib.MatrixEntryKey(a, p): float(n)
                                 for (a, p), n in counts.items()}})
  out = {}
  for c in computations:
    if isinstance(c, metric_types.DerivedMetricComputation):
      for key, value in c.result({matrices_key: matrices}).items():
        out[(key.name, key.sub_key.class_id if key.sub_key else None)] = value
  return out


@settings(max_examples=60, deadline=None)
@given(matrices_st)
def test_accuracy_over_majority_and_top_class_share_follow_the_matrix(counts):
  from components.trainer import metrics
  total = sum(counts.values())
  labels, predicted = {}, {}
  for (a, p), n in counts.items():
    labels[a] = labels.get(a, 0) + n
    predicted[p] = predicted.get(p, 0) + n
  accuracy = sum(n for (a, p), n in counts.items() if a == p) / total
  got = _derived(metrics.AccuracyOverMajority(), counts)
  assert got[('majority_class_rate', None)] == pytest.approx(max(labels.values()) / total)
  assert got[('accuracy_over_majority', None)] == pytest.approx(
      accuracy - max(labels.values()) / total)
  share = _derived(metrics.TopClassShare(), counts)[('top_class_share', None)]
  assert share == pytest.approx(max(predicted.values()) / total)


@settings(max_examples=60, deadline=None)
@given(matrices_st)
def test_per_class_precision_and_recall(counts):
  from components.trainer import metrics
  got = _derived(metrics.ClassPrecisionRecall(), counts)
  classes = sorted({a for a, _ in counts} | {p for _, p in counts})
  assert got[('classes_seen', None)] == len(classes)
  for k in classes:
    hits = counts.get((k, k), 0)
    as_k = sum(n for (_, p), n in counts.items() if p == k)
    of_k = sum(n for (a, _), n in counts.items() if a == k)
    for name, denominator in (('precision', as_k), ('recall', of_k)):
      value = got[(name, k)]
      assert (math.isnan(value) if not denominator else
              value == pytest.approx(hits / denominator)), (name, k)


def test_a_one_class_model_and_the_majority():
  """Always answering the largest class: accuracy == majority rate (lift 0), top share 1."""
  from components.trainer import metrics
  counts = {(0, 1): 3, (1, 1): 6, (2, 1): 1}
  assert _derived(metrics.AccuracyOverMajority(), counts)[
      ('accuracy_over_majority', None)] == pytest.approx(0.0)
  assert _derived(metrics.TopClassShare(), counts)[('top_class_share', None)] == 1.0


def test_each_model_gets_its_own_per_class_computation():
  """TFMA drops derived computations it takes for duplicates (same keys, same result type):
  the candidate's and the baseline's per-class metrics must differ in their keys."""
  from tensorflow_model_analysis.metrics import metric_types

  from components.trainer import metrics
  derived = [c for c in metrics.ClassPrecisionRecall().computations(
      model_names=['candidate', 'baseline'])
             if isinstance(c, metric_types.DerivedMetricComputation)]
  assert len(derived) == 2 and derived[0] != derived[1]


def test_the_eval_config_blesses_on_the_overall_slice_with_the_configs_numbers():
  import tensorflow_model_analysis as tfma

  from components.trainer import evaluation
  from components.trainer.config import TOP_CLASS_SHARE_LIMIT
  from components.trainer.config import TrainConfig
  config = evaluation.eval_config(TrainConfig(majority_margin=0.2, min_accuracy=0.3,
                                              max_regression=0.05))
  assert evaluation.thresholds(config) == {'majority_margin': 0.2, 'min_accuracy': 0.3,
                                           'max_regression': 0.05,
                                           'top_class_share_limit': TOP_CLASS_SHARE_LIMIT}
  by_name = {m.class_name: m for m in config.metrics_specs[0].metrics}
  for name in ('SparseCategoricalAccuracy', 'AccuracyOverMajority', 'TopClassShare'):
    (threshold,) = by_name[name].per_slice_thresholds
    assert list(threshold.slicing_specs) == [tfma.SlicingSpec()]  # the overall slice only
  top = by_name['TopClassShare'].per_slice_thresholds[0].threshold.value_threshold
  assert top.upper_bound.value < TOP_CLASS_SHARE_LIMIT  # a share of exactly 95% fails
  change = by_name['SparseCategoricalAccuracy'].per_slice_thresholds[0].threshold
  assert change.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  assert by_name['AccuracyOverMajority'].module == 'components.trainer.metrics'
  with_auc = evaluation.with_class_ids(config, 3)
  assert list(with_auc.metrics_specs[-1].binarize.class_ids.values) == [0, 1, 2]
  assert len(config.metrics_specs) == 1  # the original is left as it was
  tfma.utils.verify_eval_config(with_auc)


def _report(**changes):
  report = dict(splits=['test'], examples=10, accuracy=0.5, majority_class='Normal',
                majority_class_rate=0.6, top_class='Normal', top_class_share=0.97,
                classes=[dict(label=0, name='COVID', examples=4, predicted=1, precision=1.0,
                              recall=0.25, auc=0.9),
                         dict(label=1, name='Normal', examples=6, predicted=9, precision=0.44,
                              recall=None, auc=None)],
                confusion_matrix=[[1, 3], [0, 6]], unpredicted=0,
                thresholds=dict(majority_margin=0.1, min_accuracy=0.0, max_regression=0.0,
                                top_class_share_limit=0.95),
                baseline=None, mask_dice=dict(mean=0.93, examples=8), blessed=False,
                failures=[dict(metric='accuracy_over_majority', is_diff=False, value=-0.1,
                               message=''),
                          dict(metric='top_class_share', is_diff=False, value=0.97,
                               message='')])
  report.update(changes)
  return report


def test_the_report_says_why_in_words():
  from components.trainer import report as report_lib
  reasons = report_lib.reasons(_report())
  assert reasons[0] == ('accuracy 0.500 is below the majority-class rate 0.600 (Normal) + '
                        'margin 0.1 = 0.700')
  assert reasons[1] == ('predicts Normal for 97% of the examples (>= 95%: a one-class model is '
                        'never blessed)')
  assert reasons[2] == 'no blessed model yet to compare with'
  worse = _report(failures=[dict(metric='sparse_categorical_accuracy', is_diff=True, value=-0.2,
                                 message='')], top_class_share=0.5, accuracy=0.8,
                  baseline=dict(model_uri='/m/1', accuracy=1.0, accuracy_change=-0.2))
  assert report_lib.reasons(worse)[:2] == [
      'accuracy 0.800 >= the majority-class rate 0.600 (Normal) + margin 0.1 = 0.700',
      'predicts Normal for 50% of the examples (< 95%)']
  assert report_lib.reasons(worse)[2].startswith("worse than the blessed model's accuracy 1.000 "
                                                 'on the same examples (change -0.200')


def test_the_report_prints_split_count_classes_and_matrix(tmp_path):
  from components.trainer import report as report_lib
  report = _report(classes=[dict(_report()['classes'][0], name='CO\nVID'),
                            _report()['classes'][1]])
  report['reasons'] = report_lib.reasons(report)
  lines = report_lib.format_lines(report)
  assert lines[0] == ('evaluated on split test: 10 examples; accuracy 0.500, majority-class '
                      'rate 0.600 (Normal)')
  assert lines[1].split() == ['class', 'examples', 'predicted', 'precision', 'recall', 'AUC']
  assert lines[2].split() == ['CO\\nVID', '4', '1', '1.000', '0.250', '0.900']  # escaped
  assert lines[3].split() == ['Normal', '6', '9', '0.440', '-', '-']
  assert [line.split()[-2:] for line in lines[5:7]] == [['1', '3'], ['0', '6']]
  assert lines[7] == ('lung masks: mean Dice 0.930 over the 8 examples of split test that have '
                      'a mask')
  assert lines[-1].startswith('NOT blessed: accuracy 0.500 is below')
  (tmp_path / report_lib.REPORT_FILE).write_text(json.dumps(report))
  assert report_lib.load(str(tmp_path)) == report
  assert report_lib.load(str(tmp_path / 'none')) is None
