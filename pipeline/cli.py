"""The ``cxr-tfx`` command line. Start-up imports no TensorFlow: `--help` answers at once, and
every command prints what it will do before loading anything heavy (pipeline/progress.py)."""
import argparse
import csv
import dataclasses
import os
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

_STARTED = time.monotonic()  # when the command started (this module loads first): total time

# pylint: disable=g-import-not-at-top,wrong-import-position
from components.class_balance import config as balance_config_lib
from components.errors import CxrError, escape_control, io_error_message
from components.image_example_gen import config as config_lib
from components.image_example_gen import spans as spans_lib
from components.image_example_gen import summary as summary_lib
from pipeline import configs
from pipeline import progress
# pylint: enable=g-import-not-at-top,wrong-import-position

# The pipeline's components, in the order LocalDagRunner runs them.
COMPONENTS = (configs.SCHEMA_GEN, configs.IMAGE_EXAMPLE_GEN, configs.STATISTICS_GEN,
              configs.EXAMPLE_VALIDATOR, configs.CLASS_BALANCE, configs.TRANSFORM)
HEAVY_LIBRARIES = 'TensorFlow, TFX and Beam'

_DESCRIPTION = """\
cxr-tfx turns a CSV index of chest X-ray images and lung masks (columns image_path, mask_path,
class) into class-stratified, deterministic tf.Example shards with TFX, recorded in ML Metadata.

  cxr-tfx demo-data --out data/          # a synthetic dataset in the Kaggle layout (423 images)
  cxr-tfx validate --csv data/all_image_mask_pairs.csv   # every check, in seconds, no TensorFlow
  cxr-tfx run                            # generate demo data and run the whole pipeline
  cxr-tfx run --csv data/all_image_mask_pairs.csv --pipeline-root out/
  cxr-tfx report --pipeline-root out/    # rebuild the balance reports from ML Metadata
  cxr-tfx lineage --metadata out/metadata.sqlite --latest examples
  cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output cxr-tfx.yaml \\
      --csv gs://bucket/all_image_mask_pairs.csv --class-mapping data/class_mapping.json \\
      --pipeline-root gs://bucket/root

`cxr-tfx COMMAND --help` explains a command's options, with examples.
"""


def _examples(*lines: str) -> str:
  """A subcommand's epilog: its examples, one command per line (continuations with \\)."""
  return 'examples:\n' + '\n'.join(f'  {line}' for line in lines)


def _add_quiet_arg(p: argparse.ArgumentParser) -> None:
  p.add_argument('--quiet', action='store_true',
                 help='print results and errors only: no start-up line, spinner or progress')


def _add_ingest_args(p: argparse.ArgumentParser, csv_help: str, mapping_help: str) -> None:
  """Options that shape ImageExampleGen's output: shared by `run` and `compile`."""
  p.add_argument('--csv', help=csv_help + '. A span pattern such as \'data/index-{SPAN}.csv\' '
                 '(also {VERSION}, {YYYY}{MM}{DD}) takes the newest span, or --span '
                 '(docs/spans.md)')
  p.add_argument('--span', type=_non_negative_int, metavar='N',
                 help='with a span pattern in --csv: this span instead of the newest')
  p.add_argument('--class-mapping', help=mapping_help)
  p.add_argument('--splits', default=config_lib.format_splits(
      [config_lib.SplitSpec(*s) for s in configs.DEFAULT_SPLITS]),
                 help='NAME=SHARDS,... in order; each split is written as that many shard '
                      'files (default %(default)s)')
  p.add_argument('--seed', type=int, default=configs.DEFAULT_SEED,
                 help='shard assignment seed (default %(default)s)')
  p.add_argument('--on-bad-record', choices=config_lib.ON_BAD_RECORD_CHOICES,
                 default=config_lib.ON_BAD_RECORD_FAIL,
                 help='fail: stop before writing anything and list the bad rows (line, path, '
                      'reason); quarantine: write the good rows and record the bad ones in '
                      'quarantine.json next to the shards (default %(default)s)')
  p.add_argument('--allowed-root', action='append', default=[], metavar='DIR',
                 help='folder (or URI prefix) that images and masks may resolve into, '
                      "symlinks followed; repeatable; default: the CSV's folder")
  p.add_argument('--max-pixels', type=int, default=config_lib.DEFAULT_MAX_PIXELS,
                 help='images/masks with more pixels are bad records '
                      '(decompression-bomb guard; default %(default)s)')
  p.add_argument('--group-column', default='', metavar='NAME',
                 help='CSV column (e.g. patient_id), or dicom:KEYWORD (e.g. dicom:PatientID: '
                      "read from each DICOM image's header), whose rows must stay together: a "
                      'group never spans shards or splits; classes stay as close to '
                      'proportional as the groups allow, and the achieved deviation is '
                      'reported. Written only as a salted hash (group_hash)')
  p.add_argument('--group-assignment', choices=config_lib.GROUP_ASSIGNMENT_CHOICES, default='',
                 help='how groups go to splits: balanced (class counts closest to '
                      'proportional, given the whole input) or stable (a seeded hash of the '
                      'group: a patient keeps its split in every span). Default: stable for '
                      'a span pattern, balanced otherwise')
  p.add_argument('--group-salt', default='', metavar='SECRET',
                 help='salt of the group hashes (default: a public constant; docs/inputs.md). '
                      'Recorded in ML Metadata like every option')
  p.add_argument('--duplicates', choices=config_lib.DUPLICATES_CHOICES,
                 default=config_lib.DUPLICATES_REPORT,
                 help='rows whose image bytes are identical (sha256): report them (those in '
                      'different splits are leakage), fail before writing, or drop all but '
                      'the first by image_id into the quarantine report (default %(default)s)')
  p.add_argument('--verify', choices=config_lib.VERIFY_CHOICES, default=config_lib.VERIFY_FULL,
                 help='full decodes every image and mask before it is written, so corrupt pixel '
                      'data is a bad record; header checks format, size and file structure '
                      'only, faster (see docs/benchmarks.md) (default %(default)s)')
  p.add_argument('--max-file-bytes', type=_positive_int, default=config_lib.DEFAULT_MAX_FILE_BYTES,
                 metavar='N',
                 help='images/masks larger than N bytes are bad records, refused before they '
                      'are read (default %(default)s = 128 MiB)')
  p.add_argument('--mask-check', choices=config_lib.MASK_CHECK_CHOICES,
                 default=config_lib.MASK_CHECK_WARN,
                 help='masks must decode, be single-channel, binary (0 and one foreground '
                      'value) and of their image\'s size (or --mask-size): warn writes and '
                      'counts violations (ClassBalance reports them), fail makes them bad '
                      'records, off does not look (default %(default)s)')
  p.add_argument('--mask-size', default='', metavar='WxH',
                 help='a size every mask may have instead of its image\'s, e.g. 256x256 for '
                      'the COVID-19 Radiography Database (299x299 images)')
  p.add_argument('--dicom-window', default=config_lib.DICOM_WINDOW_AUTO,
                 metavar='auto|none|CENTER,WIDTH',
                 help="DICOM images' VOI step: auto = the file's VOI LUT or first window (a "
                      'min..max stretch without one); none = the nominal range; CENTER,WIDTH = '
                      'that LINEAR window (default %(default)s; docs/inputs.md)')
  p.add_argument('--dicom-output', choices=config_lib.DICOM_OUTPUT_CHOICES,
                 default=config_lib.DICOM_OUTPUT_PNG16,
                 help='what DICOM images are rendered to: a 16-bit (precision kept) or 8-bit '
                      'grayscale PNG (default %(default)s)')
  p.add_argument('--allow-burned-in', action='store_true',
                 help='write DICOM files whose BurnedInAnnotation is YES (by default they are '
                      'bad records: their pixels may show identifying text)')
  p.add_argument('--split-manifest', default='', metavar='PATH|URI',
                 help='keep the split membership published in this split manifest (the '
                      'split_manifest.json an earlier run wrote): every image in it keeps its '
                      'split. Locally `run` finds the previous run\'s manifest in ML Metadata '
                      'without it; needed across pipeline roots and on Kubeflow')
  p.add_argument('--fresh-splits', action='store_true',
                 help='start over: ignore published split membership and deal every image '
                      'afresh; the run says how many images\' membership it discards')


