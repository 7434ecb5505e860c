"""Builds ClassBalance's results from statistics + a scan of the shard files, and writes them:
TFDV Anomalies per split (``Split-<name>/SchemaDiff.pb``), ``balance_report.json`` and
``balance_report.html``. Used by the executor and by ``cxr-tfx report``.
"""
import dataclasses
import html
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.errors import CxrError
from components import features
from components.class_balance import balance
from components.class_balance import image_stats
from components.class_balance.config import BalanceConfig

ANOMALIES_FILE = 'SchemaDiff.pb'  # TFDV/ExampleValidator's name, so TFDV's tools read it
JSON_REPORT = 'balance_report.json'
HTML_REPORT = 'balance_report.html'


class SchemaError(CxrError, ValueError):
  """The schema does not describe the class feature as ClassBalance needs."""


class ImbalanceError(CxrError, RuntimeError):
  """fail_on_imbalance=True and a balance check failed; the message says where."""


def class_names_from_schema(schema: schema_pb2.Schema) -> Dict[int, str]:
  """Labels 0..K-1 of the class feature's int_domain, named by its "<label>=<name>" tags."""
  feature = next((f for f in schema.feature if f.name == features.LABEL), None)
  if feature is None or not feature.HasField('int_domain'):
    raise SchemaError(f'the schema needs an INT feature {features.LABEL!r} with an int_domain '
                      '(min 0, max K-1, is_categorical: true); see schemas/schema.pbtxt.')
  names = {c: str(c) for c in range(feature.int_domain.min, feature.int_domain.max + 1)}
  for tag in feature.annotation.tag:
    label, sep, name = tag.partition('=')
    if sep and label.strip().isdigit() and int(label) in names:
      names[int(label)] = name
  return names


def split_class_counts(stats: statistics_pb2.DatasetFeatureStatisticsList,
                       split: str) -> Dict[int, int]:
  """Class counts from StatisticsGen's categorical statistics of the class feature."""
  for dataset in stats.datasets:
    for feature in dataset.features:
      name = feature.path.step[0] if feature.path.step else feature.name
      if name != features.LABEL:
        continue
      if not feature.HasField('string_stats'):
        raise SchemaError(
            f'split {split}: the statistics of {features.LABEL!r} are not categorical; give '
            'StatisticsGen the curated schema (int_domain.is_categorical: true).')
      buckets = feature.string_stats.rank_histogram.buckets
      values = ([(b.label, b.sample_count) for b in buckets] if buckets else
                [(v.value, v.frequency) for v in feature.string_stats.top_values])
      return {int(label): int(n) for label, n in values}
  raise SchemaError(f'split {split}: the statistics have no {features.LABEL!r} feature.')


def class_statistics(counts: Mapping[int, int]) -> statistics_pb2.DatasetFeatureStatisticsList:
  """Statistics of the class feature alone, in StatisticsGen's categorical form."""
  out = statistics_pb2.DatasetFeatureStatisticsList()
  dataset = out.datasets.add(num_examples=sum(counts.values()))
  feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
  feature.path.step.append(features.LABEL)
  string_stats = feature.string_stats
  string_stats.common_stats.num_non_missing = sum(counts.values())
  string_stats.unique = sum(1 for n in counts.values() if n)
  ranked = sorted(((n, c) for c, n in counts.items() if n), key=lambda x: (-x[0], x[1]))
  for rank, (n, c) in enumerate(ranked):
    string_stats.top_values.add(value=str(c), frequency=n)
    string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=str(c),
                                            sample_count=n)
  return out


def _comparator_schema(schema: schema_pb2.Schema, linf_threshold: float,
                       js_threshold: float) -> schema_pb2.Schema:
  out = schema_pb2.Schema()
  feature = out.feature.add()
  feature.CopyFrom(next(f for f in schema.feature if f.name == features.LABEL))
  # Only the distribution is compared here (ExampleValidator checks shape and presence), and
  # the class-only statistics carry no value counts to check them against.
  for field in ('shape', 'presence', 'value_count'):
    feature.ClearField(field)
  feature.drift_comparator.infinity_norm.threshold = linf_threshold
  feature.drift_comparator.jensen_shannon_divergence.threshold = js_threshold
  return out


