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
"""
import collections
import concurrent.futures
import dataclasses
import hashlib
import multiprocessing
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from components.errors import CxrError, escape_control
from components.image_example_gen import assignment
from components.image_example_gen import config as config_lib
from components.image_example_gen import duplicates as duplicates_lib
from components.image_example_gen import files
from components.image_example_gen import index
from components.image_example_gen import summary as summary_lib

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
RowResult = Tuple[Tuple[Tuple[str, str], ...], str, Tuple[str, ...], str]
_options: Optional[files.CheckOptions] = None


def _init_worker(options: files.CheckOptions) -> None:
  global _options  # pylint: disable=global-statement
  _options = options


def check_row(image_path: str, mask_path: str, options: files.CheckOptions) -> RowResult:
  """What ImageExampleGen's worker does to a row, minus the write: load_row, then the image's
  sha256 and DICOM group as ``ingest.load_and_hash`` takes them."""
  loaded = files.load_row(image_path, mask_path, options)
  if loaded.problems:
    return loaded.problems, '', (), ''
  group = loaded.image_dicom.group_hash if options.group_keyword else ''
  return (), hashlib.sha256(loaded.image).hexdigest(), tuple(loaded.mask_findings), group


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

@dataclasses.dataclass
class Validation:
  """What validate found; ``would_fail`` is whether ``run`` with the same options would stop."""
  csv_path: str  # '' for an image folder
  config: config_lib.IngestConfig  # with the class mapping used
  rows_in: int
  index_problems: List[index.Problem]  # found from the CSV alone (the launcher's checks)
  file_problems: List[index.Problem]  # found by reading the files (the workers' checks)
  dropped: List[index.Problem]  # duplicates=drop: rows that would be quarantined
  duplicate_groups: List[Dict[str, Any]]  # {sha256, members: [{image_id, line, class_name,
  #                                          split}], crosses_splits}, as the run reports them
  shards: List[assignment.Shard]  # the plan for the rows that would be written
  plan_error: str  # AssignmentError's message, when no plan is possible
  class_rows: Dict[str, Dict[str, int]]  # class name -> {rows, without_mask, bad}
  mask_counts: Dict[str, Dict[str, int]]  # class name -> mask_check counts (written rows)
  mask_findings: List[Dict[str, Any]]  # first rows with mask findings: {line, class_name, ...}
  rows_with_mask_findings: int
  files_checked: int
  seconds: float
  workers: int
  image_dir: str = ''  # the image folder checked, instead of csv_path
  classes_without_folder: List[str] = dataclasses.field(default_factory=list)
  membership: Dict[str, Any] = dataclasses.field(default_factory=dict)  # assign's report
  prior_seed: Optional[int] = None  # the split manifest's seed, when one was given

  @property
  def bad_rows(self) -> List[index.Problem]:
    return sorted(self.index_problems + self.file_problems, key=lambda p: p.line)

  @property
  def examples_to_write(self) -> int:
    return sum(len(s.rows) for s in self.shards)

  @property
  def fail_reasons(self) -> List[str]:
    """Why ``run`` with the same options would stop at ImageExampleGen (messages as the run's)."""
    reasons = []
    bad = self.bad_rows
    if bad and not self.config.quarantine:
      reasons.append(f'{len(bad)} of {self.rows_in} rows are bad, so `run` would write nothing; '
                     'fix them, or pass --on-bad-record quarantine to write the good rows and '
                     'record the bad ones')
    if self.plan_error:
      reasons.append(self.plan_error)
    if self.config.duplicates == config_lib.DUPLICATES_FAIL and self.duplicate_groups:
      reasons.append(f'{len(self.duplicate_groups)} image(s) appear under more than one row '
                     'and --duplicates is fail, so `run` would write nothing')
    return reasons

  @property
  def would_fail(self) -> bool:
    return bool(self.fail_reasons)


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
  for row, (problems, sha256, mask_codes, dicom_group) in zip(checked.rows, results):
    counts = class_rows[row.class_name]
    counts['rows'] += 1
    counts['without_mask'] += not row.mask_path
    if problems:
      counts['bad'] += 1
      file_problems.append(index.Problem.of(row.line, [(row.as_written(p), r)
                                                       for p, r in problems]))
      continue
    good.append(dataclasses.replace(row, image_sha256=sha256,
                                    group=dicom_group if options.group_keyword else row.group))
    if row.mask_path:
      _count_mask(mask_counts, mask_findings, row, mask_codes)
      rows_with_mask_findings += bool(mask_codes)

  kept, dropped, groups = duplicates_lib.apply_policy(good, config.duplicates)
  shards, plan_error, membership = [], '', {}
  if not kept:
    plan_error = 'no usable rows: every row is bad'
  else:
    try:
      dealt = assignment.assign(
          kept, config.splits, config.seed,
          config.group_assignment == config_lib.GROUP_ASSIGNMENT_STABLE, prior=prior,
          span=span, group_key=lambda r: files.written_group(r.group, options),
          group_salt_check=assignment.salt_check(options.group_salt))
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
      membership=membership, prior_seed=prior.seed if prior is not None else None)


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