def _add_image_dir_arg(p: argparse.ArgumentParser, what: str) -> None:
  p.add_argument('--image-dir', default='', metavar='DIR',
                 help=f'instead of --csv: {what}, DIR/<class>/<images> (masks in '
                      'DIR/<class>/masks/, matched by file stem), or the COVID-19 '
                      'Radiography Database layout DIR/<Class>/images + DIR/<Class>/masks. '
                      '--class-mapping must name every class folder; without it labels follow '
                      'the sorted class folders (docs/inputs.md)')


def _add_pipeline_name_arg(p: argparse.ArgumentParser, what: str) -> None:
  p.add_argument('--pipeline-name', default=configs.PIPELINE_NAME, type=_pipeline_name,
                 help=f'{what}, [a-z0-9][a-z0-9-]{{0,127}} (default %(default)s)')


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
  """Pipeline name and Beam options: shared by `run` and `compile`."""
  _add_pipeline_name_arg(p, 'TFX/KFP pipeline name')
  p.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                 help='Beam pipeline option for every Beam component, repeatable, e.g. '
                      '--beam-arg=--runner=DataflowRunner '
                      '--beam-arg=--direct_running_mode=multi_processing (docs/orchestration.md)')
  p.add_argument('--beam-arg-for', action='append', default=[], type=_component_beam_arg,
                 metavar='COMPONENT=ARG',
                 help='Beam pipeline option for one component, repeatable, added after the '
                      '--beam-arg ones so it wins for the same flag, e.g. '
                      '--beam-arg-for ImageExampleGen=--direct_num_workers=2; COMPONENT is one '
                      f'of {", ".join(configs.BEAM_COMPONENT_IDS)} (docs/orchestration.md: Per-component Beam '
                      'arguments)')


def _component_beam_arg(text: str) -> Tuple[str, str]:
  """'ImageExampleGen=--direct_num_workers=2' -> ('ImageExampleGen', '--direct_num_workers=2')."""
  component_id, sep, arg = text.partition('=')
  if not sep or not arg:
    raise argparse.ArgumentTypeError(
        f'expected COMPONENT=ARG, e.g. ImageExampleGen=--direct_num_workers=2, got {text!r}; '
        f'COMPONENT is one of {", ".join(configs.BEAM_COMPONENT_IDS)}')
  if component_id not in configs.beam_component_ids(train=True):
    raise argparse.ArgumentTypeError(configs.unknown_beam_component_message(component_id, True))
  return component_id, arg


def _component_beam_args(pairs: Sequence[Tuple[str, str]],
                         train: bool = False) -> Dict[str, List[str]]:
  """[(component, arg), ...] in command-line order -> {component: [arg, ...]}; the Evaluator's
  only with --train."""
  result: Dict[str, List[str]] = {}
  for component_id, arg in pairs:
    if component_id not in configs.beam_component_ids(train):
      raise configs.PipelineConfigError(
          f'--beam-arg-for: {configs.unknown_beam_component_message(component_id, train)}')
    result.setdefault(component_id, []).append(arg)
  return result


def _int_at_least(minimum: int, what: str):
  """An argparse type: an int >= ``minimum``, else an error saying ``what`` was expected."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = minimum - 1
    if value < minimum:
      raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value
  return parse


_non_negative_int = _int_at_least(0, 'an integer >= 0')
_positive_int = _int_at_least(1, 'a positive integer')


def _pipeline_name(text: str) -> str:
  try:
    return configs.validate_pipeline_name(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from e


def _add_balance_args(p: argparse.ArgumentParser) -> None:
  """ClassBalance's thresholds: shared by `run` and `compile`."""
  d = balance_config_lib
  p.add_argument('--fail-on-imbalance', action='store_true',
                 help='stop the run (after writing the reports) when a split or shard fails a '
                      'balance check; the error names the split or shard, the class and the '
                      'measure')
  p.add_argument('--max-linf', type=float, default=d.DEFAULT_MAX_LINF,
                 help='largest L-infinity distance between a split/shard\'s class proportions '
                      'and the whole dataset\'s, on top of the rounding allowance of a unit of '
                      'm records (2/m) (default %(default)s)')
  p.add_argument('--max-js', type=float, default=d.DEFAULT_MAX_JS,
                 help='largest Jensen-Shannon divergence (bits, as TFDV) on top of the rounding '
                      'allowance (default %(default)s)')
  p.add_argument('--min-count-per-class', type=int, default=d.DEFAULT_MIN_COUNT_PER_CLASS,
                 help='every class needs at least this many examples in every split '
                      '(default %(default)s: no class missing from eval or test)')
  p.add_argument('--max-class-ratio', type=float, default=d.DEFAULT_MAX_CLASS_RATIO,
                 metavar='RATIO',
                 help='class-imbalance warning threshold: largest class / smallest class in '
                      'the whole dataset (default %(default)s); above it the report says '
                      '"classes imbalanced" and points to the class weights (never stops a run)')
  p.add_argument('--max-mask-presence-gap', type=float,
                 default=d.DEFAULT_MAX_MASK_PRESENCE_GAP, metavar='FRACTION',
                 help='warn when a split\'s share of records with a mask differs from the whole '
                      'dataset\'s by more than this, plus a 3-sigma sampling allowance (default '
                      '%(default)s)')
  p.add_argument('--coverage-sample', type=int, default=d.DEFAULT_COVERAGE_SAMPLE, metavar='N',
                 help='masks ClassBalance decodes per shard file and class for the '
                      'mask-coverage histogram (default %(default)s; 0: every mask)')
  p.add_argument('--max-drift-linf', type=float, default=d.DEFAULT_MAX_DRIFT_LINF,
                 metavar='FRACTION',
                 help='spans: largest L-infinity distance between this span\'s class mix and '
                      'the previous span\'s (also compares image sizes/modes and mask presence; '
                      'default %(default)s)')
  p.add_argument('--max-drift-js', type=float, default=d.DEFAULT_MAX_DRIFT_JS, metavar='BITS',
                 help='spans: largest Jensen-Shannon divergence between this span\'s class mix '
                      '(and mask coverage) and the previous span\'s (default %(default)s)')
  p.add_argument('--fail-on-drift', action='store_true',
                 help='spans: stop the run (after writing the reports) when the class mix '
                      'drifted from the previous span beyond --max-drift-linf/--max-drift-js')
  p.add_argument('--warnings-as-errors', action='store_true',
                 help='ClassBalance\'s warnings (class imbalance, masks) get severity ERROR in '
                      'its TFDV anomalies and reports (they still do not stop the run)')


def _add_transform_args(p: argparse.ArgumentParser) -> None:
  """Transform's output shape and materialisation: shared by `run` and `compile`."""
  p.add_argument('--image-size', default='256x256', metavar='HxW',
                 help='size of every decoded image and mask (default %(default)s: the masks\' size)')
  p.add_argument('--channels', type=int, default=1, choices=(1, 3),
                 help='channels of the decoded image (default %(default)s: grayscale)')
  p.add_argument('--materialize', action='store_true',
                 help='also write transformed examples (decoded float pixels: about 0.26 MB per '
                      '256x256x1 image, 5.5 GB for the 21,165 real images); default: graph only, '
                      'applied at read time by make_dataset')


