"""``cxr-tfx validate``: ImageExampleGen's checks without TensorFlow, TFX or Beam.

It runs the pipeline's own check code, so it reports the same problems with the same messages:

* the CSV and the class mapping: ``index.parse_index`` (columns, classes, empty paths, unique
  ``image_id``, group column) and the allowed-roots rule by name (``files.within_by_name``);
  an image folder: ``index.read_folder_index`` (its listing as a CSV, through the same checks;
  a class mapping must name every class folder);
* every image and mask: ``files.load_row`` -- what ImageExampleGen's Beam workers run per row
  (opened once, confinement after symlinks, regular file, size, the PNG/JPEG check at the
  chosen ``verify`` level and pixel bound, the mask check), then the image's sha256 (of
  ``loaded.image``, as ``ingest.load_and_hash``: its content key) and a DICOM group's hash;
* duplicate images: ``duplicates.apply_policy`` / ``duplicates.fail_error``;
* the plan: ``assignment.assign`` on the rows the run would write, with the membership of
  ``--split-manifest`` as its prior, so the split/shard class counts printed are the ones
  ``run`` with the same options and that manifest writes, and the membership line says which
  images keep a published split. (validate reads no ML Metadata: without a manifest it predicts
  a fresh deal, where a local ``run`` keeps the previous run's membership.)

Files are checked in a pool of processes (one per core by default): per-file work is Python
and Pillow, held by the GIL. The CSV, the folder and the manifest must be local (``run`` reads
gs:// itself).

The result (``Validation``) and its report (``format_report``, re-exported here) are in
``pipeline.validate_report``.
"""
import collections
import concurrent.futures
import dataclasses
import gzip
import hashlib
import json
import multiprocessing
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen import assignment
from components.image_example_gen import config as config_lib
from components.image_example_gen import duplicates as duplicates_lib
from components.image_example_gen import files
from components.image_example_gen import findings as findings_lib
from components.image_example_gen import index
from components.image_example_gen import summary as summary_lib
from pipeline.validate_report import format_report  # noqa: F401 (re-export)
from pipeline.validate_report import Validation

# Rows per task sent to a worker process: at most this many (pickling and scheduling are then
# negligible next to ~0.5 ms of checks per row), and at least 8 tasks per worker (smooth
# progress, even load) when there are fewer rows.
BATCH_ROWS = 256
_MIN_TASKS_PER_WORKER = 8
MAX_LISTED_MASK_FINDINGS = 5  # mask findings (warn) are counted per class; the first are listed


class ValidateError(CxrError, ValueError):
  """validate cannot check this input (e.g. the CSV is not a local file)."""


class ValidationFailed(CxrError, ValueError):
  """The checks found what would stop ``run`` with the same options; the report lists it."""


def require_local(csv_path: str, what: str = 'CSV', option: str = '--csv') -> None:
  if index.is_uri(csv_path):
    raise ValidateError(f'{csv_path}: validate reads a local {what}; copy it here, or let '
                        '`cxr-tfx run` check it (it reads gs:// and other URIs) '
                        f'(option {option}).')


def as_source(source: Any) -> index.Source:
  """A CSV path or an ``index.Source`` -> the Source, which must be local."""
  if not isinstance(source, index.Source):
    source = index.Source(csv_path=source)
  if source.image_dir:
    require_local(source.image_dir, 'image folder', '--image-dir')
  else:
    require_local(source.csv_path)
  return source


SourceIndex = index.SourceIndex


def read_source(source: Any, config: config_lib.IngestConfig) -> SourceIndex:
  """The launcher's read (``index.read_source``, as ImageExampleGen's) of a local CSV or
  image folder."""
  return index.read_source(as_source(source), config)


def load_prior(config: config_lib.IngestConfig) -> Optional[assignment.SplitManifest]:
  """The membership to keep: ``config.split_manifest`` (a local file) unless
  ``fresh_splits``; None for a fresh deal."""
  if config.fresh_splits or not config.split_manifest:
    return None
  require_local(config.split_manifest, 'split manifest', '--split-manifest')
  return assignment.load_manifest(config.split_manifest)


# --- Per-row checks in worker processes ------------------------------------------------------

# problems, sha256, mask codes, the group read from a DICOM header (hashed; '' otherwise)
# (problems, image sha256, mask findings, DICOM group hash, fingerprint text, measures text)
RowResult = Tuple[Tuple[Tuple[str, str], ...], str, Tuple[str, ...], str, str, str]
_options: Optional[files.CheckOptions] = None


