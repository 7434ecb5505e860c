"""What one ingestion wrote, and its per-split/per-shard class-count table (pure)."""
import collections
import dataclasses
import json
from typing import Any, Dict, List

from components.errors import escape_name

SUMMARY_FILE = 'ingest_summary.json'  # next to the Split-* folders of the Examples artifact
QUARANTINE_FILE = 'quarantine.json'  # bad rows set aside: [{line, path, reason}]
# With a group column: {group_column, group_assignment, groups: {group hash: split}}, the
# salted hash of every group (as the group_hash feature) and the split it went to. ClassBalance
# compares it with earlier spans' (a patient must not move from eval/test into train).
GROUP_SPLITS_FILE = 'group_splits.json'
# An image folder's input (ImageExampleGen(image_dir=...)), next to the outputs: its listing as
# the CSV index it stands for (the line numbers in errors and quarantine.json are its lines),
# and the class mapping used (the sorted class folders unless one was given).
IMAGE_INDEX_FILE = 'image_index.csv'
CLASS_MAPPING_FILE = 'class_mapping.json'
# The published split membership (assignment.SplitManifest): {image sha256: [split, first
# span]}, {group hash: split}, the seed and the rule. Every later run keeps it.
SPLIT_MANIFEST_FILE = 'split_manifest.json'
# {"sha256": ..., "fingerprint": ...} per line, gzip: the perceptual fingerprints of every image
# the split manifest names (cumulative like it), next to it, so a later span's near-duplicates of
# published images are found without reading them again.
SPLIT_FINGERPRINTS_FILE = 'split_fingerprints.jsonl.gz'


@dataclasses.dataclass
class IngestSummary:
  """What one ingestion wrote; stored as ``ingest_summary.json`` and an artifact property."""
  csv_path: str
  seed: int
  splits: List[Dict[str, Any]]
  class_names: Dict[int, str]
  rows_in: int
  examples_written: int
  shards: List[Dict[str, Any]]
  rows_quarantined: int = 0
  on_bad_record: str = 'fail'
  group_column: str = ''
  group_assignment: str = ''  # 'balanced' | 'stable' ('' in older summaries)
  # largest |shard class count - proportional| in records; < 1 means floor/ceil everywhere
  max_class_deviation: float = 0.0
  # [{sha256, members: [{image_id, line, class_name, split}], crosses_splits}]
  duplicate_images: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  # mask_check: the mode ('off' | 'warn' | 'fail'), the declared mask size ('WxH' or ''), the
  # counts over written rows {split: {class name: {masks, empty, not_binary,
  # not_single_channel, size_mismatch, undecodable}}} and the first rows with findings
  # [{line, image_id, class_name, split, findings: [code, ...]}]. Empty in older summaries.
  mask_check: str = ''
  mask_size: str = ''
  mask_checks: Dict[str, Dict[str, Dict[str, int]]] = dataclasses.field(default_factory=dict)
  mask_findings: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  # The input when it was an image folder ('' for a CSV: csv_path), and what its listing left
  # out {what: count} (folders.IGNORED_FILES, ...).
  image_dir: str = ''
  folder_ignored: Dict[str, int] = dataclasses.field(default_factory=dict)
  # DICOM: the rendering options, and counts over the written rows' DICOM files
  # {category: {key: n}}: files {image, mask}; for images transfer_syntax (name), photometric,
  # bits_stored, rendering (voi_lut | window | min_max | nominal | window_option); for every
  # DICOM file identifying_tags {keyword or 'private tags': files carrying it} -- which
  # identifying attributes were present, never their values -- and burned_in_written (files
  # with BurnedInAnnotation YES written under allow_burned_in). Empty without DICOM files.
  dicom_window: str = ''
  dicom_output: str = ''
  dicom: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
  # Split membership (assignment.assign's report): source ('ml-metadata' | 'option' | 'fresh' |
  # 'none') and prior_manifest; images, kept (from the prior), new, new_by_split; with a prior
  # prior_images, missing (+ missing_listed), resent_count (+ resent: [{image_id, line,
  # class_name, split, first_span, sha256}]); conflicts_count (+ conflicts);
  # max_split_class_deviation; manifest_images, manifest_digest; span, seed, rule. Empty in
  # older summaries.
  membership: Dict[str, Any] = dataclasses.field(default_factory=dict)
  # What the images' pixels showed (findings.py; empty when not measured: --verify header or
  # --near-duplicates off): near_duplicates the mode; near_duplicate_groups [{members:
  # [{image_id, line, class_name, split, span, sha256} | {sha256, split, span} (a prior span's)],
  # classes, splits, crosses_splits, crosses_classes}]; quality {images, counts: {split:
  # {class name: {finding: n}}}, examples: {finding: [{image_id, line, class_name, split}]},
  # thresholds}; shortcut (shortcut.ShortcutResult.to_dict()).
  # --shard-size: shard_sizing.FilePlan.as_dict() (target_bytes; files, rows, bytes and
  # weights per split) and its one-line description; empty without a shard size.
  shard_files: Dict[str, Any] = dataclasses.field(default_factory=dict)
  near_duplicates: str = ''
  near_duplicate_groups: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  quality: Dict[str, Any] = dataclasses.field(default_factory=dict)
  shortcut: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def cross_split_duplicates(self) -> List[Dict[str, Any]]:
    return [d for d in self.duplicate_images if d['crosses_splits']]

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1)

  @classmethod
  def from_json(cls, text: str) -> 'IngestSummary':
    data = json.loads(text)
    data['class_names'] = {int(k): v for k, v in data['class_names'].items()}
    for s in data['shards']:
      s['class_counts'] = {int(k): v for k, v in s['class_counts'].items()}
    return cls(**data)


def split_class_totals(summary: IngestSummary) -> Dict[str, Dict[int, int]]:
  totals: Dict[str, Dict[int, int]] = collections.OrderedDict()
  for s in summary.shards:
    split = totals.setdefault(s['split'], collections.Counter())
    split.update(s['class_counts'])
  return totals


def format_shard_table(summary: IngestSummary) -> str:
  """Per split, per shard class counts, with split and overall totals."""
  labels = sorted(summary.class_names)
  headers = (['split', 'shard'] + [escape_name(summary.class_names[l]) for l in labels]
             + ['total'])
  rows = []
  overall: collections.Counter[int] = collections.Counter()
  for split, totals in split_class_totals(summary).items():
    for s in (s for s in summary.shards if s['split'] == split):
      rows.append([split, s['file']] + [s['class_counts'].get(l, 0) for l in labels]
                  + [s['count']])
    rows.append([split, '(all shards)'] + [totals.get(l, 0) for l in labels]
                + [sum(totals.values())])
    overall.update(totals)
  rows.append(['all', ''] + [overall.get(l, 0) for l in labels] + [sum(overall.values())])
  widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
  fmt = lambda r: '  '.join(str(v).ljust(w) if i < 2 else str(v).rjust(w)
                            for i, (v, w) in enumerate(zip(r, widths)))
  return '\n'.join([fmt(headers)] + [fmt(r) for r in rows])