def _transform_config(args):
  from components.transform.config import ConfigError, TransformConfig  # pylint: disable=g-import-not-at-top
  try:
    height, width = (int(v) for v in args.image_size.lower().split('x'))
  except ValueError as e:
    raise ConfigError(f'--image-size {args.image_size!r} must be HxW, e.g. 256x256.') from e
  return TransformConfig(image_size=(height, width), channels=args.channels,
                         materialize=args.materialize)


def _balance_config(args) -> balance_config_lib.BalanceConfig:
  return balance_config_lib.BalanceConfig(
      max_linf=args.max_linf, max_js=args.max_js, min_count_per_class=args.min_count_per_class,
      fail_on_imbalance=args.fail_on_imbalance, max_class_ratio=args.max_class_ratio,
      max_mask_presence_gap=args.max_mask_presence_gap, coverage_sample=args.coverage_sample,
      warnings_as_errors=args.warnings_as_errors, max_drift_linf=args.max_drift_linf,
      max_drift_js=args.max_drift_js, fail_on_drift=args.fail_on_drift)


def _add_train_args(p: argparse.ArgumentParser) -> None:
  """Trainer, Evaluator and Pusher: shared by `run` and `compile`."""
  from components.trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top  (pure)
  p.add_argument('--train', action='store_true',
                 help='also train the template model (Trainer), evaluate it (Evaluator: '
                      'accuracy overall and per class) and push it when blessed (Pusher); '
                      'docs/training.md')
  p.add_argument('--train-steps', type=_positive_int, default=TrainConfig.train_steps,
                 metavar='N', help='training steps with --train (default %(default)s)')
  p.add_argument('--min-accuracy', type=float, default=TrainConfig.min_accuracy, metavar='X',
                 help='with --train, bless and push only when accuracy >= X (default '
                      '%(default)s: low, so the demo blesses)')
  p.add_argument('--serving-dir', default=None, metavar='DIR',
                 help='with --train, where blessed models go as DIR/<version>/ (default '
                      f'<pipeline-root>/{configs.SERVING_MODEL_DIR})')


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='cxr-tfx', description=_DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', metavar='COMMAND')
  sub.required = True
  raw = argparse.RawDescriptionHelpFormatter

  demo = sub.add_parser(
      'demo-data', help='write a synthetic dataset in the Kaggle layout',
      formatter_class=raw,
      description='Writes <out>/COVID-19_Radiography_Dataset/<Class>/{images,masks}/*.png '
                  '(299x299 radiograph-like images, 256x256 0/255 masks),\n'
                  'all_image_mask_pairs.csv (relative paths) and class_mapping.json. '
                  'Deterministic from --seed.',
      epilog=_examples(
          'cxr-tfx demo-data --out data/                 # 423 images, as `cxr-tfx run` makes',
          'cxr-tfx demo-data --out data-full/ --scale 1  # the real set\'s 21,165 images',
          'cxr-tfx demo-data --out weekly/ --spans 3     # index-1.csv .. index-3.csv: spans'))
  demo.add_argument('--out', required=True, help='output folder')
  demo.add_argument('--scale', type=float, default=configs.DEMO_SCALE,
                    help='fraction of the real class counts 3616/10192/6012/1345 '
                         '(1.0 = 21,165 images; default %(default)s, the size `cxr-tfx run` '
                         'uses for its demo: 423 images)')
  demo.add_argument('--missing-masks', type=float, default=0.0,
                    help='fraction of rows without a mask (mask_path empty; default %(default)s)')
  demo.add_argument('--seed', type=int, default=0, help='default %(default)s')
  demo.add_argument('--spans', type=_positive_int, metavar='N',
                    help='instead: N weekly spans <out>/index-1.csv .. index-N.csv (columns '
                         'image_path, mask_path, class, patient_id; returning patients; span 3 '
                         'shifts the class mix to COVID) for `run --csv '
                         '\'<out>/index-{SPAN}.csv\'` (docs/spans.md)')
  demo.add_argument('--rows-per-span', type=_positive_int, default=100, metavar='N',
                    help='images per span with --spans (default %(default)s)')
  demo.add_argument('--workers', type=_positive_int, default=_cores(), metavar='N',
                    help='processes rendering images (default %(default)s: the cores available)')
  _add_quiet_arg(demo)

  validate = sub.add_parser(
      'validate', help='check a CSV or an image folder, its class mapping and every file, '
                       'without TensorFlow',
      formatter_class=raw,
      description='Runs every check of ImageExampleGen -- the CSV and the class mapping, then '
                  'every image and mask\n(existence, allowed roots, headers, pixel bounds, '
                  'the mask check), duplicate images and the group\ncolumn -- with the '
                  'pipeline\'s own code and messages, but without TensorFlow, TFX or Beam, on '
                  'a\nprocess per core. Prints the class table, the planned split/shard counts '
                  'and every problem;\nexits 2 when `cxr-tfx run` with the same options would '
                  'stop at ImageExampleGen. Nothing is written.',
      epilog=_examples(
          'cxr-tfx validate --csv data/all_image_mask_pairs.csv',
          'cxr-tfx validate --csv data/all_image_mask_pairs.csv --verify full '
          '--splits train=3,test=1',
          'cxr-tfx validate --csv data/all_image_mask_pairs.csv --on-bad-record quarantine '
          '--duplicates drop',
          "cxr-tfx validate --csv 'weekly/index-{SPAN}.csv' --span 2 --group-column patient_id "
          '--mask-size 256x256   # a span (docs/spans.md)',
          'cxr-tfx validate --image-dir data/COVID-19_Radiography_Dataset '
          '--class-mapping data/class_mapping.json'))
  _add_ingest_args(validate, csv_help='CSV index (image_path,mask_path,class), a local file; '
                                      'relative paths resolve against its folder',
                   mapping_help='JSON {"class name": label}; default: class_mapping.json next '
                                'to the CSV, or with --image-dir the sorted class folder names')
  _add_image_dir_arg(validate, 'a local image folder')
  validate.set_defaults(verify=config_lib.VERIFY_HEADER)
  validate.add_argument('--workers', type=_positive_int, default=_cores(), metavar='N',
                        help='processes checking files (default %(default)s: the cores '
                             'available)')
  _add_quiet_arg(validate)

  run = sub.add_parser(
      'run', help='run the pipeline with LocalDagRunner',
      formatter_class=raw,
      description='Runs the pipeline with TFX LocalDagRunner and a SQLite ML Metadata store. '
                  'It says at once what will run\non how many rows and where outputs go, '
                  'shows a spinner while TensorFlow/TFX load, a progress bar with\nETA for '
                  'ImageExampleGen (rows done, from its staging folder) and the elapsed time '
                  'of the other\ncomponents, and ends with a per-split, per-shard class-count '
                  'table, ExampleValidator\'s and\nClassBalance\'s verdicts, the Transform '
                  'graph\'s URI, per-component times from ML Metadata and\nthe total time. '
                  f'Without --csv it first generates demo data under <pipeline-root>/'
                  f'{configs.DEMO_DATA_DIR}.',
      epilog=_examples(
          'cxr-tfx run                                  # demo data, then the pipeline',
          'cxr-tfx run --csv data/all_image_mask_pairs.csv --pipeline-root out/',
          'cxr-tfx run --image-dir data/COVID-19_Radiography_Dataset --pipeline-root out/',
          'cxr-tfx run --csv data/all_image_mask_pairs.csv --pipeline-root out2/ \\',
          '    --split-manifest out/ImageExampleGen/examples/3/split_manifest.json'
          '   # keep out/\'s splits',
          "cxr-tfx run --csv 'weekly/index-{SPAN}.csv' --group-column patient_id --mask-size "
          '256x256 --pipeline-root out/',
          'cxr-tfx run --csv dicom/index.csv --group-column dicom:PatientID '
          '--dicom-window auto',
          'cxr-tfx run --csv data/all_image_mask_pairs.csv --pipeline-root out/ \\',
          '    --on-bad-record quarantine --beam-arg=--direct_running_mode=multi_processing \\',
          '    --beam-arg=--direct_num_workers=2'))
  _add_ingest_args(run, csv_help='CSV index (image_path,mask_path,class); relative paths '
                                 'resolve against its folder; gs:// works',
                   mapping_help='JSON {"class name": label}; default: class_mapping.json next '
                                'to the CSV, or with --image-dir the sorted class folder names')
  _add_image_dir_arg(run, 'an image folder (gs:// works)')
  _add_balance_args(run)
  _add_pipeline_args(run)
  _add_transform_args(run)
  _add_train_args(run)
  run.add_argument('--schema', default=configs.SCHEMA_FILE,
                   help='curated schema.pbtxt (default: schemas/schema.pbtxt of this project)')
  run.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                   help='where artifacts go (default %(default)s)')
  run.add_argument('--train-spans', type=_positive_int, default=1, metavar='N',
                   help='with a span pattern: Transform (and with --train the Trainer) read '
                        'this span and the N-1 spans before it, found in ML Metadata; the '
                        'Evaluator evaluates on this span (default %(default)s)')
  run.add_argument('--metadata', default='',
                   help=f'SQLite ML Metadata file (default <pipeline-root>/{configs.METADATA_FILE})')
  run.add_argument('--no-cache', action='store_true', help='recompute every component')
  run.add_argument('--fingerprint-content', action='store_true',
                   help='the cache notices changed images by path, size and mtime; this adds a '
                        'sha256 of every referenced file (reads them all before each run). '
                        '(On Kubeflow, `compile` turns caching off for ImageExampleGen instead.)')
  run.add_argument('--demo-scale', type=float, default=configs.DEMO_SCALE,
                   help='demo data scale when --csv is not given (default %(default)s)')
  run.add_argument('--verbose', action='store_true',
                   help='show TensorFlow/Beam/TFX logs (hidden otherwise, errors included: '
                        'an error is reported once, as cxr-tfx\'s message)')
  _add_quiet_arg(run)

  compile_ = sub.add_parser(
      'compile', help='compile the pipeline for Kubeflow Pipelines v2',
      formatter_class=raw,
      description='Compiles the same create_pipeline(...) with KubeflowV2DagRunner: an --output '
                  'ending in .yaml gets the\npipeline-spec IR for open-source KFP (it can also '
                  'be loaded as a step of your own KFP pipeline with\n'
                  'kfp.components.load_component_from_file); .json gets a Vertex PipelineJob. '
                  'The components run\nfrom --image (see the Dockerfile); paths must be URIs '
                  'the cluster can read (gs://, s3://, ...).\nPrints the file written and the '
                  'command that submits it.',
      epilog=_examples(
          'cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output cxr-tfx.yaml \\',
          '    --csv gs://bucket/all_image_mask_pairs.csv --class-mapping '
          'data/class_mapping.json \\',
          '    --pipeline-root gs://bucket/root',
          'cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output cxr-tfx.json \\',
          '    --csv gs://bucket/all_image_mask_pairs.csv --class-mapping '
          'data/class_mapping.json \\',
          '    --pipeline-root gs://bucket/root --pipeline-name cxr-tfx-site-b',
          'cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output cxr-tfx.yaml \\',
          '    --image-dir gs://bucket/xrays --class-mapping data/class_mapping.json '
          '--no-runtime-parameters \\',
          '    --split-manifest gs://bucket/root/split_manifest.json --pipeline-root '
          'gs://bucket/root'))
  _add_ingest_args(compile_, csv_help='CSV index as the cluster sees it, e.g. gs://bucket/x.csv',
                   mapping_help='local JSON {"class name": label}, read now and compiled in')
  _add_image_dir_arg(compile_, 'an image folder as the cluster sees it (a URI such as '
                               'gs://bucket/xrays, or an absolute path), with '
                               '--no-runtime-parameters')
  _add_balance_args(compile_)
  _add_pipeline_args(compile_)
  _add_transform_args(compile_)
  _add_train_args(compile_)
  compile_.add_argument('--resources', action='append', default=[], metavar='COMPONENT=CPU,MEM',
                        help='CPU and memory requested for one component\'s task, repeatable, '
                             'e.g. --resources Transform=4,16G (defaults: COMPONENT_RESOURCES '
                             'in pipeline/kubeflow_runner.py, sized from bench/results)')
  compile_.add_argument('--embeddable', action='store_true',
                        help='also declare Examples, Schema, statistics, anomalies and the '
                             'TransformGraph as pipeline outputs (system.* types), so a parent '
                             'KFP pipeline that loads the YAML can consume them')
  compile_.add_argument('--no-runtime-parameters', action='store_true',
                        help='compile --csv, --class-mapping, --seed, --splits and '
                             '--split-manifest in as constants; by default they are pipeline '
                             'parameters (csv_uri, class_mapping, seed, splits, split_manifest) '
                             'defaulting to the given values. Needed with --image-dir')
  compile_.add_argument('--schema', default=configs.IMAGE_SCHEMA_FILE,
                        help='the schema.pbtxt path inside --image (default %(default)s)')
  compile_.add_argument('--image', required=True, help='container image with cxr-tfx installed')
  compile_.add_argument('--output', required=True, help='FILE.yaml (KFP) or FILE.json (Vertex)')
  compile_.add_argument('--pipeline-root', required=True, help='artifact root, e.g. gs://b/root')
  _add_quiet_arg(compile_)

  report = sub.add_parser(
      'report', help='rebuild the class-balance reports of the newest run from ML Metadata',
      formatter_class=raw,
      description='Finds ClassBalance\'s execution in the newest run of --pipeline-name in the '
                  'metadata store, the statistics,\nexamples and schema it was computed from '
                  'and its thresholds, and writes balance_report.json,\n'
                  'balance_report.html and Split-<name>/SchemaDiff.pb (TFDV Anomalies) again '
                  'under --out.\nThreshold options override the recorded ones when given.',
      epilog=_examples(
          'cxr-tfx report --pipeline-root out/',
          'cxr-tfx report --pipeline-root out/ --out strict-report/ --max-linf 0.01'))
  report.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                      help='the run\'s pipeline root (default %(default)s)')
  report.add_argument('--metadata', default='',
                      help=f'SQLite ML Metadata file (default <pipeline-root>/{configs.METADATA_FILE})')
  report.add_argument('--out', default='',
                      help=f'output folder (default <pipeline-root>/{configs.REPORTS_DIR})')
  report.add_argument('--max-linf', type=float, help='override the recorded threshold')
  report.add_argument('--max-js', type=float, help='override the recorded threshold')
  report.add_argument('--min-count-per-class', type=int, help='override the recorded minimum')
  _add_pipeline_name_arg(report, 'the pipeline whose newest run to report on')
  _add_quiet_arg(report)

  lineage = sub.add_parser(
      'lineage', help='trace an artifact in ML Metadata back to its inputs and on to consumers',
      formatter_class=raw,
      description='Prints the chain from an artifact back to the ingestion inputs (CSV folder '
                  'and pattern, input\nfingerprint including the referenced images, class '
                  'mapping, seed, split config) and forward to the\ncomponents that consumed it. '
                  'Each producer and consumer is shown once; the cached executions that\n'
                  'reused its outputs are listed on one "reused by" line.',
      epilog=_examples(
          'cxr-tfx lineage --metadata out/metadata.sqlite --latest examples',
          'cxr-tfx lineage --metadata out/metadata.sqlite --latest ClassBalance --json',
          'cxr-tfx lineage --metadata out/metadata.sqlite --artifact-uri '
          'out/ImageExampleGen/examples/2   # <execution id>: 2 in a fresh root'))
  lineage.add_argument('--metadata', required=True, help='SQLite ML Metadata file')
  which = lineage.add_mutually_exclusive_group(required=True)
  which.add_argument('--artifact-uri', help='the artifact whose lineage to print (a local path '
                                            'may be relative to the current folder)')
  producers = sorted({component for component, _ in configs.LINEAGE_TYPES.values()})
  which.add_argument('--latest', choices=sorted(configs.LINEAGE_TYPES) + producers,
                     metavar='KIND|PRODUCER',
                     help='the artifact of that kind from the newest run of --pipeline-name, '
                          'by its producer: examples (ImageExampleGen), statistics, schema, '
                          'anomalies (ExampleValidator), balance (ClassBalance), '
                          'transform_graph; or name the producer: '
                          f'{", ".join(producers)}')
  _add_pipeline_name_arg(lineage, 'the pipeline whose newest run --latest reads')
  lineage.add_argument('--json', action='store_true', help='machine-readable output')
  return parser