def tfdv_compare(counts: Mapping[int, int], whole: Mapping[int, int], schema: schema_pb2.Schema,
                 linf_threshold: float, js_threshold: float
                 ) -> Tuple[anomalies_pb2.Anomalies, float, float]:
  """TFDV's drift comparator, unit vs whole -> (anomalies, L-infinity, JS divergence)."""
  anomalies = tfdv.validate_statistics(
      class_statistics(counts), _comparator_schema(schema, linf_threshold, js_threshold),
      previous_statistics=class_statistics(whole))
  measured = {}
  for info in anomalies.drift_skew_info:
    for m in info.drift_measurements:
      measured[anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type)] = m.value
  return anomalies, measured.get(balance.LINF, 0.0), measured.get(balance.JS, 0.0)


@dataclasses.dataclass
class BalanceResult:
  """Everything ClassBalance found; ``to_json`` is the JSON report."""
  verdict: str
  class_names: Dict[int, str]
  whole_counts: Dict[int, int]
  imbalance_ratio: float
  measurements: List[balance.Measurement]
  findings: List[balance.Finding]
  duplicates_across_splits: List[Dict[str, object]]
  image_statistics: Dict[str, Dict[str, object]]
  anomalies: Dict[str, anomalies_pb2.Anomalies]  # per split, TFDV format
  config: BalanceConfig

  @property
  def balance_findings(self) -> List[balance.Finding]:
    return [f for f in self.findings if f.kind == balance.KIND_BALANCE]

  def to_dict(self) -> Dict[str, object]:
    return {
        'verdict': self.verdict,
        'config': dataclasses.asdict(self.config),
        'class_names': {str(c): n for c, n in self.class_names.items()},
        'whole_counts': {self.class_names.get(c, str(c)): n for c, n in self.whole_counts.items()},
        'imbalance_ratio': (round(self.imbalance_ratio, 4)
                            if self.imbalance_ratio != float('inf') else 'inf'),
        'units': [{'unit': m.unit.name, 'kind': m.unit.kind, 'split': m.unit.split,
                   'shard': m.unit.shard, 'records': m.unit.size,
                   'class_counts': {self.class_names.get(c, str(c)): m.unit.counts.get(c, 0)
                                    for c in self.whole_counts},
                   'linf': round(m.linf, 6), 'linf_threshold': round(m.linf_threshold, 6),
                   'js': round(m.js, 8), 'js_threshold': round(m.js_threshold, 8),
                   'ok': m.ok} for m in self.measurements],
        'findings': [f.to_dict() for f in self.findings],
        'duplicates_across_splits': self.duplicates_across_splits,
        'image_statistics': self.image_statistics,
    }


def _add_finding(anomalies: anomalies_pb2.Anomalies, key: str, finding: balance.Finding,
                 reason_type: int) -> None:
  info = anomalies.anomaly_info[key]
  info.severity = anomalies_pb2.AnomalyInfo.ERROR
  info.path.step[:] = [key]
  reason = info.reason.add(type=reason_type, short_description=finding.check,
                           description=finding.message)
  info.short_description = reason.short_description if len(info.reason) == 1 else 'Multiple errors'
  info.description = ' '.join(r.description for r in info.reason)


_REASON = {
    balance.LINF: anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    balance.JS: anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
}


def evaluate(stats_by_split: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList],
             shard_scans: Sequence[Mapping[str, object]], schema: schema_pb2.Schema,
             config: BalanceConfig) -> BalanceResult:
  """Compares every split and shard with the whole; collects leakage and integrity findings."""
  names = class_names_from_schema(schema)
  split_counts = {s: split_class_counts(st, s) for s, st in stats_by_split.items()}
  shard_counts: Dict[str, List[Tuple[str, Dict[int, int]]]] = {}
  hashes: Dict[str, List[Tuple[str, str]]] = {}
  mismatches = []
  for scan in shard_scans:
    shard_counts.setdefault(scan['split'], []).append(
        (scan['shard'], {int(c): n for c, n in scan['class_counts'].items()}))
    for sha, image_id in scan['hashes']:
      hashes.setdefault(sha, []).append((scan['split'], image_id))
    mismatches.extend((scan['split'], scan['shard'], i) for i in scan['sha_mismatch'])
  whole = balance.whole_counts(split_counts, names)

  anomalies = {s: anomalies_pb2.Anomalies() for s in split_counts}
  measurements = []
  for unit in balance.units(split_counts, shard_counts):
    linf_thr, js_thr = balance.thresholds(unit.size, whole, config)
    unit_anomalies, linf, js = tfdv_compare(unit.counts, whole, schema, linf_thr, js_thr)
    measurements.append(balance.measure(unit, whole, config, linf, js))
    target = anomalies[unit.split]
    if unit.kind == balance.SPLIT:  # TFDV's own anomaly and measurements for the split
      target.MergeFrom(unit_anomalies)
    else:  # shards: TFDV's measurements, under the path class/<shard file>
      for info in unit_anomalies.drift_skew_info:
        entry = target.drift_skew_info.add()
        entry.CopyFrom(info)
        entry.path.step.append(unit.shard)

  duplicates = balance.cross_split_duplicates(hashes)
  findings = (balance.balance_findings(measurements, whole, names, config)
              + balance.count_findings(split_counts, shard_counts, names)
              + balance.duplicate_findings(duplicates) + balance.sha_findings(mismatches))
  for f in findings:
    splits = [f.split] if f.split in anomalies else f.split.split('/')
    for split in splits:
      if split not in anomalies:
        continue
      if f.check in _REASON and f.shard:
        _add_finding(anomalies[split], f'{features.LABEL}/{f.shard}', f, _REASON[f.check])
      elif f.check not in _REASON:
        key = features.IMAGE_SHA256 if f.check in (balance.DUPLICATE_ACROSS_SPLITS,
                                                   balance.SHA256_MISMATCH) else features.LABEL
        _add_finding(anomalies[split], key, f, anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION)
  for a in anomalies.values():
    a.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    if not a.HasField('baseline'):
      a.baseline.CopyFrom(schema)

  return BalanceResult(
      verdict=balance.verdict(findings), class_names=names, whole_counts=whole,
      imbalance_ratio=balance.imbalance_ratio(whole), measurements=measurements,
      findings=findings, duplicates_across_splits=duplicates,
      image_statistics=image_stats.by_split_and_class(list(shard_scans), names),
      anomalies=anomalies, config=config)