# --- The report --------------------------------------------------------------------------------

def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
  widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
  return ['  '.join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                    for i, (v, w) in enumerate(zip(r, widths))) for r in [headers, *rows]]


def plan_summary(v: Validation) -> summary_lib.IngestSummary:
  """The plan as an IngestSummary, so the shard table is printed as `run` prints it."""
  names = {label: name for name, label in v.config.class_mapping.items()}
  return summary_lib.IngestSummary(
      csv_path=v.csv_path, image_dir=v.image_dir, seed=v.config.seed,
      splits=[dataclasses.asdict(s) for s in v.config.splits],
      class_names=dict(sorted(names.items())), rows_in=v.rows_in,
      examples_written=v.examples_to_write,
      shards=[dict(split=s.split, index=s.index, file=s.file_name, count=len(s.rows),
                   class_counts=s.class_counts()) for s in v.shards])


def membership_lines(v: Validation) -> List[str]:
  """Which images keep a published split (--split-manifest) and which are dealt as new."""
  c, m = v.config, v.membership
  if c.fresh_splits:
    return ['membership: --fresh-splits: published split membership is ignored; every image is '
            'dealt afresh']
  if not c.split_manifest:
    return ['membership: no --split-manifest, so every image is dealt afresh here (validate reads '
            'no ML Metadata; a local `run` keeps the split membership of its previous run)']
  new_by_split = ', '.join(f'{split} {n:,}' for split, n in m.get('new_by_split', {}).items())
  lines = [f"membership: {m.get('kept', 0):,} images keep their split from {c.split_manifest} "
           f"(seed {v.prior_seed}), {m.get('new', 0):,} new"
           + (f' ({new_by_split})' if new_by_split else '')
           + f", {m.get('missing', 0):,} of the manifest's {m.get('prior_images', 0):,} images "
           'missing from this input']
  if m.get('conflicts_count'):
    lines.append(f"  {m['conflicts_count']} unit(s) linked to several splits in the manifest "
                 '(identical images or a group across splits): each goes to the last of them')
    for conflict in m.get('conflicts', []):
      lines.append(f"    {', '.join(escape_control(i) for i in conflict['image_ids'])}: "
                   f"{', '.join(conflict['splits'])} -> {conflict['kept']}")
  if m.get('groups_not_compared'):
    lines.append(f"  {m['groups_not_compared']}")
  return lines