def _cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


# --- Commands ------------------------------------------------------------------------------

def _lineage(args, display: progress.Display) -> int:  # pylint: disable=unused-argument
  from pipeline import lineage  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  if not os.path.exists(args.metadata):
    raise config_lib.ConfigError(f'no metadata store at {args.metadata} (option --metadata).')
  tracer = lineage.Lineage(mlmd.sqlite_store(args.metadata))
  chain = tracer.chain(tracer.resolve(args.artifact_uri or '', args.latest or '',
                                      args.pipeline_name))
  print(lineage.to_json(chain) if args.json else lineage.format_chain(chain))
  return 0


def _load_libraries(display: progress.Display, *modules: str) -> None:
  """Imports TensorFlow, TFX and Beam (15-40 s) under a spinner, then ``modules``."""
  progress.quiet_native_logs()
  import importlib  # pylint: disable=g-import-not-at-top
  with display.activity(f'loading {HEAVY_LIBRARIES}',
                        done_text=f'loaded {HEAVY_LIBRARIES} in {{seconds}}'):
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      for name in ('tensorflow', 'tfx.v1', 'apache_beam', *modules):
        importlib.import_module(name)


def _report(args, display: progress.Display) -> int:
  metadata = args.metadata or os.path.join(args.pipeline_root, configs.METADATA_FILE)
  if not os.path.exists(metadata):
    raise config_lib.ConfigError(f'no metadata store at {metadata} (option --pipeline-root or '
                                 '--metadata).')
  out = args.out or os.path.join(args.pipeline_root, configs.REPORTS_DIR)
  display.line(f'cxr-tfx report: the class-balance reports of the newest run of pipeline '
               f'{args.pipeline_name!r} in {metadata}, into {out}')
  warnings.simplefilter('ignore')
  _load_libraries(display, 'pipeline.reports')
  from pipeline import reports  # pylint: disable=g-import-not-at-top
  found = reports.latest_inputs(metadata, args.pipeline_name)
  overrides = {k: v for k, v in (('max_linf', args.max_linf), ('max_js', args.max_js),
                                 ('min_count_per_class', args.min_count_per_class))
               if v is not None}
  config = dataclasses.replace(found.config, **overrides)
  with progress.component_progress(), display.activity(
      '[ClassBalance] rebuilding the reports', done_text='[ClassBalance] reports rebuilt in '
                                                         '{seconds}'):
    result, paths = reports.rebuild(metadata, os.path.abspath(out), config, args.pipeline_name)
  display.close()
  print(f'class balance: {result.verdict}')
  for f in result.findings[:20]:
    print(f'  {f.kind}: {f.message}')
  print(f'HTML report: {paths["html"]}')
  print(f'JSON report: {paths["json"]}')
  return 0