def write(result: BalanceResult, output_uri: str,
          stats_by_split: Optional[Mapping[str, statistics_pb2.DatasetFeatureStatisticsList]] = None
          ) -> Dict[str, str]:
  """Writes Split-<s>/SchemaDiff.pb, the JSON and the HTML report. Returns their paths."""
  for split, anomalies in result.anomalies.items():
    folder = os.path.join(output_uri, f'Split-{split}')
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, ANOMALIES_FILE), 'wb') as f:
      f.write(anomalies.SerializeToString(deterministic=True))
  paths = {'json': os.path.join(output_uri, JSON_REPORT),
           'html': os.path.join(output_uri, HTML_REPORT)}
  with tf.io.gfile.GFile(paths['json'], 'w') as f:
    json.dump(result.to_dict(), f, indent=1, sort_keys=False)
  with tf.io.gfile.GFile(paths['html'], 'w') as f:
    f.write(render_html(result, stats_by_split))
  logging.info('ClassBalance: %s; report %s', result.verdict, paths['html'])
  return paths


def raise_if_imbalanced(result: BalanceResult, html_path: str) -> None:
  bad = result.balance_findings
  if result.config.fail_on_imbalance and bad:
    listed = '\n  '.join(f.message for f in bad[:10])
    more = f'\n  ... and {len(bad) - 10} more' if len(bad) > 10 else ''
    raise ImbalanceError(f'class balance check failed ({len(bad)} findings; '
                         f'fail_on_imbalance=True):\n  {listed}{more}\nreport: {html_path}')


# ---------------------------------------------------------------------------------------------
# HTML

_PALETTE = ('#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1',
            '#ff9da7', '#9c755f', '#bab0ac')


