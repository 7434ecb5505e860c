"""ClassBalance's measuring: statistics + the scan + the ingest summary -> ``BalanceResult``
(pure: protos and plain Python; no TensorFlow, no I/O).

Split class counts come from StatisticsGen's statistics (TFDV's categorical counts of ``class``),
shard class counts from the shard files themselves (the scan), the class names from the schema
(CuratedSchemaGen writes them from the class mapping), and what ImageExampleGen already computed
-- records per shard, duplicate images, mask checks, and what its workers measured on the
pixels (near-duplicate groups, image quality, shortcut risk: ``image_findings.py``) -- from its
ingest summary.
"""
import collections
import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components import features
from components.class_balance import balance
from components.class_balance import drift as drift_lib
from components.class_balance import image_findings
from components.class_balance import image_stats
from components.class_balance.config import BalanceConfig
from components.class_balance.scan_result import SAMPLES_PER_CLASS
from components.class_balance.scan_result import ScanResult
from components.errors import CxrError
from components.image_example_gen import config as ingest_config_lib
from components.image_example_gen import mask_check as mask_codes
from components.image_example_gen.summary import IngestSummary
from components.schema_gen.class_domain import class_names_from_schema


class StatisticsError(CxrError, ValueError):
  """The statistics do not describe the class feature as ClassBalance needs."""


def split_class_counts(stats: statistics_pb2.DatasetFeatureStatisticsList,
                       split: str) -> Dict[int, int]:
  """Class counts from StatisticsGen's categorical statistics of the class feature."""
  for dataset in stats.datasets:
    for feature in dataset.features:
      name = feature.path.step[0] if feature.path.step else feature.name
      if name != features.LABEL:
        continue
      if not feature.HasField('string_stats'):
        raise StatisticsError(
            f'split {split}: the statistics of {features.LABEL!r} are not categorical; give '
            'StatisticsGen the curated schema (int_domain.is_categorical: true).')
      buckets = feature.string_stats.rank_histogram.buckets
      values = ([(b.label, b.sample_count) for b in buckets] if buckets else
                [(v.value, v.frequency) for v in feature.string_stats.top_values])
      return {int(label): int(round(n)) for label, n in values}
    if not dataset.num_examples:
      return {}
  raise StatisticsError(f'split {split}: the statistics have no {features.LABEL!r} feature.')


def statistics_view(stats_by_split: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList],
                    class_names: Mapping[int, str]) -> List[Dict[str, object]]:
  """TFDV's statistics as rows for a static table: [{feature, type, cells: {split: [text]}}]."""
  rows: Dict[str, Dict[str, object]] = {}
  for split, stats in stats_by_split.items():
    for dataset in stats.datasets:
      for f in dataset.features:
        name = '.'.join(f.path.step) if f.path.step else f.name
        row = rows.setdefault(name, {'feature': name, 'cells': {}, 'type': (
            statistics_pb2.FeatureNameStatistics.Type.Name(f.type))})
        kind = f.WhichOneof('stats')
        block = getattr(f, kind) if kind else None
        common = block.common_stats if block is not None else None
        lines = []
        if common is not None:
          missing = common.num_missing
          lines.append(f'{common.num_non_missing:,} present'
                       + (f', {missing:,.0f} missing' if missing else ''))
        if kind == 'bytes_stats':
          lines.append(f'{f.bytes_stats.avg_num_bytes / 1024:,.1f} KiB avg '
                       f'({f.bytes_stats.min_num_bytes / 1024:,.1f}-'
                       f'{f.bytes_stats.max_num_bytes / 1024:,.1f})')
        elif kind == 'string_stats':
          s = f.string_stats
          if name == features.LABEL:
            total = sum(b.sample_count for b in s.rank_histogram.buckets) or 1
            for b in sorted(s.rank_histogram.buckets, key=lambda b: int(b.label)):
              cname = class_names.get(int(b.label), b.label)
              lines.append(f'{cname}: {b.sample_count:,.0f} ({b.sample_count / total:.1%})')
          else:
            lines.append(f'{s.unique:,} unique, {s.avg_length:,.1f} chars avg')
        elif kind == 'num_stats':
          s = f.num_stats
          lines.append(f'mean {s.mean:.4g}, min {s.min:.4g}, max {s.max:.4g}')
        row['cells'][split] = lines
  return list(rows.values())