def _ingest_config(args, mapping_path: str) -> config_lib.IngestConfig:
  """``mapping_path`` '' means no mapping: an image folder's sorted class folders."""
  _check_split_args(args)
  return config_lib.IngestConfig(
      class_mapping=_load_mapping(mapping_path) if mapping_path else {},
      splits=config_lib.parse_splits(args.splits),
      seed=args.seed, on_bad_record=args.on_bad_record, max_pixels=args.max_pixels,
      group_column=args.group_column, duplicates=args.duplicates, verify=args.verify,
      max_file_bytes=args.max_file_bytes, dicom_window=args.dicom_window,
      dicom_output=args.dicom_output, allow_burned_in=args.allow_burned_in,
      group_salt=args.group_salt, mask_check=args.mask_check, mask_size=args.mask_size,
      group_assignment=args.group_assignment or (
          config_lib.GROUP_ASSIGNMENT_STABLE if args.csv and spans_lib.has_span_spec(args.csv)
          else config_lib.GROUP_ASSIGNMENT_BALANCED),
      allowed_roots=tuple(a if '://' in a else os.path.abspath(a) for a in args.allowed_root),
      split_manifest=(args.split_manifest if not args.split_manifest or _is_uri(args.split_manifest)
                      else os.path.abspath(args.split_manifest)),
      fresh_splits=args.fresh_splits)


def _generate_demo(display: progress.Display, out: str, scale: float, missing_masks: float,
                   seed: int, workers: int):
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  with display.activity('[demo-data]', done_text='[demo-data] written in {seconds}'):
    return demo_data.generate(
        out, scale=scale, missing_masks=missing_masks, seed=seed, workers=workers,
        progress=lambda done, total: display.report(done, total, 'images'))


def _demo_data(args, display: progress.Display) -> int:
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  if args.spans:
    display.line(f'cxr-tfx demo-data: {args.spans} spans of {args.rows_per_span} images into '
                 f'{args.out}')
    with display.activity('[demo-data]', done_text='[demo-data] written in {seconds}'):
      ds = demo_data.generate_spans(args.out, rows_per_span=args.rows_per_span,
                                    mixes=demo_data.span_mixes(args.spans), seed=args.seed)
    display.close()
    for path, counts in zip(ds.csv_paths, ds.class_counts):
      print(f'wrote {path}: ' + ', '.join(f'{c} {n}' for c, n in counts.items()))
    print(f'class mapping: {ds.class_mapping_path}')
    print(f"next: cxr-tfx run --csv '{ds.csv_pattern}' --group-column "
          f'{demo_data.PATIENT_COLUMN} --mask-size 256x256 --span 1')
    return 0
  n = sum(demo_data.class_counts_for_scale(args.scale).values())
  display.line(f'cxr-tfx demo-data: {n:,} images (scale {args.scale}) into {args.out}, '
               f'{args.workers} process(es)')
  ds = _generate_demo(display, args.out, args.scale, args.missing_masks, args.seed,
                      args.workers)
  display.close()
  print(f'wrote {ds.num_rows} images ({ds.num_missing_masks} without masks): {ds.csv_path}')
  print(f'class mapping: {ds.class_mapping_path}')
  return 0


def _is_uri(path: str) -> bool:
  return '://' in path  # files.is_uri's rule (files imports numpy: not before the first line)