def _shard_chart(result: BalanceResult) -> str:
  """Stacked horizontal bars, one per shard: class counts, as inline SVG (no scripts)."""
  shards = [m.unit for m in result.measurements if m.unit.kind == balance.SHARD]
  if not shards:
    return '<p>No shard files.</p>'
  labels = list(result.whole_counts)
  longest = max(u.size for u in shards) or 1
  bar_w, row_h, left = 520, 18, 330
  rows = []
  for i, u in enumerate(shards):
    y, x = 24 + i * row_h, left
    rows.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">'
                f'{html.escape(u.split)}/{html.escape(u.shard)}</text>')
    for k, c in enumerate(labels):
      w = bar_w * u.counts.get(c, 0) / longest
      rows.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 4}" '
                  f'fill="{_PALETTE[k % len(_PALETTE)]}"><title>{html.escape(result.class_names[c])}'
                  f': {u.counts.get(c, 0)}</title></rect>')
      x += w
    rows.append(f'<text x="{x + 4:.1f}" y="{y + 12}">{u.size}</text>')
  legend = ''.join(
      f'<rect x="{left + 130 * k}" y="2" width="12" height="12" fill="{_PALETTE[k % len(_PALETTE)]}"/>'
      f'<text x="{left + 130 * k + 16}" y="13">{html.escape(result.class_names[c])}</text>'
      for k, c in enumerate(labels))
  height = 30 + len(shards) * row_h
  return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + bar_w + 60}" height="{height}" '
          f'font-family="sans-serif" font-size="11">{legend}{"".join(rows)}</svg>')


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
  head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in headers)
  body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(v))}</td>' for v in row) + '</tr>'
                 for row in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def render_html(result: BalanceResult,
                stats_by_split: Optional[Mapping[str, statistics_pb2.DatasetFeatureStatisticsList]]
                = None) -> str:
  names = [result.class_names[c] for c in result.whole_counts]
  ok_colour = '#2a7' if not result.findings else '#c33'
  parts = [
      '<!doctype html><html><head><meta charset="utf-8"><title>cxr-tfx class balance</title>'
      '<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;'
      'margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}'
      'th{background:#f3f3f3}.bad{color:#c33}</style></head><body>',
      '<h1>Class balance</h1>',
      f'<p style="font-size:1.3em;color:{ok_colour}"><b>{html.escape(result.verdict)}</b></p>',
      f'<p>Whole dataset: {sum(result.whole_counts.values())} examples; imbalance ratio '
      f'(largest / smallest class) {result.imbalance_ratio:.2f}. Thresholds: L-infinity '
      f'{result.config.max_linf}, Jensen-Shannon {result.config.max_js} (bits), each plus the '
      f'rounding allowance of a unit of m records; at least {result.config.min_count_per_class} '
      'example(s) per class per split.</p>',
      _table(['class'] + names + ['total'],
             [['examples'] + list(result.whole_counts.values())
              + [sum(result.whole_counts.values())]]),
      '<h2>Findings</h2>',
      (_table(['kind', 'check', 'where', 'class', 'value', 'threshold', 'message'],
              [[f.kind, f.check, f.scope, f.class_name, f'{f.value:.6g}', f'{f.threshold:.6g}',
                f.message] for f in result.findings]) if result.findings else '<p>None.</p>'),
      '<h2>Splits and shards vs the whole dataset</h2>',
      _table(['unit', 'records'] + names + ['L-inf', 'threshold', 'JS', 'threshold', 'ok'],
             [[m.unit.name, m.unit.size] + [m.unit.counts.get(c, 0) for c in result.whole_counts]
              + [f'{m.linf:.4f}', f'{m.linf_threshold:.4f}', f'{m.js:.6f}',
                 f'{m.js_threshold:.6f}', 'yes' if m.ok else 'NO'] for m in result.measurements]),
      '<h2>Class counts per shard</h2>', _shard_chart(result),
      '<h2>Duplicate images across splits (leakage)</h2>',
      (_table(['sha256', 'splits', 'image ids'],
              [[d['image_sha256'][:16], ', '.join(d['splits']), ', '.join(d['image_ids'])]
               for d in result.duplicates_across_splits])
       if result.duplicates_across_splits else '<p>None.</p>'),
      '<h2>Images and masks per split and class</h2>',
  ]
  for split, per_class in result.image_statistics.items():
    parts.append(f'<h3>{html.escape(split)}</h3>')
    parts.append(_table(
        ['class', 'examples', 'image sizes', 'image modes', 'mask presence', 'mask sizes',
         'mask/image size mismatch', 'empty masks', 'near-full masks', 'mean coverage',
         'coverage histogram (10 bins)'],
        [[cls, s['examples'], _fmt_counts(s['image_sizes']), _fmt_counts(s['image_modes']),
          f'{s["mask_presence_rate"]:.1%}', _fmt_counts(s['mask_sizes']),
          s['mask_size_mismatch'], s['empty_masks'], s['near_full_masks'],
          '' if s['mean_mask_coverage'] is None else f'{s["mean_mask_coverage"]:.3f}',
          ' '.join(map(str, s['coverage_histogram']))] for cls, s in per_class.items()]))
  if stats_by_split:
    splits = list(stats_by_split)
    parts.append('<h2>TFDV statistics</h2><p>Facets Overview (loads its viewer from the '
                 'web).</p>')
    parts.append(tfdv.get_statistics_html(
        stats_by_split[splits[0]], stats_by_split[splits[1]] if len(splits) > 1 else None,
        lhs_name=splits[0], rhs_name=splits[1] if len(splits) > 1 else 'rhs_statistics'))
  parts.append('</body></html>')
  return '\n'.join(parts)


def _fmt_counts(counts: Mapping[str, int]) -> str:
  return ', '.join(f'{k}: {n}' for k, n in sorted(counts.items(), key=lambda x: -x[1]))
