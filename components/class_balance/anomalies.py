"""ClassBalance's results as TFDV Anomalies, one proto per split (pure: protos only).

Written directly, from the measures computed once (``balance.measure``): for the split and each
of its shard files a ``drift_skew_info`` entry with TFDV's two measurements (L-infinity and
Jensen-Shannon, value and threshold), under the path ``class`` (the split) or ``class/<shard
file>``; and an ``anomaly_info`` entry per feature path with a reason per finding, severity ERROR
or WARNING. ``tfdv.display_anomalies`` and ``anomalies_util.load_anomalies_binary`` read them.
Paths: stratification, class-imbalance and label findings (near-duplicates carrying two
labels too) under ``class``, a shard's under ``class/<shard file>``, mask findings under
``mask``, leakage (near-duplicates across splits too) under ``image_sha256``, image-quality and
shortcut-risk findings under ``image``.

Drift from the baseline span N (``drift.py``): every split's file carries a ``drift_skew_info``
entry under ``class/drift_from_span_<N>`` with the class mix's two measurements (this span vs
span N, all splits pooled; the same in every split's file), and the drift findings under
``class/drift_from_span_<N>`` (class mix), ``image/drift_from_span_<N>`` (image sizes and modes)
and ``mask/drift_from_span_<N>`` (mask presence and coverage); groups leaking across spans under
``group_hash``; images re-sent from an earlier span (a warning) under ``image_sha256``, like
the other leakage findings, in every split's file.
"""
from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from components import features
from components.class_balance import balance
from components.class_balance.measure import BalanceResult

_Measurement = anomalies_pb2.DriftSkewInfo.Measurement
_SEVERITY = {balance.ERROR: anomalies_pb2.AnomalyInfo.ERROR,
             balance.WARNING: anomalies_pb2.AnomalyInfo.WARNING}
_REASON = {
    balance.LINF: anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    balance.JS: anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    balance.DRIFT_LINF: anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    balance.DRIFT_JS: anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    balance.IMAGE_SIZE_DRIFT: anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    balance.IMAGE_MODE_DRIFT: anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    balance.MASK_COVERAGE_DRIFT: (
        anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH),
}
# Drift findings: the feature whose path gets the 'drift_from_span_<N>' step.
_DRIFT_FEATURE = {
    balance.DRIFT_LINF: features.LABEL, balance.DRIFT_JS: features.LABEL,
    balance.IMAGE_SIZE_DRIFT: features.IMAGE, balance.IMAGE_MODE_DRIFT: features.IMAGE,
    balance.MASK_PRESENCE_SPAN_DRIFT: features.MASK, balance.MASK_COVERAGE_DRIFT: features.MASK,
}
_SPAN_GROUP_CHECKS = frozenset([balance.SPAN_LEAKAGE, balance.SPAN_SPLIT_CHANGE,
                                balance.SPAN_GROUPS_NOT_COMPARABLE])


def _path(finding: balance.Finding, drift_step: str) -> str:
  if finding.check in _DRIFT_FEATURE:
    return f'{_DRIFT_FEATURE[finding.check]}/{drift_step}'
  if finding.check in _SPAN_GROUP_CHECKS:
    return features.GROUP_HASH
  if finding.kind == balance.KIND_MASKS:
    return features.MASK
  if finding.kind == balance.KIND_LEAKAGE:
    return features.IMAGE_SHA256
  if finding.kind in (balance.KIND_QUALITY, balance.KIND_SHORTCUT):
    return features.IMAGE
  return f'{features.LABEL}/{finding.shard}' if finding.shard else features.LABEL


def _splits_of(finding: balance.Finding, splits: List[str]) -> List[str]:
  if not finding.split:  # the whole dataset: every split's anomalies carry it
    return list(splits)
  return [s for s in finding.split.split('/') if s in splits]


def _add(anomalies: anomalies_pb2.Anomalies, finding: balance.Finding, drift_step: str) -> None:
  key = _path(finding, drift_step)
  info = anomalies.anomaly_info[key]
  info.path.step[:] = key.split('/', 1)  # 'class/<shard file>' -> ['class', '<shard file>']
  info.reason.add(type=_REASON.get(finding.check, anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION),
                  short_description=finding.check, description=finding.message)
  severity = _SEVERITY[finding.severity]
  if severity > info.severity:  # ERROR (2) > WARNING (1) > UNKNOWN (0)
    info.severity = severity
  info.short_description = (info.reason[0].short_description if len(info.reason) == 1
                            else 'Multiple errors')
  info.description = ' '.join(r.description for r in info.reason)


def build(result: BalanceResult, schema: schema_pb2.Schema) -> Dict[str, anomalies_pb2.Anomalies]:
  """-> {split: Anomalies}: every unit's measurements and every finding, TFDV's format."""
  out = {split: anomalies_pb2.Anomalies() for split in result.splits}
  for m in result.measurements:
    entry = out[m.unit.split].drift_skew_info.add()
    entry.path.step.append(features.LABEL)
    if m.unit.shard:
      entry.path.step.append(m.unit.shard)
    entry.drift_measurements.add(type=_Measurement.L_INFTY, value=m.linf,
                                 threshold=m.linf_threshold)
    entry.drift_measurements.add(type=_Measurement.JENSEN_SHANNON_DIVERGENCE, value=m.js,
                                 threshold=m.js_threshold)
  mix = result.drift.class_mix
  for split in out if mix is not None else ():  # this span vs the baseline span, pooled
    entry = out[split].drift_skew_info.add()
    entry.path.step.extend([features.LABEL, result.drift.path_step])
    entry.drift_measurements.add(type=_Measurement.L_INFTY, value=mix.linf,
                                 threshold=mix.max_linf)
    entry.drift_measurements.add(type=_Measurement.JENSEN_SHANNON_DIVERGENCE, value=mix.js,
                                 threshold=mix.max_js)
  for finding in result.findings:
    for split in _splits_of(finding, result.splits):
      _add(out[split], finding, result.drift.path_step)
  for anomalies in out.values():
    anomalies.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    anomalies.baseline.CopyFrom(schema)
  return out
