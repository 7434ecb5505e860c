"""`cxr-tfx run`: the pipeline with LocalDagRunner, after a first line that says what will run."""
import contextlib
import os
import time

from components.errors import escape_control
from components.image_example_gen import config as config_lib
from pipeline import configs
from pipeline import progress
from pipeline.cli.demo import _generate_demo
from pipeline.cli.inputs import _check_span_arg
from pipeline.cli.inputs import _count_rows
from pipeline.cli.inputs import _csv_rows
from pipeline.cli.inputs import _default_mapping_path
from pipeline.cli.inputs import _folder_classes
from pipeline.cli.inputs import _published_splits_line
from pipeline.cli.inputs import _read_folder
from pipeline.cli.inputs import _resolve_span
from pipeline.cli.inputs import _split_lines
from pipeline.cli.loading import HEAVY_LIBRARIES
from pipeline.cli.options import _balance_config
from pipeline.cli.options import _check_split_args
from pipeline.cli.options import _ingest_config
from pipeline.cli.options import _is_uri
from pipeline.cli.options import _pipeline_options
from pipeline.cli.options import _train_config
from pipeline.cli.options import _transform_config
from pipeline.cli.parser import _cores
from pipeline.cli.summary import _print_summary
from pipeline.progress_render import seconds_text

# The pipeline's components, in the order LocalDagRunner runs them.
COMPONENTS = (configs.SCHEMA_GEN, configs.IMAGE_EXAMPLE_GEN, configs.STATISTICS_GEN,
              configs.EXAMPLE_VALIDATOR, configs.CLASS_BALANCE, configs.TRANSFORM)


def _run(args, display: progress.Display) -> int:
  with contextlib.ExitStack() as held:  # the pipeline root's lock, once _hold_root took it
    return _run_holding(args, display, held)


def _hold_root(held: contextlib.ExitStack, display: progress.Display, args, root: str,
               metadata: str):
  """Takes the lock of the pipeline root and of the ML Metadata store's folder
  (pipeline/cleanup.py) until the command ends: before anything is written there (demo data,
  outputs, the store) and before TensorFlow loads, so a second run is refused at once, or with
  --wait says whom it waits for. run_local enters the same lock again."""
  from pipeline import cleanup  # ML Metadata's protos, no TensorFlow
  waited_for = []

  def on_wait(holder: cleanup.Holder) -> None:
    display.line(f'waiting for {holder.describe()} to finish: it holds the pipeline root '
                 f'{root} (--wait)')
    display.start(f'waiting for run pid {holder.pid}')
    waited_for.append(holder)

  local = lambda path: path if _is_uri(path) else os.path.abspath(path)  # noqa: E731
  lock = held.enter_context(cleanup.hold(local(root), local(metadata), wait=args.wait,
                                         on_wait=on_wait))
  if waited_for:
    display.finish(f'waited {seconds_text(lock.waited_seconds)} for run pid '
                   f'{waited_for[-1].pid}; this run holds {root} now')
  return lock


def _run_holding(args, display: progress.Display, held: contextlib.ExitStack) -> int:
  # fail fast, before demo data or heavy imports (--splits is parsed by argparse)
  balance_config, transform_config = _balance_config(args), _transform_config(args)
  _train_config(args)
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
  lock = None  # the pipeline root's lock: taken before demo data, or else before the imports
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
    from pipeline import demo_data
    out = os.path.join(root, configs.DEMO_DATA_DIR)
    n = sum(demo_data.class_counts_for_scale(args.demo_scale).values())
    display.line(f'cxr-tfx run: no --csv, so first {n:,} demo images into {out}, then '
                 f'{components}; outputs in {root}/, ML Metadata {metadata}')
    lock = _hold_root(held, display, args, root, metadata)
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
  from components.schema_gen import precheck
  if ingest_config.class_mapping:  # (a gs:// folder without a mapping: checked below)
    precheck.check(os.path.abspath(args.schema), ingest_config.class_mapping,
                   os.path.abspath(mapping_path) if mapping_path else '')
  lock = lock or _hold_root(held, display, args, root, metadata)
  # through the package, where tests put a stand-in for _load_libraries
  from pipeline import cli
  cli._load_libraries(display, 'pipeline.local_runner', 'pipeline.reports')
  if image_dir and _is_uri(image_dir):  # listed with tf.io.gfile, as ImageExampleGen will
    ingest_config = _folder_classes(display, image_dir, mapping_path,
                                    _read_folder(image_dir, ingest_config), ingest_config)
    if not mapping_path:
      precheck.check(os.path.abspath(args.schema), ingest_config.class_mapping, '')
  from components.image_example_gen import spec
  from pipeline import local_runner
  from pipeline import mlmd
  from pipeline import reports

  published = _published_splits_line(metadata, args.pipeline_name, ingest_config)
  if published:
    display.line(escape_control(published))
  expected = {}
  if not args.no_cache and mlmd.exists(metadata):  # rough ETAs from the last complete runs
    expected = mlmd.expected_seconds(mlmd.open_store(metadata), args.pipeline_name, rows,
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
        options=_pipeline_options(args, root, enable_cache=not args.no_cache,
                                  schema_path=os.path.abspath(args.schema),
                                  train_spans=args.train_spans),
        source=configs.DataSource(
            csv_path=csv_path or '', image_dir=image_dir or '', span=args.span,
            class_mapping_path=os.path.abspath(mapping_path) if mapping_path else ''),
        ingest_config=ingest_config, balance_config=balance_config,
        transform_config=transform_config, train_config=_train_config(args),
        metadata_path=args.metadata, verbose=args.verbose, wait=args.wait)
    display.finish()
  display.close()
  store = mlmd.open_store(result.metadata_path)
  run = mlmd.run_by_name(store, result.run_id)
  times = mlmd.component_times(store, run, args.pipeline_name)
  validator = reports.validator_result(result.metadata_path, result.run_id, args.pipeline_name)
  _print_summary(result, validator, times)
  return 0
