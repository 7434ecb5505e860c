"""The ``cxr-tfx`` parser: every command and option (docs/cli.md is generated from it)."""
import argparse
import os
from typing import Sequence

from components.image_example_gen import config as config_lib
from pipeline import configs
from pipeline.cli.arguments import _add_balance_args
from pipeline.cli.arguments import _add_image_dir_arg
from pipeline.cli.arguments import _add_ingest_args
from pipeline.cli.arguments import _add_pipeline_args
from pipeline.cli.arguments import _add_pipeline_name_arg
from pipeline.cli.arguments import _add_quiet_arg
from pipeline.cli.arguments import _add_train_args
from pipeline.cli.arguments import _add_transform_args
from pipeline.cli.options import _positive_int
from pipeline.cli.predict import add_predict_parser

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


# --metadata of run, report and lineage (pipeline/metadata_store.py).
_METADATA_HELP = ('the ML Metadata store: a SQLite file, or a MySQL/MariaDB server shared by a '
                  'team, mysql://USER@HOST:PORT/DB (?socket=PATH for a local socket), its '
                  'password in $CXR_MLMD_PASSWORD or in the file named by '
                  '$CXR_MLMD_PASSWORD_FILE, never on the command line')


def _command(sub, name: str, help: str, description: str,  # noqa: A002
             examples: Sequence[str] = ()) -> argparse.ArgumentParser:
  """A subcommand; its epilog lists its examples, one command per line (continuations with
  \\), which the --help test runs."""
  epilog = 'examples:\n' + '\n'.join(f'  {line}' for line in examples) if examples else None
  return sub.add_parser(name, help=help, description=description, epilog=epilog,
                        formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='cxr-tfx', description=_DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', metavar='COMMAND')
  sub.required = True
  for add in (_add_demo_data, _add_validate, _add_run, _add_compile, _add_report, _add_lineage,
              add_predict_parser):
    add(sub)
  return parser


def _add_demo_data(sub) -> None:
  """`cxr-tfx demo-data`."""
  demo = _command(
      sub, 'demo-data', help='write a synthetic dataset in the Kaggle layout',
      description='Writes <out>/COVID-19_Radiography_Dataset/<Class>/{images,masks}/*.png '
                  '(299x299 radiograph-like images, 256x256 0/255 masks),\n'
                  'all_image_mask_pairs.csv (relative paths) and class_mapping.json. '
                  'Deterministic from --seed.',
      examples=(
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


def _add_validate(sub) -> None:
  """`cxr-tfx validate`."""
  validate = _command(
      sub, 'validate', help='check a CSV or an image folder, its class mapping and every file, '
                       'without TensorFlow',
      description='Runs every check of ImageExampleGen -- the CSV and the class mapping, then '
                  'every image and mask\n(existence, allowed roots, headers, pixel bounds, '
                  'the mask check), duplicate images and the group\ncolumn -- with the '
                  'pipeline\'s own code and messages, but without TensorFlow, TFX or Beam, on '
                  'a\nprocess per core. Prints the class table, the planned split/shard counts '
                  'and every problem;\nexits 2 when `cxr-tfx run` with the same options would '
                  'stop at ImageExampleGen. Nothing is written.',
      examples=(
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
                                'to the CSV, or with --image-dir the sorted class folder names',
                   exclude=('fingerprint_content',))
  _add_image_dir_arg(validate, 'a local image folder')
  validate.set_defaults(verify=config_lib.VERIFY_HEADER)
  validate.add_argument('--workers', type=_positive_int, default=_cores(), metavar='N',
                        help='processes checking files (default %(default)s: the cores '
                             'available)')
  _add_quiet_arg(validate)


def _add_pipeline_build_args(p: argparse.ArgumentParser) -> None:
  """What `run` and `compile` both build the pipeline from, after ImageExampleGen's options:
  ClassBalance's thresholds, the pipeline name and Beam arguments, Transform's and training's."""
  for add in (_add_balance_args, _add_pipeline_args, _add_transform_args, _add_train_args):
    add(p)


def _add_run(sub) -> None:
  """`cxr-tfx run`."""
  run = _command(
      sub, 'run', help='run the pipeline with LocalDagRunner',
      description='Runs the pipeline with TFX LocalDagRunner and an ML Metadata store (SQLite, '
                  'or a shared MySQL/MariaDB\nserver). It says at once what will run on how '
                  'many rows and where outputs go, shows a spinner\nwhile TensorFlow/TFX load, '
                  'a progress bar with ETA for ImageExampleGen (rows done, from its\nstaging '
                  'folder) and the elapsed time of the other components, and ends with a '
                  'per-split,\nper-shard class-count table, ExampleValidator\'s and '
                  'ClassBalance\'s verdicts, the Transform graph\'s\nURI, per-component times '
                  'from ML Metadata and the total time. '
                  f'Without --csv it first generates demo data under <pipeline-root>/'
                  f'{configs.DEMO_DATA_DIR}.',
      examples=(
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
  _add_pipeline_build_args(run)
  run.add_argument('--schema', default=configs.SCHEMA_FILE,
                   help='curated schema.pbtxt (default: schemas/schema.pbtxt of this project)')
  run.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                   help='where artifacts go (default %(default)s)')
  run.add_argument('--train-spans', type=_positive_int, default=1, metavar='N',
                   help='with a span pattern: Transform (and with --train the Trainer) read '
                        'this span and the N-1 spans before it, found in ML Metadata; the '
                        'Evaluator evaluates on this span (default %(default)s)')
  run.add_argument('--metadata', default='', metavar='FILE|mysql://USER@HOST:PORT/DB',
                   help=f'{_METADATA_HELP} (default <pipeline-root>/{configs.METADATA_FILE})')
  run.add_argument('--no-cache', action='store_true', help='recompute every component')
  run.add_argument('--wait', action='store_true',
                   help='if another run holds the pipeline root (or the ML Metadata store), '
                        'wait for it to finish instead of refusing (a run holds the lock, '
                        '.cxr-tfx.lock in the root and in the store\'s folder, from before its '
                        'demo data to its summary)')
  run.add_argument('--demo-scale', type=float, default=configs.DEMO_SCALE,
                   help='demo data scale when --csv is not given (default %(default)s)')
  run.add_argument('--verbose', action='store_true',
                   help='show TensorFlow/Beam/TFX logs (hidden otherwise, errors included: '
                        'an error is reported once, as cxr-tfx\'s message)')
  _add_quiet_arg(run)


def _add_compile(sub) -> None:
  """`cxr-tfx compile`."""
  compile_ = _command(
      sub, 'compile', help='compile the pipeline for Kubeflow Pipelines v2',
      description='Compiles the same create_pipeline(...) with KubeflowV2DagRunner: an --output '
                  'ending in .yaml gets the\npipeline-spec IR for open-source KFP (it can also '
                  'be loaded as a step of your own KFP pipeline with\n'
                  'kfp.components.load_component_from_file); .json gets a Vertex PipelineJob. '
                  'The components run\nfrom --image (`make image` builds it; see the '
                  'Dockerfile). Paths the tasks read must be URIs the cluster\ncan read (gs://, '
                  's3://, ...): local paths are refused unless --allow-local-paths. Drift and '
                  'the\ntraining window take the earlier spans\' Examples by URI '
                  '(--previous-examples, --window-examples).\nPrints the file written and the '
                  'command that submits it (docs/kubeflow.md).',
      examples=(
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
          'gs://bucket/root',
          "cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output weekly.json --csv "
          "'gs://bucket/index-{SPAN}.csv' \\",
          '    --class-mapping data/class_mapping.json --pipeline-root gs://bucket/root '
          '--fail-on-drift \\',
          '    --previous-examples gs://bucket/root/RUN/ImageExampleGen/examples \\',
          '    --window-examples gs://bucket/root/RUN/ImageExampleGen/examples'))
  _add_ingest_args(compile_, csv_help='CSV index as the cluster sees it, e.g. gs://bucket/x.csv',
                   mapping_help='local JSON {"class name": label}, read now and compiled in',
                   exclude=('fingerprint_content',))
  _add_image_dir_arg(compile_, 'an image folder as the cluster sees it (a URI such as '
                               'gs://bucket/xrays, or an absolute path), with '
                               '--no-runtime-parameters')
  _add_pipeline_build_args(compile_)
  compile_.add_argument('--previous-examples', default='', metavar='URI',
                        help='the previous span\'s Examples (an ImageExampleGen output folder, '
                             'e.g. last week\'s run\'s): imported as ClassBalance\'s drift '
                             'baseline, so --fail-on-drift works; with a span pattern in --csv. '
                             'A pipeline parameter, previous_examples (docs/kubeflow.md)')
  compile_.add_argument('--window-examples', action='append', default=[], metavar='URI',
                        help='an earlier span\'s Examples for the training window, repeatable, '
                             'oldest first: Transform (and with --train the Trainer) read them '
                             'and this span\'s; pipeline parameters window_examples_1, ...')
  compile_.add_argument('--allow-local-paths', action='store_true',
                        help='accept local absolute paths for --csv, --image-dir, '
                             '--split-manifest, --pipeline-root, --serving-dir and the Examples '
                             'URIs, for a cluster whose nodes mount them at the same paths')
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
                             'parameters (csv_uri, or span_folder for a span pattern, '
                             'class_mapping, seed, splits, split_manifest) defaulting to the '
                             'given values. Needed with --image-dir')
  compile_.add_argument('--schema', default=configs.IMAGE_SCHEMA_FILE,
                        help='the schema.pbtxt path inside --image (default %(default)s)')
  compile_.add_argument('--image', default=configs.DEFAULT_IMAGE,
                        help='container image with cxr-tfx installed (default %(default)s: the '
                             'tag `make image` builds; push it and give its registry name)')
  compile_.add_argument('--output', required=True, help='FILE.yaml (KFP) or FILE.json (Vertex)')
  compile_.add_argument('--pipeline-root', required=True, help='artifact root, e.g. gs://b/root')
  _add_quiet_arg(compile_)


def _add_report(sub) -> None:
  """`cxr-tfx report`."""
  report = _command(
      sub, 'report', help='rebuild the class-balance reports of the newest run from ML Metadata',
      description='Finds ClassBalance\'s execution in the newest run of --pipeline-name in the '
                  'metadata store, the statistics,\nexamples and schema it was computed from '
                  'and its thresholds, and writes balance_report.json,\n'
                  'balance_report.html and Split-<name>/SchemaDiff.pb (TFDV Anomalies) again '
                  'under --out.\nThreshold options override the recorded ones when given.',
      examples=(
          'cxr-tfx report --pipeline-root out/',
          'cxr-tfx report --pipeline-root out/ --out strict-report/ --max-linf 0.01'))
  report.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                      help='the run\'s pipeline root (default %(default)s)')
  report.add_argument('--metadata', default='', metavar='FILE|mysql://USER@HOST:PORT/DB',
                      help=f'{_METADATA_HELP} (default <pipeline-root>/{configs.METADATA_FILE})')
  report.add_argument('--out', default='',
                      help=f'output folder (default <pipeline-root>/{configs.REPORTS_DIR})')
  report.add_argument('--max-linf', type=float, help='override the recorded threshold')
  report.add_argument('--max-js', type=float, help='override the recorded threshold')
  report.add_argument('--min-count-per-class', type=int, help='override the recorded minimum')
  _add_pipeline_name_arg(report, 'the pipeline whose newest run to report on')
  _add_quiet_arg(report)


def _add_lineage(sub) -> None:
  """`cxr-tfx lineage`."""
  lineage = _command(
      sub, 'lineage', help='trace an artifact in ML Metadata back to its inputs and on to consumers',
      description='Prints the chain from an artifact back to the ingestion inputs (CSV folder '
                  'and pattern, input\nfingerprint including the referenced images, class '
                  'mapping, seed, split config) and forward to the\ncomponents that consumed it. '
                  'Each producer and consumer is shown once; the cached executions that\n'
                  'reused its outputs are listed on one "reused by" line.',
      examples=(
          'cxr-tfx lineage --metadata out/metadata.sqlite --latest examples',
          'cxr-tfx lineage --metadata out/metadata.sqlite --latest ClassBalance --json',
          'cxr-tfx lineage --metadata out/metadata.sqlite --artifact-uri '
          'out/ImageExampleGen/examples/2   # <execution id>: 2 in a fresh root'))
  lineage.add_argument('--metadata', required=True, metavar='FILE|mysql://USER@HOST:PORT/DB',
                       help=_METADATA_HELP)
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



def _cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