@dataclasses.dataclass
class BalanceResult:
  """Everything ClassBalance found; ``to_dict`` is the JSON report."""
  config: BalanceConfig
  splits: List[str]
  class_names: Dict[int, str]
  whole_counts: Dict[int, int]
  measurements: List[balance.Measurement]
  findings: List[balance.Finding]
  stratified: bool
  stratification_verdict: str
  imbalance: balance.ClassImbalance
  class_balance_verdict: str
  verdict: str
  weights_split: str
  class_weights: Dict[int, float]
  duplicates_across_splits: List[Dict[str, object]]
  image_statistics: Dict[str, Dict[str, Dict[str, object]]]
  mask_check: str  # ImageExampleGen's mode: 'off' | 'warn' | 'fail'; '' unknown (older)
  mask_size: str  # declared mask size ('WxH') or ''
  mask_checks: Dict[str, Dict[str, Dict[str, int]]]  # {split: {class name: counts}}
  samples: Dict[int, List[Dict[str, object]]]  # label -> thumbnails
  statistics: List[Dict[str, object]]  # statistics_view rows
  ingest: Dict[str, object]  # a few facts from the ingest summary ({} without one)
  # this span vs the baseline span, and its groups vs earlier spans' (drift.py)
  drift: drift_lib.DriftResult = dataclasses.field(default_factory=drift_lib.DriftResult.nothing)
  # what ImageExampleGen measured on the pixels (near-duplicates, quality, shortcut risk), and
  # the thumbnails of the images it lists {image_id: {split, shard, uri}}
  pixels: image_findings.ImageFindings = dataclasses.field(
      default_factory=image_findings.ImageFindings)
  listed_images: Dict[str, Dict[str, object]] = dataclasses.field(default_factory=dict)

  @property
  def imbalance_ratio(self) -> float:
    return self.imbalance.ratio

  @property
  def stratification_findings(self) -> List[balance.Finding]:
    return [f for f in self.findings if f.kind == balance.KIND_STRATIFICATION]

  @property
  def drift_findings(self) -> List[balance.Finding]:
    """Drift between spans and group leakage across spans (finalized like the others)."""
    return [f for f in self.findings if f.check in drift_lib.CHECKS]

  @property
  def class_mix_drift_findings(self) -> List[balance.Finding]:
    """The class mix drifted from the baseline span (what ``fail_on_drift`` stops on)."""
    return [f for f in self.findings if f.check in drift_lib.CLASS_MIX_CHECKS]

  @property
  def span_leakage(self) -> int:
    """Groups in this span's train split that were in a non-train split of an earlier span."""
    return self.drift.leakage.into_train

  @property
  def resent_images(self) -> int:
    """Images of this span whose bytes an earlier span already had (each kept its split)."""
    return self.drift.resent.count

  @property
  def errors(self) -> List[balance.Finding]:
    return [f for f in self.findings if f.severity == balance.ERROR]

  @property
  def warnings(self) -> List[balance.Finding]:
    return [f for f in self.findings if f.severity == balance.WARNING]

  def name(self, label: int) -> str:
    return self.class_names.get(label, str(label))

  def class_weights_json(self) -> Dict[str, float]:
    """{"<label>": weight}: the artifact property a Trainer reads."""
    return {str(c): w for c, w in sorted(self.class_weights.items())}

  def to_dict(self) -> Dict[str, object]:
    weights_counts = next((m.unit.counts for m in self.measurements
                           if m.unit.kind == balance.SPLIT and m.unit.split == self.weights_split),
                          {})
    return {
        'verdict': self.verdict,
        'stratification': {'stratified': self.stratified,
                           'verdict': self.stratification_verdict},
        'class_balance': dict(self.imbalance.to_dict(self.class_names),
                              verdict=self.class_balance_verdict),
        'class_weights': {
            'split': self.weights_split,
            'by_label': self.class_weights_json(),
            'by_class': {self.name(c): w for c, w in sorted(self.class_weights.items())},
            'examples': {self.name(c): weights_counts.get(c, 0) for c in self.whole_counts},
        },
        'config': dataclasses.asdict(self.config),
        'splits': list(self.splits),
        'class_names': {str(c): n for c, n in self.class_names.items()},
        'whole_counts': {self.name(c): n for c, n in self.whole_counts.items()},
        'imbalance_ratio': (round(self.imbalance_ratio, 4)
                            if math.isfinite(self.imbalance_ratio) else 'inf'),
        'errors': len(self.errors),
        'warnings': len(self.warnings),
        'findings': [f.to_dict() for f in self.findings],
        'units': [{'unit': m.unit.name, 'kind': m.unit.kind, 'split': m.unit.split,
                   'shard': m.unit.shard, 'records': m.unit.size,
                   'class_counts': {self.name(c): m.unit.counts.get(c, 0)
                                    for c in self.whole_counts},
                   'linf': round(m.linf, 6), 'linf_threshold': round(m.linf_threshold, 6),
                   'js': round(m.js, 8), 'js_threshold': round(m.js_threshold, 8),
                   'ok': m.ok} for m in self.measurements],
        'duplicates_across_splits': self.duplicates_across_splits,
        'mask_check': {'mode': self.mask_check, 'mask_size': self.mask_size,
                       'counts': self.mask_checks},
        'image_statistics': self.image_statistics,
        'samples': {self.name(c): [s['image_id'] for s in v] for c, v in self.samples.items()},
        'ingest': self.ingest,
        'drift': self.drift.to_dict(self.drift_findings),
        **self.pixels.to_dict(),  # near_duplicates, quality, shortcut
    }


