"""The ``cxr-tfx`` command line. Start-up imports no TensorFlow: `--help` answers at once."""
import argparse
import dataclasses
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

from components.class_balance import config as balance_config_lib
from components.errors import CxrError, escape_control
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
  cxr-tfx report --pipeline-root out/    # rebuild the balance reports from ML Metadata
  cxr-tfx lineage --metadata out/metadata.sqlite --latest examples
  cxr-tfx compile --image REGISTRY/cxr-tfx:TAG --output cxr-tfx.yaml \\
      --csv gs://bucket/all_image_mask_pairs.csv --class-mapping class_mapping.json \\
      --pipeline-root gs://bucket/root
"""


def _add_ingest_args(p: argparse.ArgumentParser, csv_help: str, mapping_help: str) -> None:
  """Options that shape ImageExampleGen's output: shared by `run` and `compile`."""
  p.add_argument('--csv', help=csv_help)
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
                 help='CSV column (e.g. patient_id) whose rows must stay together: a group '
                      'never spans shards or splits; classes stay as close to proportional '
                      'as the groups allow, and the achieved deviation is reported')
  p.add_argument('--duplicates', choices=config_lib.DUPLICATES_CHOICES,
                 default=config_lib.DUPLICATES_REPORT,
                 help='rows whose image bytes are identical (sha256): report them (those in '
                      'different splits are leakage), fail before writing, or drop all but '
                      'the first by image_id into the quarantine report (default %(default)s)')
  p.add_argument('--verify', choices=config_lib.VERIFY_CHOICES, default=config_lib.VERIFY_FULL,
                 help='full decodes every image and mask before it is written, so corrupt pixel '
                      'data is a bad record; header checks format, size and file structure '
                      'only, faster (see README Benchmarks) (default %(default)s)')
  p.add_argument('--max-file-bytes', type=_positive_int, default=config_lib.DEFAULT_MAX_FILE_BYTES,
                 metavar='N',
                 help='images/masks larger than N bytes are bad records, refused before they '
                      'are read (default %(default)s = 128 MiB)')


def _add_pipeline_name_arg(p: argparse.ArgumentParser, what: str) -> None:
  p.add_argument('--pipeline-name', default=configs.PIPELINE_NAME, type=_pipeline_name,
                 help=f'{what}, [a-z0-9][a-z0-9-]{{0,127}} (default %(default)s)')


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
  """Pipeline name and Beam options: shared by `run` and `compile`."""
  _add_pipeline_name_arg(p, 'TFX/KFP pipeline name')
  p.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                 help='Beam pipeline option for every Beam component, repeatable, e.g. '
                      '--beam-arg=--runner=DataflowRunner '
                      '--beam-arg=--direct_running_mode=multi_processing (README: Scaling out)')
  p.add_argument('--beam-arg-for', action='append', default=[], type=_component_beam_arg,
                 metavar='COMPONENT=ARG',
                 help='Beam pipeline option for one component, repeatable, added after the '
                      '--beam-arg ones so it wins for the same flag, e.g. '
                      '--beam-arg-for ImageExampleGen=--direct_num_workers=2; COMPONENT is one '
                      f'of {", ".join(configs.BEAM_COMPONENT_IDS)} (README: Per-component Beam '
                      'arguments)')


def _component_beam_arg(text: str) -> Tuple[str, str]:
  """'ImageExampleGen=--direct_num_workers=2' -> ('ImageExampleGen', '--direct_num_workers=2')."""
  component_id, sep, arg = text.partition('=')
  if not sep or not arg:
    raise argparse.ArgumentTypeError(
        f'expected COMPONENT=ARG, e.g. ImageExampleGen=--direct_num_workers=2, got {text!r}; '
        f'COMPONENT is one of {", ".join(configs.BEAM_COMPONENT_IDS)}')
  if component_id not in configs.BEAM_COMPONENT_IDS:
    raise argparse.ArgumentTypeError(configs.unknown_beam_component_message(component_id))
  return component_id, arg


