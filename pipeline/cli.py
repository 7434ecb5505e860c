"""The ``cxr-tfx`` command line. Start-up imports no TensorFlow: `--help` answers at once."""
import argparse
import json
import os
import sys
import warnings
from typing import List, Optional

from components.image_example_gen import config as config_lib
from components.image_example_gen import summary as summary_lib
from pipeline import configs
from pipeline import progress

_DESCRIPTION = """\
cxr-tfx turns a CSV index of chest X-ray images and lung masks (columns image_path, mask_path,
class) into class-stratified, deterministic tf.Example shards with TFX, recorded in ML Metadata.

  cxr-tfx demo-data --out data/          # a synthetic dataset in the Kaggle layout
  cxr-tfx run                            # generate demo data and run the whole pipeline
  cxr-tfx run --csv data/all_image_mask_pairs.csv --pipeline-root out/
"""


def _add_demo_data_args(p: argparse.ArgumentParser, prefix: str = '') -> None:
  p.add_argument(f'--{prefix}scale', type=float, default=None if prefix else 1.0,
                 help='fraction of the real class counts 3616/10192/6012/1345 '
                      '(1.0 = 21,165 images; default %(default)s'
                      + (f', {configs.DEMO_SCALE} for run)' if prefix else ')'))
  p.add_argument('--missing-masks', type=float, default=None if prefix else 0.0,
                 help='fraction of rows without a mask (mask_path empty)')


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='cxr-tfx', description=_DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', metavar='COMMAND')
  sub.required = True

  demo = sub.add_parser(
      'demo-data', help='write a synthetic dataset in the Kaggle layout',
      description='Writes <out>/COVID-19_Radiography_Dataset/<Class>/{images,masks}/*.png '
                  '(299x299 radiograph-like images, 256x256 0/255 masks), '
                  'all_image_mask_pairs.csv (relative paths) and class_mapping.json. '
                  'Deterministic from --seed.')
  demo.add_argument('--out', required=True, help='output folder')
  _add_demo_data_args(demo)
  demo.add_argument('--seed', type=int, default=0, help='default %(default)s')

  run = sub.add_parser(
      'run', help='run the pipeline with LocalDagRunner',
      description='Runs ImageExampleGen (and the rest of the pipeline) with TFX LocalDagRunner '
                  'and a SQLite ML Metadata store, prints one line per component and ends with '
                  'a per-split, per-shard class-count table. Without --csv it first generates '
                  f'demo data under <pipeline-root>/{configs.DEMO_DATA_DIR}.')
  run.add_argument('--csv', help='CSV index (image_path,mask_path,class); relative paths '
                                 'resolve against its folder; gs:// works')
  run.add_argument('--class-mapping', help='JSON {"class name": label}; default: '
                                           'class_mapping.json next to the CSV')
  run.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                   help='where artifacts go (default %(default)s)')
  run.add_argument('--metadata', default='',
                   help=f'SQLite ML Metadata file (default <pipeline-root>/{configs.METADATA_FILE})')
  run.add_argument('--splits', default=config_lib.format_splits(
      [config_lib.SplitSpec(*s) for s in configs.DEFAULT_SPLITS]),
                   help='NAME=SHARDS,... in order; each split is written as that many shard '
                        'files (default %(default)s)')
  run.add_argument('--seed', type=int, default=configs.DEFAULT_SEED,
                   help='shard assignment seed (default %(default)s)')
  run.add_argument('--on-bad-record', choices=config_lib.ON_BAD_RECORD_CHOICES,
                   default=config_lib.ON_BAD_RECORD_FAIL,
                   help='fail: stop before writing anything and list the bad rows (line, path, '
                        'reason); quarantine: write the good rows and record the bad ones in '
                        'quarantine.json next to the shards (default %(default)s)')
  run.add_argument('--allowed-root', action='append', default=[], metavar='DIR',
                   help='folder (or URI prefix) that images and masks may resolve into, '
                        'symlinks followed; repeatable; default: the CSV\'s folder')
  run.add_argument('--max-pixels', type=int, default=config_lib.DEFAULT_MAX_PIXELS,
                   help='images/masks with more pixels are bad records '
                        '(decompression-bomb guard; default %(default)s)')
  run.add_argument('--group-column', default='', metavar='NAME',
                   help='CSV column (e.g. patient_id) whose rows must stay together: a group '
                        'never spans shards or splits; classes stay as close to proportional '
                        'as the groups allow, and the achieved deviation is reported')
  run.add_argument('--duplicates', choices=config_lib.DUPLICATES_CHOICES,
                   default=config_lib.DUPLICATES_REPORT,
                   help='rows whose image bytes are identical (sha256): report them (those in '
                        'different splits are leakage), fail before writing, or drop all but '
                        'the first by image_id into the quarantine report (default %(default)s)')
  run.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                   help='Beam pipeline option, repeatable, e.g. --beam-arg=--runner=DirectRunner '
                        '--beam-arg=--direct_running_mode=multi_processing')
  run.add_argument('--no-cache', action='store_true', help='recompute every component')
  run.add_argument('--fingerprint-content', action='store_true',
                   help='the cache notices changed images by path, size and mtime; this adds a '
                        'sha256 of every referenced file (reads them all before each run)')
  run.add_argument('--demo-scale', type=float, default=configs.DEMO_SCALE,
                   help='demo data scale when --csv is not given (default %(default)s)')
  run.add_argument('--verbose', action='store_true', help='show TensorFlow/Beam/TFX logs')
  return parser