def _summary_duplicates(summary: IngestSummary) -> List[Dict[str, object]]:
  groups = {d['sha256']: [(m.get('split', ''), m['image_id']) for m in d['members']]
            for d in summary.duplicate_images}
  return balance.cross_split_duplicates(groups)


def _scan_duplicates(entries: Sequence[Mapping[str, object]]) -> List[Dict[str, object]]:
  return balance.cross_split_duplicates(
      {d['sha256']: [(m['split'], m['image_id']) for m in d['members']] for d in entries})


def _pick_samples(samples: Sequence[Mapping[str, object]], splits: Sequence[str]
                  ) -> Dict[int, List[Dict[str, object]]]:
  """Up to SAMPLES_PER_CLASS thumbnails per class, the first split's first."""
  order = {s: i for i, s in enumerate(splits)}
  out: Dict[int, List[Dict[str, object]]] = {}
  for s in sorted(samples, key=lambda s: (order.get(s['split'], len(order)), s['image_id'])):
    picked = out.setdefault(int(s['label']), [])
    if len(picked) < SAMPLES_PER_CLASS:
      picked.append(dict(s))
  return dict(sorted(out.items()))


def evaluate(stats_by_split: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList],
             scan: ScanResult, schema: schema_pb2.Schema, config: BalanceConfig,
             summary: Optional[IngestSummary] = None,
             drift_inputs: Optional[drift_lib.DriftInputs] = None) -> BalanceResult:
  """Both verdicts, every finding, the class weights and the report's statistics; with
  ``drift_inputs``, drift from the baseline span and group leakage across spans."""
  names = class_names_from_schema(schema)
  splits = list(stats_by_split)
  split_counts = {s: split_class_counts(st, s) for s, st in stats_by_split.items()}
  shard_counts = scan.shard_counts()
  whole = balance.whole_counts({s: {c: n for c, n in counts.items() if c in names}
                                for s, counts in split_counts.items()}, names)

  measurements = [balance.measure(u, whole, config)
                  for u in balance.units(split_counts, shard_counts)]
  imbalance = balance.class_imbalance(whole, config)
  findings = (balance.stratification_findings(measurements, whole, names, config)
              + balance.imbalance_findings(imbalance, names))

  # What was written: files vs statistics, files vs the summary, labels vs the schema.
  file_counts = {split: collections.Counter() for split in splits}
  for split, per_shard in shard_counts.items():
    for _, counts in per_shard:
      file_counts.setdefault(split, collections.Counter()).update(counts)
  findings += balance.unreadable_findings(scan.errors)
  findings += balance.count_findings(split_counts, shard_counts, names)
  findings += balance.unknown_label_findings(  # in the statistics or in the files
      {s: {c: max(split_counts.get(s, {}).get(c, 0), file_counts[s].get(c, 0))
           for c in set(split_counts.get(s, {})) | set(file_counts[s])} for s in splits}, names)
  if summary is not None:
    written = {(s['split'], s['file']): s['count'] for s in summary.shards}
    findings += balance.record_count_findings(scan.records_read(), written)
    findings += balance.class_names_findings(names, summary.class_names)

  # Leakage: ImageExampleGen grouped every sha256 in its job; without a summary, this job did.
  duplicates = (_summary_duplicates(summary) if summary is not None
                else _scan_duplicates(scan.duplicates or []))
  findings += balance.duplicate_findings(duplicates)

  # Masks: ImageExampleGen's checks (its mode 'off' silences them), else the file headers;
  # the share of records with a mask per split, always.
  mask_mode = getattr(summary, 'mask_check', '') or ''  # older summaries: ''
  mask_checks = getattr(summary, 'mask_checks', None) or {}
  mask_size = getattr(summary, 'mask_size', '') or ''
  image_statistics = image_stats.by_split_and_class(scan.class_stats, splits, names)
  if mask_mode and mask_mode != ingest_config_lib.MASK_CHECK_OFF:
    findings += balance.mask_check_findings(mask_checks, mask_size)
  elif not mask_mode:
    findings += balance.header_size_findings(
        {s: {c: v['mask_size_mismatch'] for c, v in per.items()}
         for s, per in image_statistics.items() if s in splits},
        {s: sum(v['masks_present'] for v in per.values())
         for s, per in image_statistics.items() if s in splits})
  presence = {s: (sum(v['masks_present'] for v in image_statistics.get(s, {}).values()),
                  sum(v['examples'] for v in image_statistics.get(s, {}).values()))
              for s in splits}
  findings += balance.mask_presence_findings(presence, config)

  # Between spans: this span vs the baseline span; its groups vs every earlier span's.
  drift = drift_lib.evaluate(drift_inputs or drift_lib.DriftInputs(), splits, names, whole,
                             summary, scan.class_stats, config)
  findings += drift.findings

  # What ImageExampleGen measured on the pixels: near-duplicates, quality, shortcut risk.
  pixels, pixel_findings = image_findings.evaluate(
      image_findings.read(summary), {names.get(c, str(c)): n for c, n in whole.items()})
  findings += pixel_findings

  findings = balance.finalize(findings, config)
  stratified, strat_verdict = balance.stratification_verdict(findings)
  classes_verdict = balance.class_balance_verdict(imbalance, names)
  weights_from = balance.weights_split(splits)
  ingest = {}
  if summary is not None:
    ingest = {'csv_path': summary.csv_path, 'rows_in': summary.rows_in,
              'examples_written': summary.examples_written,
              'rows_quarantined': summary.rows_quarantined, 'seed': summary.seed}
  return BalanceResult(
      config=config, splits=splits, class_names=names, whole_counts=whole,
      measurements=measurements, findings=findings, stratified=stratified,
      stratification_verdict=strat_verdict, imbalance=imbalance,
      class_balance_verdict=classes_verdict,
      verdict=balance.verdict(strat_verdict, classes_verdict, findings),
      weights_split=weights_from,
      class_weights=balance.class_weights(split_counts.get(weights_from, {}), names),
      duplicates_across_splits=duplicates, image_statistics=image_statistics,
      mask_check=mask_mode, mask_size=mask_size,
      mask_checks={s: {c: {k: v.get(k, 0) for k in mask_codes.COUNT_KEYS}
                       for c, v in per.items()} for s, per in mask_checks.items()},
      samples=_pick_samples([s for s in scan.samples if int(s['label']) in names], splits),
      statistics=statistics_view(stats_by_split, names), ingest=ingest, drift=drift,
      pixels=pixels, listed_images=dict(scan.listed_images))