def _count_rows(csv_path: str) -> Optional[int]:
  """Data rows of a local CSV (quoted newlines understood), with the csv module only: for the
  first line, before anything heavy loads. None for a URI or an unreadable file."""
  if _is_uri(csv_path):
    return None
  try:
    with open(csv_path, newline='', encoding='utf-8-sig', errors='replace') as f:
      return max(0, sum(1 for _ in csv.reader(f)) - 1)
  except (OSError, csv.Error):
    return None


def _csv_rows(csv_path: str) -> str:
  """'21,165 rows of PATH' for the first line, or just the path for a URI; a local CSV that
  does not exist fails now, as the run's would, in a second."""
  if not _is_uri(csv_path) and not os.path.isfile(csv_path):
    from components.image_example_gen import index  # pylint: disable=g-import-not-at-top
    index.read_csv_text(csv_path)  # raises the run's IndexValidationError (no TensorFlow)
  rows = _count_rows(csv_path)
  return f'{rows:,} rows of {csv_path}' if rows is not None else csv_path


def _check_span_arg(csv_arg: str, span: Optional[int]) -> None:
  """--span only with a span pattern in --csv (not with a plain CSV, --image-dir or demo data)."""
  if span is not None and not spans_lib.has_span_spec(csv_arg or ''):
    raise config_lib.ConfigError(f'--span {span} needs a span pattern in --csv, e.g. '
                                 'data/index-{SPAN}.csv.')


def _resolve_span(csv_arg: str, span: Optional[int]) -> Tuple[str, str, int]:
  """(the CSV a span pattern stands for, ' (span N of PATTERN)', N), by TFX's rules without
  TensorFlow (spans.py; TFX's own driver decides in the run); (csv_arg, '', 0) without a
  pattern."""
  _check_span_arg(csv_arg, span)
  if not spans_lib.has_any_spec(csv_arg):
    return csv_arg, '', 0
  resolved = spans_lib.resolve(csv_arg, span)
  version = f', version {resolved.version}' if resolved.version is not None else ''
  return resolved.path, f' (span {resolved.span}{version} of {csv_arg})', resolved.span


def _default_mapping_path(csv_arg: str) -> str:
  """class_mapping.json next to the CSV; for a span pattern, in the folder above its first
  spec (one mapping for every span)."""
  folder = (spans_lib.split_pattern(csv_arg)[0] if spans_lib.has_any_spec(csv_arg)
            else os.path.dirname(csv_arg))
  return os.path.join(folder, configs.CLASS_MAPPING_FILE)


def _validate(args, display: progress.Display) -> int:
  if bool(args.csv) == bool(args.image_dir):
    raise config_lib.ConfigError('validate needs --csv (the CSV index to check) or --image-dir '
                                 '(the image folder to check), one of them.')
  _check_split_args(args)
  from pipeline import validate as validate_lib  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import index  # pylint: disable=g-import-not-at-top
  span = 0
  if args.image_dir:
    _check_span_arg('', args.span)
    validate_lib.require_local(args.image_dir, 'image folder', '--image-dir')
    if not os.path.isdir(args.image_dir):
      raise config_lib.ConfigError(f'{args.image_dir}: the image folder does not exist or is '
                                   'not a folder (option --image-dir).')
    source = index.Source(image_dir=args.image_dir)
    mapping = args.class_mapping  # '': the sorted class folder names
    config = _ingest_config(args, mapping)
    read = validate_lib.read_source(source, config)  # names only: refuses a mapping mismatch
    what = f'{read.checked.rows_in:,} images of {args.image_dir}'
    mapping_text = f'class mapping {mapping}' if mapping else 'no class mapping'
  else:
    validate_lib.require_local(args.csv)
    csv_path, span_text, span = _resolve_span(args.csv, args.span)
    what = _csv_rows(csv_path) + span_text
    source = index.Source(csv_path=csv_path)
    mapping = args.class_mapping or _default_mapping_path(args.csv)
    mapping_text = f'class mapping {mapping}'
    config = _ingest_config(args, mapping)
    read = None
  if config.split_manifest:
    validate_lib.require_local(config.split_manifest, 'split manifest', '--split-manifest')
  display.line(f'cxr-tfx validate: {what}, {mapping_text}: every image and mask '
               f'(verify {config.verify}, mask check {config.mask_check}) on {args.workers} '
               'process(es); nothing is written')
  if read is not None and read.folder is not None:
    line = _classes_line(args.image_dir, mapping, read.folder)
    if line:
      display.line(escape_control(line))
  prior = _split_lines(display, config)
  with display.activity('[validate] checking files'):
    result = validate_lib.validate(source, config, args.workers,
                                   lambda done, total: display.report(done, total, 'rows'),
                                   prior=prior, span=span, read=read)
  display.close()
  print(validate_lib.format_report(result))
  if result.would_fail:
    raise validate_lib.ValidationFailed(
        '`cxr-tfx run` with these options would stop at ImageExampleGen: '
        + '; '.join(result.fail_reasons) + '.')
  print(f'\nOK: `cxr-tfx run` with these options would write {result.examples_to_write:,} '
        f'examples ({len(result.bad_rows) + len(result.dropped)} rows quarantined).')
  return 0


def _check_split_args(args) -> None:
  """--split-manifest and --fresh-splits contradict each other: refused before any work."""
  if args.split_manifest and args.fresh_splits:
    raise config_lib.ConfigError(
        'give --split-manifest (keep the split membership it publishes) or --fresh-splits '
        '(ignore published membership and deal every image afresh), not both.')


def _split_lines(display: progress.Display, config: config_lib.IngestConfig):
  """The first lines' word on split membership: kept from --split-manifest (how many images,
  read with assignment.load_manifest: plain JSON, no TensorFlow; a URI is read by the run
  itself), or --fresh-splits. -> the local manifest read, else None."""
  if config.fresh_splits:
    display.line('splits: --fresh-splits: published split membership is ignored and every '
                 'image is dealt afresh')
  elif config.split_manifest and _is_uri(config.split_manifest):
    display.line(f'splits: membership kept from {config.split_manifest} (read when '
                 'ImageExampleGen runs)')
  elif config.split_manifest:
    from components.image_example_gen import assignment  # pylint: disable=g-import-not-at-top
    manifest = assignment.load_manifest(config.split_manifest)  # AssignmentError names it
    display.line(f'splits: membership of {len(manifest.images):,} images kept from '
                 f'{config.split_manifest} (seed {manifest.seed})')
    return manifest
  return None


def _read_folder(image_dir: str, config: config_lib.IngestConfig):
  """index.read_folder_index, as ImageExampleGen's launcher reads the folder: a mapping that
  misses a class folder is refused here (SourceError naming both sides)."""
  from components.image_example_gen import index  # pylint: disable=g-import-not-at-top
  return index.read_folder_index(image_dir, config.class_mapping, config.allowed_roots,
                                 config.group_column)


def _classes_line(image_dir: str, mapping_path: str, folder) -> str:
  """Which label each class folder got, when no mapping fixes them; the mapping's classes
  without a folder, when one does ('' if there is nothing to say)."""
  if not mapping_path:
    labels = ', '.join(f'{name}={label}' for name, label in
                       sorted(folder.class_mapping.items(), key=lambda kv: kv[1]))
    return (f'classes: no --class-mapping, so labels follow the sorted class folders: {labels} '
            '(pass --class-mapping to fix them)')
  if folder.classes_without_folder:
    missing = ', '.join(f'{name}={folder.class_mapping[name]}'
                        for name in folder.classes_without_folder)
    return (f'classes: the class mapping {mapping_path} names '
            f'{len(folder.classes_without_folder)} class(es) with no folder in {image_dir}: '
            f'{missing}; their labels stay reserved, and no examples of them are written')
  return ''


