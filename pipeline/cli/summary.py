"""The end of `cxr-tfx run`: where the outputs are, the per-split, per-shard class counts, the
validators' verdicts, the split membership kept, the component times."""
import os
import time
from typing import Dict, List, Sequence, Tuple

from components.errors import escape_control
from components.errors import escape_name
from components.image_example_gen import summary as summary_lib
from components.trainer import report as evaluation_report
from pipeline import progress


def _print_summary(result, validator: Dict[str, List[str]],
                   times: Sequence[Tuple[str, str, float]]) -> None:
  s = result.summary
  print(f'\nExamples: {result.examples_uri}')
  print(f'Transform graph: {result.transform_graph_uri}   (training: '
        'tft.TFTransformOutput(uri), or components.transform.input_fn.make_dataset)')
  print(f'ML Metadata: {result.metadata_path} (run {result.run_id})')
  if getattr(result, 'span_pattern', False):
    version = f', version {result.version}' if result.version is not None else ''
    print(f'span: {result.span}{version} ({s.csv_path})')
  print(f'rows in: {s.rows_in}   examples written: {s.examples_written}   '
        f'rows quarantined: {s.rows_quarantined}   seed: {s.seed}')
  if s.image_dir:
    print(f'image folder: {s.image_dir}   class mapping: '
          f'{os.path.join(result.examples_uri, summary_lib.CLASS_MAPPING_FILE)}   listing: '
          f'{os.path.join(result.examples_uri, summary_lib.IMAGE_INDEX_FILE)}'
          + ''.join(f'; {n} {what} ignored' for what, n in s.folder_ignored.items() if n))
  if s.dicom:
    files = s.dicom.get('files', {})
    tags = s.dicom.get('identifying_tags', {})
    print(f"DICOM: {files.get('image', 0)} images, {files.get('mask', 0)} masks rendered "
          f'(window {s.dicom_window}, {s.dicom_output}); identifying tags present (counts, '
          'values never written): '
          + (', '.join(f'{k} {v}' for k, v in sorted(tags.items())) or 'none'))
  if getattr(s, 'shard_files', None):
    print(s.shard_files['described'])
  print(f'largest shard deviation from proportional: {s.max_class_deviation} records'
        + (f' (grouped by {s.group_column})' if s.group_column else ' (floor/ceil)'))
  if s.duplicate_images:
    print(f'duplicate images: {len(s.duplicate_images)} group(s), '
          f'{len(s.cross_split_duplicates)} across splits (leakage)')
  membership = getattr(s, 'membership', None)
  if membership:
    print(escape_control(_membership_text(
        membership, os.path.join(result.examples_uri, summary_lib.SPLIT_MANIFEST_FILE),
        [split['name'] for split in s.splits])))
  if s.rows_quarantined:
    print(f'quarantine report: {os.path.join(result.examples_uri, summary_lib.QUARANTINE_FILE)}')
  print()
  print(summary_lib.format_shard_table(s))
  clean = [split for split, found in validator.items() if not found]
  if len(clean) == len(validator):
    print(f'\nexample validator: no anomalies ({", ".join(clean)})')
  else:
    print('\nexample validator: anomalies against the schema'
          + (f' (none in {", ".join(clean)})' if clean else ''))
    for split, found in validator.items():
      for line in found:
        print(f'  {split}: {escape_control(line)}')
  print(f'class balance: {result.balance_verdict}')
  if getattr(result, 'drift', ''):
    print(f'drift: {result.drift}')
  for line in result.balance_findings[:10]:
    print(f'  {line}')
  if len(result.balance_findings) > 10:
    print(f'  ... {len(result.balance_findings) - 10} more in the report')
  print(f'balance report: {result.balance_report}')
  t = getattr(result, 'training', None)
  if t is not None:
    _print_training(t)
  print('\ncomponent times (ML Metadata: registration to publication):')
  width = max((len(name) for name, _, _ in times), default=0)
  for name, state, seconds in times:
    print(f'  {name.ljust(width)}  {seconds:7.1f} s'
          + ('' if state == 'COMPLETE' else f'  ({state.lower()})'))
  from pipeline.cli import _STARTED
  print(f'total time: {progress.seconds_text(time.monotonic() - _STARTED)}')


def _print_training(t) -> None:
  """The training lines: the model, the class weights, the Evaluator's report (split, count,
  per-class precision / recall / AUC, confusion matrix, mask Dice, why it was or was not
  blessed) and where it was pushed."""
  print(f'\nmodel: {t.model_uri}   (TensorBoard logs: {t.model_run_uri})')
  print(f'class weights: {t.class_weights or "none (unweighted)"}')
  report = evaluation_report.load(t.evaluation_uri)
  if report is not None:
    for line in evaluation_report.format_lines(report):
      print(escape_control(line))
  else:  # an Evaluator without the report (the stock one, or an older execution)
    per_class = ', '.join(f'{escape_name(name)} {acc:.3f}'
                          for name, acc in sorted(t.accuracy_per_class.items()))
    print(f'accuracy: {t.accuracy:.3f} (blessing threshold {t.min_accuracy}); per class: '
          f'{per_class}')
  print(f'evaluation: {t.evaluation_uri}')
  print(f'pushed: {t.pushed_model_dir}' if t.pushed else 'not blessed: nothing pushed')


def _membership_text(m: Dict, manifest: str, split_order: Sequence[str]) -> str:
  """The run's split membership (IngestSummary.membership) in a line or two; splits in
  ``split_order``."""
  published = f'published: {manifest}'
  source = m.get('source', '')
  if source == 'fresh':
    discarded = m.get('discarded')
    what = (f"{discarded['images']:,} images' published membership discarded "
            f"({discarded['manifest']})" if discarded else 'no published membership to discard')
    return (f"split membership: --fresh-splits: {what}; all {m.get('new', 0):,} images dealt "
            f'afresh; {published}')
  if not m.get('prior_manifest'):
    return (f"split membership: none published before, so all {m.get('new', 0):,} images were "
            f'dealt afresh; {published}')
  how = 'from ML Metadata' if source == 'ml-metadata' else '--split-manifest'
  new = m.get('new_by_split', {})
  new_by_split = ', '.join(f'{split} {new[split]:,}' for split in split_order if split in new)
  text = (f"split membership: {m.get('kept', 0):,} images kept their split from "
          f"{m['prior_manifest']} ({how}), {m.get('new', 0):,} new ({new_by_split}); "
          f"class mix off proportional by at most {m.get('max_split_class_deviation', 0)} "
          f"images per split; {m.get('missing', 0):,} of its images missing from this input")
  if m.get('missing_listed'):
    text += ' (' + ', '.join(f"{x['sha256'][:12]}… {x['split']}"
                             for x in m['missing_listed'][:3]) + (
        ', …' if m['missing'] > 3 else '') + '; all in ingest_summary.json)'
  if m.get('resent_count'):
    text += f", {m['resent_count']} re-sent from an earlier span (each kept its split)"
  if m.get('conflicts_count'):
    text += f", {m['conflicts_count']} conflict(s) (linked images in several splits)"
  if m.get('prior_fingerprints_not_compared'):
    text += (f", {m['prior_fingerprints_not_compared']:,} of its images not compared for "
             'near-duplicates (fingerprints of an older cxr-tfx; --fresh-splits re-measures '
             'them)')
  return f'{text}; {published}'
