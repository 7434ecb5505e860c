"""The Evaluator's report, ``evaluation_summary.json`` in its ``evaluation`` artifact (pure: no
TensorFlow; ``evaluation.build_report`` writes it, ``cxr-tfx run`` prints it).

Fields: ``splits`` (evaluated), ``examples`` (their number), ``class_names`` ({"label":
name}), ``accuracy``, ``majority_class`` and ``majority_class_rate`` (the labels' largest
class and its share), ``accuracy_over_majority``, ``top_class`` and ``top_class_share`` (the
most predicted class and its share), ``classes`` (per class: ``label``, ``name``,
``examples``, ``predicted``, ``precision``, ``recall``, one-vs-rest ``auc``; null where
undefined), ``confusion_matrix`` (rows: label, columns: predicted class, in label order),
``unpredicted``, ``thresholds`` (``majority_margin``, ``min_accuracy``, ``max_regression``,
``top_class_share_limit``), ``baseline`` (null, or the blessed model compared with:
``model_uri``, ``accuracy``, ``accuracy_change``), ``mask_dice`` (null, or ``mean`` and
``examples``: Dice of the thresholded mask over the split's records that have a mask),
``blessed``, ``failures`` (TFMA's failed thresholds), ``reasons`` (why it was or was not
blessed, in words) and ``eval_config`` (TFMA's, as run).
"""
import json
import os
from typing import Any, Dict, List, Optional

from components.errors import escape_name

REPORT_FILE = 'evaluation_summary.json'


def _f(value: Optional[float], digits: int = 3) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _pct(value: Optional[float]) -> str:
  return '-' if value is None else f'{100 * value:.0f}%'


def reasons(report: Dict[str, Any]) -> List[str]:
  """Why the model was (every rule, passed) or was not (each rule it failed) blessed."""
  t = report.get('thresholds', {})
  margin = t.get('majority_margin', 0.0)
  accuracy, rate = report.get('accuracy'), report.get('majority_class_rate')
  need = None if rate is None else rate + margin
  majority = escape_name(str(report.get('majority_class')))
  top = escape_name(str(report.get('top_class')))
  limit = t.get('top_class_share_limit', 0.95)
  failed = {(f['metric'], f['is_diff']) for f in report.get('failures', [])}
  out = []
  lift = (f'accuracy {_f(accuracy)} {{}} the majority-class rate {_f(rate)} ({majority}) + '
          f'margin {margin:g} = {_f(need)}')
  out.append(lift.format('is below') if ('accuracy_over_majority', False) in failed
             else lift.format('>='))
  share = f'predicts {top} for {_pct(report.get("top_class_share"))} of the examples'
  out.append(f'{share} (>= {_pct(limit)}: a one-class model is never blessed)'
             if ('top_class_share', False) in failed else f'{share} (< {_pct(limit)})')
  if ('sparse_categorical_accuracy', False) in failed:
    out.append(f'accuracy {_f(accuracy)} is below --min-accuracy {t.get("min_accuracy", 0):g}')
  baseline = report.get('baseline')
  if baseline:
    regression = t.get('max_regression', 0.0)
    compared = (f"the blessed model's accuracy {_f(baseline.get('accuracy'))} on the same "
                f"examples (change {_f(baseline.get('accuracy_change'))}, at most "
                f"-{regression:g} allowed; {baseline.get('model_uri')})")
    out.append(f'worse than {compared}' if ('sparse_categorical_accuracy', True) in failed
               else f'not worse than {compared}')
  else:
    out.append('no blessed model yet to compare with')
  known = {'accuracy_over_majority', 'top_class_share', 'sparse_categorical_accuracy'}
  out += [f"{f['metric']}: {f['message']}" for f in report.get('failures', [])
          if f['metric'] not in known]
  return out


def load(evaluation_uri: str) -> Optional[Dict[str, Any]]:
  """The report of an Evaluator's output folder, or None when it has none (a stock
  Evaluator's, or an execution from before the report existed)."""
  path = os.path.join(evaluation_uri, REPORT_FILE)
  if '://' in path:
    import tensorflow as tf  # a remote store: only TensorFlow's file system reads it
    if not tf.io.gfile.exists(path):
      return None
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def format_lines(report: Dict[str, Any]) -> List[str]:
  """The report as the run summary prints it: split and count, accuracy against what blesses,
  per-class precision / recall / AUC, the confusion matrix, the mask Dice, the verdict."""
  splits = ', '.join(report.get('splits', []))
  lines = [f"evaluated on split {splits}: {report.get('examples', 0)} examples; accuracy "
           f"{_f(report.get('accuracy'))}, majority-class rate "
           f"{_f(report.get('majority_class_rate'))} "
           f"({escape_name(str(report.get('majority_class')))})"]
  classes = report.get('classes', [])
  names = [escape_name(c['name']) for c in classes]
  width = max([len(n) for n in names] + [len('class')])
  lines.append(f"  {'class'.ljust(width)}  examples  predicted  precision  recall    AUC")
  for name, c in zip(names, classes):
    lines.append(f"  {name.ljust(width)}  {c['examples']:8d}  {c['predicted']:9d}  "
                 f"{_f(c['precision']):>9}  {_f(c['recall']):>6}  {_f(c['auc']):>5}")
  lines.append('  confusion matrix (rows: label, columns: predicted, in the order above):')
  cell = max([len(str(v)) for row in report.get('confusion_matrix', []) for v in row] + [1])
  for name, row in zip(names, report.get('confusion_matrix', [])):
    lines.append(f"    {name.ljust(width)}  " + ' '.join(str(v).rjust(cell) for v in row))
  if report.get('unpredicted'):
    lines.append(f"  {report['unpredicted']} examples without a predicted class")
  dice = report.get('mask_dice')
  if dice and dice.get('examples'):
    lines.append(f"lung masks: mean Dice {_f(dice.get('mean'))} over the {dice['examples']} "
                 f'examples of split {splits} that have a mask')
  verdict = 'blessed' if report.get('blessed') else 'NOT blessed'
  lines.append(f'{verdict}: ' + '; '.join(report.get('reasons', [])))
  return lines