def _demo_data(args) -> int:
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  ds = demo_data.generate(args.out, scale=args.scale, missing_masks=args.missing_masks,
                          seed=args.seed)
  print(f'wrote {ds.num_rows} images ({ds.num_missing_masks} without masks): {ds.csv_path}')
  print(f'class mapping: {ds.class_mapping_path}')
  return 0


def _run(args) -> int:
  if not args.verbose:  # import-time FutureWarnings of google-cloud & co. are not the user's
    warnings.simplefilter('ignore')
  splits = config_lib.parse_splits(args.splits)  # fail fast, before demo data or imports
  progress.quiet_native_logs()
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  csv_path = args.csv
  if not csv_path:
    from pipeline import demo_data  # pylint: disable=g-import-not-at-top
    out = os.path.join(args.pipeline_root, configs.DEMO_DATA_DIR)
    ds = demo_data.generate(out, scale=args.demo_scale,
                            missing_masks=configs.DEMO_MISSING_MASKS, seed=args.seed)
    print(f'demo data: {ds.num_rows} images ({ds.num_missing_masks} without masks) in {out}')
    csv_path = ds.csv_path
  mapping_path = args.class_mapping or os.path.join(os.path.dirname(csv_path),
                                                    'class_mapping.json')
  ingest_config = config_lib.IngestConfig(
      class_mapping=_load_mapping(mapping_path), splits=splits, seed=args.seed,
      on_bad_record=args.on_bad_record, max_pixels=args.max_pixels,
      group_column=args.group_column, duplicates=args.duplicates,
      allowed_roots=tuple(a if '://' in a else os.path.abspath(a) for a in args.allowed_root))
  result = local_runner.run_local(
      pipeline_root=args.pipeline_root, csv_path=csv_path, ingest_config=ingest_config,
      metadata_path=args.metadata, beam_pipeline_args=args.beam_arg,
      enable_cache=not args.no_cache, fingerprint_content=args.fingerprint_content,
      verbose=args.verbose)
  s = result.summary
  print(f'\nExamples: {result.examples_uri}')
  print(f'ML Metadata: {result.metadata_path}')
  print(f'rows in: {s.rows_in}   examples written: {s.examples_written}   '
        f'rows quarantined: {s.rows_quarantined}   seed: {s.seed}')
  print(f'largest shard deviation from proportional: {s.max_class_deviation} records'
        + (f' (grouped by {s.group_column})' if s.group_column else ' (floor/ceil)'))
  if s.duplicate_images:
    print(f'duplicate images: {len(s.duplicate_images)} group(s), '
          f'{len(s.cross_split_duplicates)} across splits (leakage)')
  if s.rows_quarantined:
    print(f'quarantine report: {os.path.join(result.examples_uri, summary_lib.QUARANTINE_FILE)}')
  print()
  print(summary_lib.format_shard_table(s))
  return 0


def _load_mapping(path: str):
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as e:
    raise config_lib.ConfigError(f'cannot read the class mapping {path}: {e.strerror} '
                                 '(option --class-mapping).') from e
  return config_lib.load_class_mapping_text(text, path)


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  handler = {'demo-data': _demo_data, 'run': _run}[args.command]
  try:
    return handler(args)
  except (ValueError, RuntimeError) as e:  # ConfigError, IndexValidationError, ...
    if getattr(args, 'verbose', False):
      raise
    print(f'cxr-tfx {args.command}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