def _folder_classes(display: progress.Display, image_dir: str, mapping_path: str, folder,
                    config: config_lib.IngestConfig) -> config_lib.IngestConfig:
  """Says the folder's labels (``_classes_line``) -> the config with the mapping used."""
  line = _classes_line(image_dir, mapping_path, folder)
  if line:
    display.line(escape_control(line))
  return dataclasses.replace(config, class_mapping=folder.class_mapping)


def _run(args, display: progress.Display) -> int:
  config_lib.parse_splits(args.splits)  # fail fast, before demo data or heavy imports
  balance_config, transform_config = _balance_config(args), _transform_config(args)
  progress.quiet_native_logs()
  root = args.pipeline_root
  metadata = args.metadata or os.path.join(root, configs.METADATA_FILE)
  components = ' → '.join(COMPONENTS + (configs.TRAIN_COMPONENT_IDS if args.train else ()))
  csv_path, image_dir = args.csv, args.image_dir
  _check_span_arg(csv_path, args.span)  # before demo data or heavy imports
  _check_split_args(args)
  if csv_path and image_dir:
    raise config_lib.ConfigError('give --csv or --image-dir, not both.')
  folder = None  # a local image folder's index, read now (names only, no TensorFlow)
  if image_dir:
    if not _is_uri(image_dir) and not os.path.isdir(image_dir):  # fail before TensorFlow loads
      raise config_lib.ConfigError(f'{image_dir}: the image folder does not exist or is not a '
                                   'folder (option --image-dir).')
    mapping_path = args.class_mapping  # '': the sorted class folder names
    ingest_config = _ingest_config(args, mapping_path)
    if not _is_uri(image_dir):  # a gs:// folder is listed once TensorFlow has loaded
      folder = _read_folder(image_dir, ingest_config)
    rows = folder.checked.rows_in if folder else None
    what = f'{rows:,} images of ' if folder else ''
    display.line(f'cxr-tfx run: {components} on {what}the image folder {image_dir}; outputs in '
                 f'{root}/, ML Metadata {metadata}')
    if folder:
      ingest_config = _folder_classes(display, image_dir, mapping_path, folder, ingest_config)
    elif not mapping_path:
      display.line('classes: no --class-mapping, so labels follow the sorted class folders, '
                   f'listed once {HEAVY_LIBRARIES} have loaded (pass --class-mapping to fix '
                   'them)')
  elif not csv_path:
    from pipeline import demo_data  # pylint: disable=g-import-not-at-top
    out = os.path.join(root, configs.DEMO_DATA_DIR)
    n = sum(demo_data.class_counts_for_scale(args.demo_scale).values())
    display.line(f'cxr-tfx run: no --csv, so first {n:,} demo images into {out}, then '
                 f'{components}; outputs in {root}/, ML Metadata {metadata}')
    ds = _generate_demo(display, out, args.demo_scale, configs.DEMO_MISSING_MASKS, args.seed,
                        _cores())
    display.line(f'demo data: {ds.num_rows} images ({ds.num_missing_masks} without masks): '
                 f'{ds.csv_path}')
    csv_path, rows = ds.csv_path, ds.num_rows
    if not args.mask_size:  # the demo has the real database's layout: 299x299 images, 256x256 masks
      args.mask_size = f'{demo_data.MASK_SIZE}x{demo_data.MASK_SIZE}'
  else:
    span_csv, span_text, _ = _resolve_span(csv_path, args.span)
    what = _csv_rows(span_csv) + span_text
    display.line(f'cxr-tfx run: {components} on {what}; outputs in {root}/, '
                 f'ML Metadata {metadata}')
    rows = _count_rows(span_csv)
  if not image_dir:
    mapping_path = args.class_mapping or _default_mapping_path(csv_path)
    ingest_config = _ingest_config(args, mapping_path)
  _split_lines(display, ingest_config)
  # The schema must not state other classes than the mapping: refuse now, before the imports.
  from components.schema_gen import precheck  # pylint: disable=g-import-not-at-top
  if ingest_config.class_mapping:  # (a gs:// folder without a mapping: checked below)
    precheck.check(os.path.abspath(args.schema), ingest_config.class_mapping,
                   os.path.abspath(mapping_path) if mapping_path else '')
  _load_libraries(display, 'pipeline.local_runner', 'pipeline.reports')
  if image_dir and _is_uri(image_dir):  # listed with tf.io.gfile, as ImageExampleGen will
    ingest_config = _folder_classes(display, image_dir, mapping_path,
                                    _read_folder(image_dir, ingest_config), ingest_config)
    if not mapping_path:
      precheck.check(os.path.abspath(args.schema), ingest_config.class_mapping, '')
  from components.image_example_gen import spec  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  from pipeline import reports  # pylint: disable=g-import-not-at-top

  expected = {}
  if not args.no_cache and os.path.exists(metadata):  # rough ETAs from the last complete runs
    expected = mlmd.expected_seconds(mlmd.sqlite_store(metadata), args.pipeline_name, rows,
                                     spec.ROWS_IN_PROPERTY)
  polls = {}
  if not _is_uri(root):
    examples_dir = os.path.join(os.path.abspath(root), configs.IMAGE_EXAMPLE_GEN,
                                spec.EXAMPLES_KEY)
    polls[configs.IMAGE_EXAMPLE_GEN] = lambda: progress.StagingProgress(examples_dir,
                                                                         time.time())
  with progress.session(display, polls, expected):
    display.start('[LocalDagRunner] preparing the pipeline')  # until the first component
    result = local_runner.run_local(
        pipeline_root=root, csv_path=csv_path, image_dir=image_dir, ingest_config=ingest_config,
        metadata_path=args.metadata, beam_pipeline_args=args.beam_arg,
        component_beam_args=_component_beam_args(args.beam_arg_for, args.train),
        pipeline_name=args.pipeline_name,
        balance_config=balance_config, transform_config=transform_config,
        schema_path=os.path.abspath(args.schema),
        enable_cache=not args.no_cache, fingerprint_content=args.fingerprint_content,
        class_mapping_path=os.path.abspath(mapping_path) if mapping_path else '',
        train=args.train, train_steps=args.train_steps, min_accuracy=args.min_accuracy,
        serving_model_dir=args.serving_dir, span=args.span, train_spans=args.train_spans,
        verbose=args.verbose)
    display.finish()
  display.close()
  store = mlmd.sqlite_store(result.metadata_path)
  run = mlmd.run_by_name(store, result.run_id)
  times = mlmd.component_times(store, run, args.pipeline_name)
  validator = reports.validator_result(result.metadata_path, result.run_id, args.pipeline_name)
  _print_summary(result, validator, times)
  return 0


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
    per_class = ', '.join(f'{escape_control(name)} {acc:.3f}'
                          for name, acc in sorted(t.accuracy_per_class.items()))
    print(f'\nmodel: {t.model_uri}   (TensorBoard logs: {t.model_run_uri})')
    print(f'class weights: {t.class_weights or "none (unweighted)"}')
    print(f'accuracy: {t.accuracy:.3f} (blessing threshold {t.min_accuracy}); per class: '
          f'{per_class}')
    print(f'pushed: {t.pushed_model_dir}' if t.pushed else
          'not blessed: nothing pushed')
  print('\ncomponent times (ML Metadata: registration to publication):')
  width = max((len(name) for name, _, _ in times), default=0)
  for name, state, seconds in times:
    print(f'  {name.ljust(width)}  {seconds:7.1f} s'
          + ('' if state == 'COMPLETE' else f'  ({state.lower()})'))
  print(f'total time: {progress.seconds_text(time.monotonic() - _STARTED)}')