def _component_beam_args(pairs: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
  """[(component, arg), ...] in command-line order -> {component: [arg, ...]}."""
  result: Dict[str, List[str]] = {}
  for component_id, arg in pairs:
    result.setdefault(component_id, []).append(arg)
  return result


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
  return value


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
      fail_on_imbalance=args.fail_on_imbalance)


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
  demo.add_argument('--scale', type=float, default=1.0,
                    help='fraction of the real class counts 3616/10192/6012/1345 '
                         '(1.0 = 21,165 images; default %(default)s)')
  demo.add_argument('--missing-masks', type=float, default=0.0,
                    help='fraction of rows without a mask (mask_path empty; default %(default)s)')
  demo.add_argument('--seed', type=int, default=0, help='default %(default)s')

  run = sub.add_parser(
      'run', help='run the pipeline with LocalDagRunner',
      description='Runs the pipeline with TFX LocalDagRunner and a SQLite ML Metadata store, '
                  'prints one line per component and ends with a per-split, per-shard '
                  'class-count table, the class-balance verdict and the path of its HTML '
                  'report. Without --csv it first generates demo data under '
                  f'<pipeline-root>/{configs.DEMO_DATA_DIR}.')
  _add_ingest_args(run, csv_help='CSV index (image_path,mask_path,class); relative paths '
                                 'resolve against its folder; gs:// works',
                   mapping_help='JSON {"class name": label}; default: class_mapping.json next '
                                'to the CSV')
  _add_balance_args(run)
  _add_pipeline_args(run)
  _add_transform_args(run)
  run.add_argument('--schema', default=configs.SCHEMA_FILE,
                   help='curated schema.pbtxt (default: schemas/schema.pbtxt of this project)')
  run.add_argument('--pipeline-root', default=configs.DEFAULT_PIPELINE_ROOT,
                   help='where artifacts go (default %(default)s)')
  run.add_argument('--metadata', default='',
                   help=f'SQLite ML Metadata file (default <pipeline-root>/{configs.METADATA_FILE})')
  run.add_argument('--no-cache', action='store_true', help='recompute every component')
  run.add_argument('--fingerprint-content', action='store_true',
                   help='the cache notices changed images by path, size and mtime; this adds a '
                        'sha256 of every referenced file (reads them all before each run). '
                        '(On Kubeflow, `compile` turns caching off for ImageExampleGen instead.)')
  run.add_argument('--demo-scale', type=float, default=configs.DEMO_SCALE,
                   help='demo data scale when --csv is not given (default %(default)s)')
  run.add_argument('--verbose', action='store_true', help='show TensorFlow/Beam/TFX logs')

  compile_ = sub.add_parser(
      'compile', help='compile the pipeline for Kubeflow Pipelines v2',
      description='Compiles the same create_pipeline(...) with KubeflowV2DagRunner: an --output '
                  'ending in .yaml gets the pipeline-spec IR for open-source KFP (it can also be '
                  'loaded as a step of your own KFP pipeline with '
                  'kfp.components.load_component_from_file); .json gets a Vertex PipelineJob. '
                  'The components run from --image (see the Dockerfile); paths must be URIs '
                  'the cluster can read (gs://, s3://, ...).')
  _add_ingest_args(compile_, csv_help='CSV index as the cluster sees it, e.g. gs://bucket/x.csv',
                   mapping_help='local JSON {"class name": label}, read now and compiled in')
  _add_balance_args(compile_)
  _add_pipeline_args(compile_)
  _add_transform_args(compile_)
  compile_.add_argument('--resources', action='append', default=[], metavar='COMPONENT=CPU,MEM',
                        help='CPU and memory requested for one component\'s task, repeatable, '
                             'e.g. --resources Transform=4,16G (defaults: COMPONENT_RESOURCES '
                             'in pipeline/kubeflow_runner.py, sized from bench/results)')
  compile_.add_argument('--embeddable', action='store_true',
                        help='also declare Examples, Schema, statistics, anomalies and the '
                             'TransformGraph as pipeline outputs (system.* types), so a parent '
                             'KFP pipeline that loads the YAML can consume them')
  compile_.add_argument('--no-runtime-parameters', action='store_true',
                        help='compile --csv, --class-mapping, --seed and --splits in as '
                             'constants; by default they are pipeline parameters (csv_uri, '
                             'class_mapping, seed, splits) defaulting to the given values')
  compile_.add_argument('--schema', default=configs.IMAGE_SCHEMA_FILE,
                        help='the schema.pbtxt path inside --image (default %(default)s)')
  compile_.add_argument('--image', required=True, help='container image with cxr-tfx installed')
  compile_.add_argument('--output', required=True, help='FILE.yaml (KFP) or FILE.json (Vertex)')
  compile_.add_argument('--pipeline-root', required=True, help='artifact root, e.g. gs://b/root')
  report = sub.add_parser(
      'report', help='rebuild the class-balance reports of the newest run from ML Metadata',
      description='Finds ClassBalance\'s execution in the newest run of --pipeline-name in the '
                  'metadata store, the statistics, examples and schema it was computed from '
                  'and its thresholds, and writes '
                  'balance_report.json, balance_report.html and Split-<name>/SchemaDiff.pb '
                  '(TFDV Anomalies) again under --out. Threshold options override the recorded '
                  'ones when given.')
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

  lineage = sub.add_parser(
      'lineage', help='trace an artifact in ML Metadata back to its inputs and on to consumers',
      description='Prints the chain from an artifact back to the ingestion inputs (CSV folder '
                  'and pattern, input fingerprint including the referenced images, class '
                  'mapping, seed, split config) and forward to the components that consumed it. '
                  'A cached rerun shows as a CACHED execution producing the same artifact.')
  lineage.add_argument('--metadata', required=True, help='SQLite ML Metadata file')
  which = lineage.add_mutually_exclusive_group(required=True)
  which.add_argument('--artifact-uri', help='the artifact whose lineage to print (a local path '
                                            'may be relative)')
  which.add_argument('--latest', choices=sorted(configs.LINEAGE_TYPES),
                     help='the artifact of that kind from the newest run of --pipeline-name, '
                          'by its producer: examples (ImageExampleGen), statistics, schema, '
                          'anomalies (ExampleValidator), balance (ClassBalance), '
                          'transform_graph')
  _add_pipeline_name_arg(lineage, 'the pipeline whose newest run --latest reads')
  lineage.add_argument('--json', action='store_true', help='machine-readable output')
  return parser