def format_report(v: Validation) -> str:
  """Classes, files, masks, duplicates, the planned shards, then every problem."""
  c = v.config
  lines = [f'classes ({len(c.class_mapping)}):']
  by_label = sorted(c.class_mapping.items(), key=lambda kv: kv[1])
  rows = [[escape_control(name), label, v.class_rows[name]['rows'],
           v.class_rows[name]['without_mask'], v.class_rows[name]['bad']]
          for name, label in by_label]
  rows.append(['all', '', *(sum(r[i] for r in rows) for i in (2, 3, 4))])
  lines += ['  ' + l for l in _table(['class', 'label', 'rows', 'without mask', 'bad files'],
                                     rows)]
  if v.classes_without_folder:
    lines.append(f'  (the class mapping names {len(v.classes_without_folder)} class(es) with no '
                 f'folder in {v.image_dir}: '
                 f'{", ".join(escape_control(n) for n in v.classes_without_folder)})')
  if v.index_problems:
    lines.append(f'  (and {len(v.index_problems)} row(s) the {"listing" if v.image_dir else "CSV"} '
                 'alone shows are bad: listed under problems)')
  lines.append('')
  lines.append(f'files: {v.files_checked:,} images and masks checked (verify {c.verify}, '
               f'mask check {c.mask_check}) with {v.workers} process(es) in '
               f'{v.seconds:.1f} s')
  if v.mask_counts:
    codes = sorted({k for counts in v.mask_counts.values() for k in counts if k != 'masks'})
    if codes:
      lines.append(f'mask findings (--mask-check {c.mask_check}: written and reported):')
      lines += ['  ' + l for l in _table(
          ['class', 'masks', *codes],
          [[escape_control(name), counts['masks'], *(counts.get(k, 0) for k in codes)]
           for name, counts in sorted(v.mask_counts.items())])]
      for f in v.mask_findings:
        lines.append(f"  line {f['line']}: {', '.join(f['findings'])} "
                     f"({escape_control(f['image_id'])}, {escape_control(f['class_name'])})")
      more = v.rows_with_mask_findings - len(v.mask_findings)
      if more:
        lines.append(f'  ... and {more:,} more row(s) with mask findings')
  lines.append('')
  if not v.duplicate_groups:
    lines.append('duplicate images: none')
  else:
    crossing = sum(1 for g in v.duplicate_groups if g['crosses_splits'])
    lines.append(f'duplicate images: {len(v.duplicate_groups)} group(s), {crossing} across '
                 f'splits (leakage); --duplicates {c.duplicates}')
    for g in v.duplicate_groups:
      lines.append(f"  sha256 {g['sha256'][:12]}…: " + ', '.join(
          f"line {m['line']} {escape_control(m['image_id'])!r} "
          f"({escape_control(m['class_name'])}{', ' + m['split'] if m['split'] else ''})"
          for m in g['members']))
  lines.append('')
  splits = config_lib.format_splits(c.splits)
  if v.plan_error:
    lines.append(f'planned shards (seed {c.seed}, splits {splits}): none: {v.plan_error}')
  else:
    bad = len(v.bad_rows) + len(v.dropped)
    which = ('as `run` will write them' if not bad else
             f'for the {v.examples_to_write:,} rows that would be written'
             + ('' if c.quarantine else ' once the bad rows are fixed or quarantined'))
    lines.append(f'planned shards (seed {c.seed}, splits {splits}), {which}:')
    lines.append(summary_lib.format_shard_table(plan_summary(v)))
    deviation = round(assignment.max_class_deviation(v.shards), 3)
    lines.append(f'largest shard deviation from proportional: {deviation} records'
                 + (f' (grouped by {c.group_column})' if c.group_column else ' (floor/ceil)'))
    lines += membership_lines(v)
  lines.append('')
  bad = v.bad_rows
  if bad:
    verdict = ('would be quarantined (--on-bad-record quarantine)' if c.quarantine else
               '--on-bad-record fail: `run` would stop before writing anything')
    lines.append(f'problems: {len(bad)} bad row(s) of {v.rows_in}; {verdict}')
    lines += [f'  {escape_control(p)}' for p in bad]
    kinds = collections.Counter(p.reason.split(':', 1)[0] for p in bad)
    lines.append('  totals: ' + ', '.join(f'{k}: {n}' for k, n in sorted(kinds.items())))
  else:
    lines.append('problems: none')
  if v.dropped:
    lines.append(f'duplicates dropped (--duplicates drop, quarantined): {len(v.dropped)}')
    lines += [f'  {escape_control(p)}' for p in v.dropped]
  if c.duplicates == config_lib.DUPLICATES_FAIL and v.duplicate_groups:
    lines.append(escape_control(duplicates_lib.fail_error(v.duplicate_groups)))
  return '\n'.join(lines)