def _init_worker(options: files.CheckOptions) -> None:
  global _options  # pylint: disable=global-statement
  _options = options


def check_row(image_path: str, mask_path: str, options: files.CheckOptions) -> RowResult:
  """What ImageExampleGen's worker does to a row, minus the write: load_row, then the image's
  sha256 and DICOM group as ``ingest.load_and_hash`` takes them."""
  loaded = files.load_row(image_path, mask_path, options)
  if loaded.problems:
    return loaded.problems, '', (), '', '', ''
  group = loaded.image_dicom.group_hash if options.group_keyword else ''
  facts = loaded.facts
  return ((), hashlib.sha256(loaded.image).hexdigest(), tuple(loaded.mask_findings), group,
          facts.fingerprint if facts else '', facts.encode() if facts else '')


def _check_batch(paths: Sequence[Tuple[str, str]]) -> List[RowResult]:
  return [check_row(image, mask, _options) for image, mask in paths]


def check_files(rows: Sequence[index.IndexRow], options: files.CheckOptions, workers: int = 0,
                progress: Optional[Callable[[int, int], None]] = None) -> List[RowResult]:
  """check_row for every row, in row order, on ``workers`` processes (default: the cores this
  process may use; 1 = inline). ``progress(done, total)`` is called as batches finish."""
  workers = workers or len(os.sched_getaffinity(0))
  paths = [(r.image_path, r.mask_path) for r in rows]
  size = max(1, min(BATCH_ROWS, -(-len(paths) // (workers * _MIN_TASKS_PER_WORKER))))
  batches = [paths[i:i + size] for i in range(0, len(paths), size)]
  out: List[RowResult] = []
  if progress:
    progress(0, len(paths))
  if workers <= 1 or len(batches) <= 1:
    _init_worker(options)
    mapped = map(_check_batch, batches)
    pool = None
  else:
    # fork: the workers start at once and inherit the imported check code (no TensorFlow here).
    pool = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(batches)), mp_context=multiprocessing.get_context('fork'),
        initializer=_init_worker, initargs=(options,))
    mapped = pool.map(_check_batch, batches)
  try:
    for result in mapped:
      out.extend(result)
      if progress:
        progress(len(out), len(paths))
  finally:
    if pool is not None:
      pool.shutdown(cancel_futures=True)
  return out


# --- The whole validation ----------------------------------------------------------------------

def validate(source: Any, config: config_lib.IngestConfig, workers: int = 0,
             progress: Optional[Callable[[int, int], None]] = None,
             prior: Optional[assignment.SplitManifest] = None, span: int = 0,
             read: Optional[SourceIndex] = None) -> Validation:
  """Every check of ImageExampleGen on ``source`` (a local CSV path, or an ``index.Source``
  with a local image folder) with ``config``; nothing is written.

  ``prior``: the membership to keep (default: ``load_prior(config)``, i.e.
  ``config.split_manifest``); ``span``: the span being validated (recorded for new images).
  ``read``: ``read_source(source, config)`` when the caller has it already.

  Raises IndexValidationError when the index as a whole is unusable, SourceError when a class
  mapping misses an image folder's class folder (as ``run`` does)."""
  started = time.monotonic()
  source = as_source(source)
  read = read or read_source(source, config)
  checked, config = read.checked, read.config
  if prior is None:
    prior = load_prior(config)
  options = files.options_from_config(config, source.base_dir)
  workers = workers or len(os.sched_getaffinity(0))
  results = check_files(checked.rows, options, workers, progress)

  good, file_problems = [], []
  class_rows = {name: dict(rows=0, without_mask=0, bad=0) for name in config.class_mapping}
  mask_counts: Dict[str, Dict[str, int]] = {}
  mask_findings: List[Dict[str, Any]] = []
  rows_with_mask_findings = 0
  for row, (problems, sha256, mask_codes, dicom_group, fingerprint, measures) in zip(
      checked.rows, results):
    counts = class_rows[row.class_name]
    counts['rows'] += 1
    counts['without_mask'] += not row.mask_path
    if problems:
      counts['bad'] += 1
      file_problems.append(index.Problem.of(row.line, [(row.as_written(p), r)
                                                       for p, r in problems]))
      continue
    good.append(dataclasses.replace(row, image_sha256=sha256,
                                    group=dicom_group if options.group_keyword else row.group,
                                    fingerprint=fingerprint, measures=measures))
    if row.mask_path:
      _count_mask(mask_counts, mask_findings, row, mask_codes)
      rows_with_mask_findings += bool(mask_codes)

  kept, dropped, groups = duplicates_lib.apply_policy(good, config.duplicates)
  near_groups = _near_duplicate_groups(kept, prior, config)
  shards, plan_error, membership = [], '', {}
  if not kept:
    plan_error = 'no usable rows: every row is bad'
  else:
    try:
      dealt = assignment.assign(
          kept, config.splits, config.seed,
          config.group_assignment == config_lib.GROUP_ASSIGNMENT_STABLE, prior=prior,
          span=span, group_key=lambda r: files.written_group(r.group, options),
          group_salt_check=assignment.salt_check(options.group_salt),
          near_groups=(near_groups if config.near_duplicates == config_lib.NEAR_DUPLICATES_GROUP
                       else ()))
      shards, membership = dealt.shards, dealt.report
    except assignment.AssignmentError as e:
      plan_error = str(e)
  split_of = {r.image_id: s.split for s in shards for r in s.rows}
  duplicate_groups = []
  for g in groups:
    members = [dict(image_id=r.image_id, line=r.line, class_name=r.class_name,
                    split=split_of.get(r.image_id, '')) for r in g.rows]
    duplicate_groups.append(dict(sha256=g.sha256, members=members, crosses_splits=len(
        {m['split'] for m in members if m['split']}) > 1))
  measured = {}
  if any(r.measures for r in kept):
    measured = dict(
        near_duplicate_groups=findings_lib.near_duplicate_entries(
            near_groups, kept, split_of, prior.images if prior is not None else {}, span),
        quality=findings_lib.quality_entry(kept, split_of, config.quality_thresholds_parsed),
        shortcut=findings_lib.shortcut_entry(kept, config.seed, config.shortcut_threshold)
        or {})
  return Validation(
      csv_path=source.csv_path, image_dir=source.image_dir, config=config,
      rows_in=checked.rows_in,
      index_problems=list(checked.quarantined), file_problems=file_problems, dropped=dropped,
      duplicate_groups=duplicate_groups, shards=shards, plan_error=plan_error,
      class_rows=class_rows, mask_counts=mask_counts, mask_findings=mask_findings,
      rows_with_mask_findings=rows_with_mask_findings,
      files_checked=sum(1 + bool(r.mask_path) for r in checked.rows),
      seconds=time.monotonic() - started, workers=workers,
      classes_without_folder=list(read.folder.classes_without_folder) if read.folder else [],
      membership=membership, prior_seed=prior.seed if prior is not None else None,
      **measured)


def _near_duplicate_groups(rows: Sequence[index.IndexRow],
                           prior: Optional[assignment.SplitManifest],
                           config: config_lib.IngestConfig) -> List[List[str]]:
  """The near-duplicate groups (sha256 lists) among the rows and the prior's images, found in
  memory as ImageExampleGen's Beam stage finds them (near_duplicates.group_pairs)."""
  if config.near_duplicates == config_lib.NEAR_DUPLICATES_OFF:
    return []
  from components.image_example_gen import near_duplicate_pairs as near_duplicates
  from components.image_example_gen import perceptual
  if not any(r.fingerprint for r in rows):
    return []
  texts = {}
  if prior is not None and config.split_manifest:  # published with it (a local file here)
    path = os.path.join(os.path.dirname(config.split_manifest),
                        summary_lib.SPLIT_FINGERPRINTS_FILE)
    if os.path.exists(path):
      with gzip.open(path, 'rt', encoding='utf-8') as f:
        texts = {e['sha256']: e['fingerprint'] for e in map(json.loads, f)}
  texts.update((r.image_sha256, r.fingerprint) for r in rows if r.fingerprint)
  return near_duplicates.group_pairs(
      {sha: perceptual.Fingerprint.from_text(t) for sha, t in texts.items()})


def _count_mask(counts: Dict[str, Dict[str, int]], listed: List[Dict[str, Any]],
                row: index.IndexRow, codes: Sequence[str]) -> None:
  """Per class: masks present and each mask_check finding code, as ImageExampleGen counts
  them over the rows it writes."""
  by_class = counts.setdefault(row.class_name, collections.Counter())
  by_class['masks'] += 1
  for code in codes:
    by_class[code] += 1
  if codes and len(listed) < MAX_LISTED_MASK_FINDINGS:
    listed.append(dict(line=row.line, image_id=row.image_id, class_name=row.class_name,
                       findings=list(codes)))