def _lineage(args) -> int:
  from pipeline import lineage  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  if not os.path.exists(args.metadata):
    raise config_lib.ConfigError(f'no metadata store at {args.metadata} (option --metadata).')
  tracer = lineage.Lineage(mlmd.sqlite_store(args.metadata))
  chain = tracer.chain(tracer.resolve(args.artifact_uri or '', args.latest or '',
                                      args.pipeline_name))
  print(lineage.to_json(chain) if args.json else lineage.format_chain(chain))
  return 0


def _report(args) -> int:
  metadata = args.metadata or os.path.join(args.pipeline_root, configs.METADATA_FILE)
  if not os.path.exists(metadata):
    raise config_lib.ConfigError(f'no metadata store at {metadata} (option --pipeline-root or '
                                 '--metadata).')
  out = args.out or os.path.join(args.pipeline_root, configs.REPORTS_DIR)
  warnings.simplefilter('ignore')
  progress.quiet_native_logs()
  from pipeline import reports  # pylint: disable=g-import-not-at-top
  found = reports.latest_inputs(metadata, args.pipeline_name)
  overrides = {k: v for k, v in (('max_linf', args.max_linf), ('max_js', args.max_js),
                                 ('min_count_per_class', args.min_count_per_class))
               if v is not None}
  config = dataclasses.replace(found.config, **overrides)
  with progress.component_progress():
    result, paths = reports.rebuild(metadata, os.path.abspath(out), config, args.pipeline_name)
  print(f'class balance: {result.verdict}')
  for f in result.findings[:20]:
    print(f'  {f.kind}: {f.message}')
  print(f'HTML report: {paths["html"]}')
  print(f'JSON report: {paths["json"]}')
  return 0


def _ingest_config(args, mapping_path: str) -> config_lib.IngestConfig:
  return config_lib.IngestConfig(
      class_mapping=_load_mapping(mapping_path), splits=config_lib.parse_splits(args.splits),
      seed=args.seed, on_bad_record=args.on_bad_record, max_pixels=args.max_pixels,
      group_column=args.group_column, duplicates=args.duplicates, verify=args.verify,
      max_file_bytes=args.max_file_bytes,
      allowed_roots=tuple(a if '://' in a else os.path.abspath(a) for a in args.allowed_root))


def _demo_data(args) -> int:
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  ds = demo_data.generate(args.out, scale=args.scale, missing_masks=args.missing_masks,
                          seed=args.seed)
  print(f'wrote {ds.num_rows} images ({ds.num_missing_masks} without masks): {ds.csv_path}')
  print(f'class mapping: {ds.class_mapping_path}')
  return 0


def _run(args) -> int:
  config_lib.parse_splits(args.splits)  # fail fast, before demo data or heavy imports
  balance_config, transform_config = _balance_config(args), _transform_config(args)
  progress.quiet_native_logs()
  csv_path = args.csv
  if not csv_path:
    from pipeline import demo_data  # pylint: disable=g-import-not-at-top
    out = os.path.join(args.pipeline_root, configs.DEMO_DATA_DIR)
    ds = demo_data.generate(out, scale=args.demo_scale,
                            missing_masks=configs.DEMO_MISSING_MASKS, seed=args.seed)
    print(f'demo data: {ds.num_rows} images ({ds.num_missing_masks} without masks) in {out}')
    csv_path = ds.csv_path
  ingest_config = _ingest_config(args, args.class_mapping or os.path.join(
      os.path.dirname(csv_path), configs.CLASS_MAPPING_FILE))
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  result = local_runner.run_local(
      pipeline_root=args.pipeline_root, csv_path=csv_path, ingest_config=ingest_config,
      metadata_path=args.metadata, beam_pipeline_args=args.beam_arg,
      component_beam_args=_component_beam_args(args.beam_arg_for),
      pipeline_name=args.pipeline_name,
      balance_config=balance_config, transform_config=transform_config,
      schema_path=os.path.abspath(args.schema),
      enable_cache=not args.no_cache, fingerprint_content=args.fingerprint_content,
      verbose=args.verbose)
  s = result.summary
  print(f'\nExamples: {result.examples_uri}')
  print(f'Transform graph: {result.transform_graph_uri}')
  print(f'ML Metadata: {result.metadata_path} (run {result.run_id})')
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
  print(f'\nclass balance: {result.balance_verdict}')
  for line in result.balance_findings[:10]:
    print(f'  {line}')
  if len(result.balance_findings) > 10:
    print(f'  ... {len(result.balance_findings) - 10} more in the report')
  print(f'balance report: {result.balance_report}')
  return 0


