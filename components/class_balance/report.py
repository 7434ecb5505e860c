"""ClassBalance's outputs and fail policy: writes ``Split-<name>/SchemaDiff.pb`` (TFDV
Anomalies, ``anomalies.py``), ``balance_report.json`` (``BalanceResult.to_dict``) and
``balance_report.html`` (``html_report.py``); stops the run when asked to. Used by the executor
and by ``cxr-tfx report``.
"""
import json
import os
from typing import Dict

from absl import logging
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.class_balance import anomalies as anomalies_lib
from components.class_balance import html_report
from components.class_balance.measure import BalanceResult
from components.errors import CxrError

ANOMALIES_FILE = 'SchemaDiff.pb'  # TFDV/ExampleValidator's name, so TFDV's tools read it
JSON_REPORT = 'balance_report.json'
HTML_REPORT = 'balance_report.html'


class ImbalanceError(CxrError, RuntimeError):
  """fail_on_imbalance=True and the stratification verdict failed; the message says where."""


class DriftError(CxrError, RuntimeError):
  """fail_on_drift=True and the class mix drifted from the baseline span; the message says by
  how much and names the report."""


def write(result: BalanceResult, output_uri: str, schema: schema_pb2.Schema) -> Dict[str, str]:
  """Writes Split-<s>/SchemaDiff.pb, the JSON and the HTML report. Returns their paths."""
  for split, anomalies in anomalies_lib.build(result, schema).items():
    folder = os.path.join(output_uri, f'Split-{split}')
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, ANOMALIES_FILE), 'wb') as f:
      f.write(anomalies.SerializeToString(deterministic=True))
  paths = {'json': os.path.join(output_uri, JSON_REPORT),
           'html': os.path.join(output_uri, HTML_REPORT)}
  with tf.io.gfile.GFile(paths['json'], 'w') as f:
    json.dump(result.to_dict(), f, indent=1, sort_keys=False)
  with tf.io.gfile.GFile(paths['html'], 'w') as f:
    f.write(html_report.render(result))
  logging.info('ClassBalance: %s; report %s', result.verdict, paths['html'])
  return paths


FAILED_REPORTS_PREFIX = 'failed-'  # <output uri>/../failed-<execution>/: kept after a stop


def stops_the_run(result: BalanceResult) -> bool:
  """True when raise_if_imbalanced or raise_if_drifted will raise."""
  return bool((result.config.fail_on_imbalance and result.stratification_findings)
              or (result.config.fail_on_drift and result.class_mix_drift_findings))


def failed_reports_dir(output_uri: str) -> str:
  """Where a stopped run's reports are kept: next to the output folder, under a name cleanup
  does not remove (it removes only ``<component>/<key>/<execution id>`` folders)."""
  parent, name = os.path.split(output_uri.rstrip('/'))
  return os.path.join(parent, FAILED_REPORTS_PREFIX + name)


def keep_reports(paths: Dict[str, str], target_dir: str) -> Dict[str, str]:
  """Copies the JSON and HTML reports to ``target_dir`` -> their new paths."""
  tf.io.gfile.makedirs(target_dir)
  kept = {}
  for kind, path in paths.items():
    kept[kind] = os.path.join(target_dir, os.path.basename(path))
    tf.io.gfile.copy(path, kept[kind], overwrite=True)
  return kept


def raise_if_imbalanced(result: BalanceResult, html_path: str) -> None:
  """fail_on_imbalance: stops on stratification findings (never on the dataset's own class
  imbalance, which class weights address, nor on warnings)."""
  bad = result.stratification_findings
  if result.config.fail_on_imbalance and bad:
    listed = '\n  '.join(f.message for f in bad[:10])
    more = f'\n  ... and {len(bad) - 10} more' if len(bad) > 10 else ''
    raise ImbalanceError(f'class balance check failed: {result.stratification_verdict} '
                         f'(fail_on_imbalance=True):\n  {listed}{more}\nreport: {html_path}')


def raise_if_drifted(result: BalanceResult, html_path: str) -> None:
  """fail_on_drift: stops when the class mix drifted from the baseline span (the class-mix ERROR
  findings; never on image/mask drift warnings nor on group leakage, which are reported)."""
  bad = result.class_mix_drift_findings
  if result.config.fail_on_drift and bad:
    listed = '\n  '.join(f.message for f in bad)
    raise DriftError(f'drift check failed: span {result.drift.current_span} vs span '
                     f'{result.drift.baseline.span} (fail_on_drift=True; raise the thresholds '
                     f'with --max-drift-linf/--max-drift-js if the shift is expected):\n'
                     f'  {listed}\nreport: {html_path}')
