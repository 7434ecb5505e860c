"""What ``cxr-tfx validate`` found and how it is printed: ``Validation`` (the checks' results, and
whether and why ``run`` with the same options would stop) and ``format_report`` (classes, files,
masks, duplicates, the planned shards as `run` prints them, the split membership kept, then every
problem). ``pipeline.validate`` runs the checks and re-exports ``format_report``.
"""
import collections
import dataclasses
from typing import Any, Dict, List, Optional, Sequence

from components.errors import escape_control
from components.errors import escape_name
from components.image_example_gen import assignment
from components.image_example_gen import config as config_lib
from components.image_example_gen import duplicates as duplicates_lib
from components.image_example_gen import findings as findings_lib
from components.image_example_gen import index
from components.image_example_gen import summary as summary_lib


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
  # What the images' pixels showed (verify full), as the run's summary has them (findings.py)
  near_duplicate_groups: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  quality: Dict[str, Any] = dataclasses.field(default_factory=dict)
  shortcut: Dict[str, Any] = dataclasses.field(default_factory=dict)

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
      lines.append(f"    {', '.join(escape_name(i) for i in conflict['image_ids'])}: "
                   f"{', '.join(conflict['splits'])} -> {conflict['kept']}")
  if m.get('groups_not_compared'):
    lines.append(f"  {m['groups_not_compared']}")
  return lines


def format_report(v: Validation) -> str:
  """Classes, files, masks, duplicates, the planned shards, then every problem."""
  c = v.config
  lines = [f'classes ({len(c.class_mapping)}):']
  by_label = sorted(c.class_mapping.items(), key=lambda kv: kv[1])
  rows = [[escape_name(name), label, v.class_rows[name]['rows'],
           v.class_rows[name]['without_mask'], v.class_rows[name]['bad']]
          for name, label in by_label]
  rows.append(['all', '', *(sum(r[i] for r in rows) for i in (2, 3, 4))])
  lines += ['  ' + l for l in _table(['class', 'label', 'rows', 'without mask', 'bad files'],
                                     rows)]
  if v.classes_without_folder:
    lines.append(f'  (the class mapping names {len(v.classes_without_folder)} class(es) with no '
                 f'folder in {v.image_dir}: '
                 f'{", ".join(escape_name(n) for n in v.classes_without_folder)})')
  if v.index_problems:
    lines.append(f'  (and {len(v.index_problems)} row(s) the {"listing" if v.image_dir else "CSV"} '
                 'alone shows are bad: listed under problems)')
  lines.append('')
  lines.append(f'files: {v.files_checked:,} images and masks checked (verify {c.verify}, '
               f'mask check {c.mask_check}) with {v.workers} process(es) in '
               f'{v.seconds:.1f} s')
  lines += findings_lib.format_lines(c.near_duplicates, v.near_duplicate_groups, v.quality,
                                     v.shortcut)
  if v.mask_counts:
    codes = sorted({k for counts in v.mask_counts.values() for k in counts if k != 'masks'})
    if codes:
      lines.append(f'mask findings (--mask-check {c.mask_check}: written and reported):')
      lines += ['  ' + l for l in _table(
          ['class', 'masks', *codes],
          [[escape_name(name), counts['masks'], *(counts.get(k, 0) for k in codes)]
           for name, counts in sorted(v.mask_counts.items())])]
      for f in v.mask_findings:
        lines.append(f"  line {f['line']}: {', '.join(f['findings'])} "
                     f"({escape_name(f['image_id'])}, {escape_name(f['class_name'])})")
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
          f"line {m['line']} {escape_name(m['image_id'])!r} "
          f"({escape_name(m['class_name'])}{', ' + m['split'] if m['split'] else ''})"
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