def _compile(args) -> int:
  if not args.csv or not args.class_mapping:
    raise config_lib.ConfigError('compile needs --csv (a URI the cluster reads) and '
                                 '--class-mapping (a local JSON file).')
  ingest_config = _ingest_config(args, args.class_mapping)
  if not args.output.endswith(('.yaml', '.yml', '.json')):
    raise config_lib.ConfigError(f'--output {args.output!r} must end in .yaml (KFP pipeline '
                                 'spec) or .json (Vertex PipelineJob).')
  warnings.simplefilter('ignore')
  progress.quiet_native_logs()
  from pipeline import kubeflow_runner  # pylint: disable=g-import-not-at-top
  path = kubeflow_runner.compile_pipeline(
      output=args.output, image=args.image, pipeline_root=args.pipeline_root,
      csv_path=args.csv, ingest_config=ingest_config, schema_path=args.schema,
      balance_config=_balance_config(args), transform_config=_transform_config(args),
      beam_pipeline_args=args.beam_arg,
      component_beam_args=_component_beam_args(args.beam_arg_for),
      pipeline_name=args.pipeline_name,
      component_resources=_resources(args.resources), embeddable=args.embeddable,
      runtime_parameters=not args.no_runtime_parameters)
  print(f'compiled: {path}')
  if path.endswith('.json'):
    print('next: submit it to Vertex AI, e.g. google.cloud.aiplatform.PipelineJob('
          f'display_name={args.pipeline_name!r}, template_path={path!r}, '
          'parameter_values={"csv_uri": "gs://..."}).submit()')
  else:
    print(f'next: kfp.Client(host=...).create_run_from_pipeline_package({path!r}, '
          'arguments={"csv_uri": "gs://...", "seed": 0}) -- or upload it in the KFP UI')
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
  sys.excepthook = _report_bugs
  args = build_parser().parse_args(argv)
  if not getattr(args, 'verbose', False):  # import-time FutureWarnings of google-cloud & co.
    warnings.simplefilter('ignore')
  handler = {'demo-data': _demo_data, 'run': _run, 'compile': _compile, 'report': _report,
             'lineage': _lineage}[args.command]
  try:
    code = handler(args)
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
    io_error = _io_error_message(e)
    if io_error is None or getattr(args, 'verbose', False):
      raise  # a bug: Python prints the traceback; the hook below asks for a report
    print(f'cxr-tfx {args.command}: error: {escape_control(io_error)}', file=sys.stderr)
    return 2


def _io_error_message(e: BaseException) -> Optional[str]:
  """An I/O failure (permissions, read-only or full disk, a missing path) as one line naming
  the path and what to do; None for anything else. TensorFlow's file errors (tf.io.gfile) are
  recognised by module, so that this module needs no TensorFlow import."""
  if isinstance(e, OSError):
    path = ' '.join(repr(p) for p in (e.filename, e.filename2) if p) or 'a file'
    return (f'cannot access {path}: {e.strerror or e}. Check that the path exists, that you '
            'may read/write it, and that its disk is not full or read-only.')
  if type(e).__module__.startswith('tensorflow') and hasattr(e, 'message'):
    return (f'{e.message} Check that the path exists, that you may read/write it, and that '
            'its disk is not full or read-only.')
  message = str(e)
  if 'database or disk is full' in message or 'readonly database' in message:
    return (f'the ML Metadata store cannot be written ({message.splitlines()[0]}); free disk '
            'space or choose a writable --metadata / --pipeline-root.')
  return None


def _report_bugs(exc_type, exc, tb):
  """Unexpected errors are bugs: the traceback, then where to report it."""
  sys.__excepthook__(exc_type, exc, tb)
  if not issubclass(exc_type, (KeyboardInterrupt, BrokenPipeError)):
    print('cxr-tfx: this is a bug in cxr-tfx or a library it uses; please report it with the '
          'traceback above and the command you ran.', file=sys.stderr)


if __name__ == '__main__':
  sys.exit(main())
