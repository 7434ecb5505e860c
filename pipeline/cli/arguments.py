"""The option groups several commands share (added to a subparser by build_parser)."""
import argparse

from components.class_balance import config as balance_config_lib
from components.image_example_gen import config as config_lib
from pipeline import configs
from pipeline.cli.options import (_component_beam_arg, _non_negative_int, _pipeline_name,
                                  _positive_int)


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