def _cluster_path(path: str, option: str) -> None:
  """A path the cluster's tasks read: a URI or an absolute path (a relative one would resolve
  against the task's working folder, not this one)."""
  if not _is_uri(path) and not os.path.isabs(path):
    raise config_lib.ConfigError(
        f'{option} {path!r}: give it as the cluster\'s tasks see it, a URI (gs://bucket/...) or '
        'an absolute path.')


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
  return f'{text}; {published}'


def _compile(args, display: progress.Display) -> int:
  if bool(args.csv) == bool(args.image_dir) or not args.class_mapping:
    raise config_lib.ConfigError('compile needs --csv (a URI the cluster reads) or --image-dir '
                                 '(an image folder the cluster reads), one of them, and '
                                 '--class-mapping (a local JSON file).')
  if args.image_dir:
    _cluster_path(args.image_dir, '--image-dir')
    if not args.no_runtime_parameters:
      raise config_lib.ConfigError(
          '--image-dir needs --no-runtime-parameters: the pipeline parameters (csv_uri, '
          'class_mapping, seed, splits, split_manifest) stand for a CSV index, so an image '
          'folder is compiled in as a constant.')
  _check_split_args(args)
  if args.split_manifest:
    _cluster_path(args.split_manifest, '--split-manifest')
  if args.fail_on_drift:
    raise config_lib.ConfigError(
        '--fail-on-drift needs the previous span, which a compiled KFP pipeline cannot resolve '
        '(the KFP v2 compiler supports no custom resolver); check drift with `cxr-tfx run` '
        '(docs/spans.md).')
  ingest_config = _ingest_config(args, args.class_mapping)
  if not args.output.endswith(('.yaml', '.yml', '.json')):
    raise config_lib.ConfigError(f'--output {args.output!r} must end in .yaml (KFP pipeline '
                                 'spec) or .json (Vertex PipelineJob).')
  kind = 'a Vertex PipelineJob' if args.output.endswith('.json') else 'a KFP pipeline spec'
  display.line(f'cxr-tfx compile: {kind} into {args.output} for image {args.image}, pipeline '
               f'{args.pipeline_name!r}, artifacts under {args.pipeline_root}')
  warnings.simplefilter('ignore')
  _load_libraries(display, 'pipeline.kubeflow_runner', 'pipeline.pipeline')
  from pipeline import kubeflow_runner  # pylint: disable=g-import-not-at-top
  with progress.component_progress(), display.activity(
      'compiling with KubeflowV2DagRunner', done_text='compiled in {seconds}'):
    path = kubeflow_runner.compile_pipeline(
        output=args.output, image=args.image, pipeline_root=args.pipeline_root,
        csv_path=args.csv or None, image_dir=args.image_dir or None,
        ingest_config=ingest_config, schema_path=args.schema,
        balance_config=_balance_config(args), transform_config=_transform_config(args),
        beam_pipeline_args=args.beam_arg,
        component_beam_args=_component_beam_args(args.beam_arg_for, args.train),
        pipeline_name=args.pipeline_name,
        component_resources=_resources(args.resources), embeddable=args.embeddable,
        runtime_parameters=not args.no_runtime_parameters,
        train=args.train, train_steps=args.train_steps, min_accuracy=args.min_accuracy,
        serving_model_dir=args.serving_dir, span=args.span)
  display.close()
  print(f'compiled: {path}')
  params = not args.no_runtime_parameters
  if path.endswith('.json'):
    print('next: submit it to Vertex AI, e.g. google.cloud.aiplatform.PipelineJob('
          f'display_name={args.pipeline_name!r}, template_path={path!r}'
          + (', parameter_values={"csv_uri": "gs://..."}' if params else '') + ').submit()')
  else:
    print(f'next: kfp.Client(host=...).create_run_from_pipeline_package({path!r}'
          + (', arguments={"csv_uri": "gs://...", "seed": 0}' if params else '')
          + ') -- or upload it in the KFP UI')
  return 0


def _resources(pairs: Sequence[str]) -> Dict[str, Tuple[str, str]]:
  """['Transform=4,16G', ...] -> {'Transform': ('4', '16G')} (validated by the compiler)."""
  out = {}
  for pair in pairs:
    component, sep, value = pair.partition('=')
    cpu, comma, memory = value.partition(',')
    if not sep or not comma:
      raise configs.PipelineConfigError(
          f'--resources {pair!r}: expected COMPONENT=CPU,MEM, e.g. Transform=4,16G.')
    try:
      out[component] = (float(cpu), memory)
    except ValueError as e:
      raise configs.PipelineConfigError(f'--resources {pair!r}: CPU must be a number.') from e
  return out


def _load_mapping(path: str):
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except OSError as e:
    raise config_lib.ConfigError(f'cannot read the class mapping {path}: {e.strerror} '
                                 '(option --class-mapping).') from e
  return config_lib.load_class_mapping_text(text, path)


def main(argv: Optional[List[str]] = None) -> int:
  """The command line; ``argv`` None means the process's own arguments (the console script),
  and then a command that loaded TensorFlow ends the process itself (``_fast_exit``)."""
  code = _main(argv)
  if argv is None and 'tensorflow' in sys.modules:
    _fast_exit(code)
  return code


def _store_path(args) -> str:
  """The ML Metadata store the command writes or reads, for I/O error messages ('' if none)."""
  metadata = getattr(args, 'metadata', '')
  root = getattr(args, 'pipeline_root', '')
  if metadata or (root and args.command in ('run', 'report') and not _is_uri(root)):
    return metadata or os.path.join(root, configs.METADATA_FILE)
  return ''


def _fast_exit(code: int) -> None:
  """Ends the process once the output is complete: runs the atexit handlers (logging, temp
  folders, multiprocessing) and flushes, then skips the interpreter's teardown of TensorFlow,
  TFX and Beam -- 5 s after the last line on this machine, measured, with nothing to show."""
  import atexit  # pylint: disable=g-import-not-at-top
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(code)  # pylint: disable=protected-access


def _main(argv: Optional[List[str]]) -> int:
  sys.excepthook = _report_bugs
  args = build_parser().parse_args(argv)
  if not getattr(args, 'verbose', False):  # import-time FutureWarnings of google-cloud & co.
    warnings.simplefilter('ignore')
  handler = {'demo-data': _demo_data, 'validate': _validate, 'run': _run, 'compile': _compile,
             'report': _report, 'lineage': _lineage}[args.command]
  display = progress.Display(quiet=getattr(args, 'quiet', False))
  try:
    try:
      code = handler(args, display)
    finally:
      display.close()  # the live line is gone before any result or error is printed
    sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
    return code
  except BrokenPipeError:  # e.g. `cxr-tfx lineage ... | head`: the reader left; exit quietly
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
  except CxrError as e:  # bad input or options, a failed check: the message says what to do
    if getattr(args, 'verbose', False):
      raise
    print(f'cxr-tfx {args.command}: error: {escape_control(e)}', file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    io_error = io_error_message(e, _store_path(args))
    if io_error is None or getattr(args, 'verbose', False):
      raise  # a bug: Python prints the traceback; the hook below asks for a report
    print(f'cxr-tfx {args.command}: error: {escape_control(io_error)}', file=sys.stderr)
    return 2


def _report_bugs(exc_type, exc, tb):
  """Unexpected errors are bugs: the traceback, then where to report it."""
  sys.__excepthook__(exc_type, exc, tb)
  if not issubclass(exc_type, (KeyboardInterrupt, BrokenPipeError)):
    print('cxr-tfx: this is a bug in cxr-tfx or a library it uses; please report it with the '
          'traceback above and the command you ran.', file=sys.stderr)


if __name__ == '__main__':
  sys.exit(main())
