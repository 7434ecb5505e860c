"""`cxr-tfx run`: the pipeline with LocalDagRunner, after a first line that says what will run."""
import contextlib
import dataclasses
import os
import time
from typing import Optional, Tuple

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
  # Every option is checked before demo data, the lock or the heavy imports.
  balance_config, transform_config = _balance_config(args), _transform_config(args)
  train_config = _train_config(args)
  options = _pipeline_options(args, args.pipeline_root, enable_cache=not args.no_cache,
                              schema_path=os.path.abspath(args.schema),
                              train_spans=args.train_spans)
  progress.quiet_native_logs()
  root = args.pipeline_root
  metadata = args.metadata or os.path.join(root, configs.METADATA_FILE)
  _check_span_arg(args.csv, args.span)
  _check_split_args(args)
  if args.csv and args.image_dir:
    raise config_lib.ConfigError('give --csv or --image-dir, not both.')
  source, ingest_config, rows, locked = _inputs(args, display, held, metadata)
  _split_lines(display, ingest_config)
  # The schema must not state other classes than the mapping: refuse now, before the imports.
  from components.schema_gen import precheck
  if ingest_config.class_mapping:  # (a gs:// folder without a mapping: checked below)
    precheck.check(options.schema_path, ingest_config.class_mapping, source.class_mapping_path)
  if not locked:
    _hold_root(held, display, args, root, metadata)
  # through the package, where tests put a stand-in for _load_libraries
  from pipeline import cli
  cli._load_libraries(display, 'pipeline.local_runner', 'pipeline.reports')
  if source.image_dir and _is_uri(source.image_dir):  # listed with tf.io.gfile, as ImageExampleGen
    ingest_config = _folder_classes(display, source.image_dir, args.class_mapping,
                                    _read_folder(source.image_dir, ingest_config), ingest_config)
    if not args.class_mapping:
      precheck.check(options.schema_path, ingest_config.class_mapping, '')
  published = _published_splits_line(metadata, args.pipeline_name, ingest_config)
  if published:
    display.line(escape_control(published))
  from pipeline import local_runner
  with progress.session(display, *_progress_polls(args, root, metadata, rows)):
    display.start('[LocalDagRunner] preparing the pipeline')  # until the first component
    result = local_runner.run_local(
        options=options, source=source, ingest_config=ingest_config,
        balance_config=balance_config, transform_config=transform_config,
        train_config=train_config, metadata_path=args.metadata, verbose=args.verbose,
        wait=args.wait)
    display.finish()
  display.close()
  _summarise(result, args.pipeline_name)
  return 0


def _inputs(args, display: progress.Display, held: contextlib.ExitStack, metadata: str
            ) -> Tuple[configs.DataSource, config_lib.IngestConfig, Optional[int], bool]:
  """The run's first line, and what it reads: an image folder (listed now when local), demo
  data (generated now, under the root's lock), or a CSV (its span resolved, its rows counted)
  -> (source, ingest config, rows if known, whether the lock is held)."""
  root, image_dir = args.pipeline_root, args.image_dir
  components = ' → '.join(COMPONENTS + (configs.TRAIN_COMPONENT_IDS if args.train else ()))
  where = f'outputs in {root}/, ML Metadata {metadata}'
  if image_dir:
    if not _is_uri(image_dir) and not os.path.isdir(image_dir):  # fail before TensorFlow loads
      raise config_lib.ConfigError(f'{image_dir}: the image folder does not exist or is not a '
                                   'folder (option --image-dir).')
    mapping_path = args.class_mapping  # '': the sorted class folder names
    ingest_config = _ingest_config(args, mapping_path)
    folder = None if _is_uri(image_dir) else _read_folder(image_dir, ingest_config)
    rows = folder.checked.rows_in if folder else None
    what = f'{rows:,} images of ' if folder else ''
    display.line(f'cxr-tfx run: {components} on {what}the image folder {image_dir}; {where}')
    if folder:
      ingest_config = _folder_classes(display, image_dir, mapping_path, folder, ingest_config)
    elif not mapping_path:  # a gs:// folder is listed once TensorFlow has loaded
      display.line('classes: no --class-mapping, so labels follow the sorted class folders, '
                   f'listed once {HEAVY_LIBRARIES} have loaded (pass --class-mapping to fix '
                   'them)')
    return _source(image_dir=image_dir, mapping_path=mapping_path, args=args), ingest_config, \
        rows, False
  locked = False
  if args.csv:
    csv_path = args.csv
    span_csv, span_text, _ = _resolve_span(csv_path, args.span)
    display.line(f'cxr-tfx run: {components} on {_csv_rows(span_csv)}{span_text}; {where}')
    rows = _count_rows(span_csv)
  else:
    from pipeline import demo_data
    out = os.path.join(root, configs.DEMO_DATA_DIR)
    n = sum(demo_data.class_counts_for_scale(args.demo_scale).values())
    display.line(f'cxr-tfx run: no --csv, so first {n:,} demo images into {out}, then '
                 f'{components}; {where}')
    locked = bool(_hold_root(held, display, args, root, metadata))
    ds = _generate_demo(display, out, args.demo_scale, configs.DEMO_MISSING_MASKS, args.seed,
                        _cores())
    display.line(f'demo data: {ds.num_rows} images ({ds.num_missing_masks} without masks): '
                 f'{ds.csv_path}')
    csv_path, rows = ds.csv_path, ds.num_rows
  mapping_path = args.class_mapping or _default_mapping_path(csv_path)
  ingest_config = _ingest_config(args, mapping_path)
  if not args.csv and not args.mask_size:  # the demo's layout: 299x299 images, 256x256 masks
    from pipeline import demo_data
    ingest_config = dataclasses.replace(
        ingest_config, mask_size=f'{demo_data.MASK_SIZE}x{demo_data.MASK_SIZE}')
  return _source(csv_path=csv_path, mapping_path=mapping_path, args=args), ingest_config, rows, \
      locked


def _source(args, mapping_path: str, csv_path: str = '', image_dir: str = ''
            ) -> configs.DataSource:
  return configs.DataSource(
      csv_path=csv_path or '', image_dir=image_dir or '', span=args.span,
      class_mapping_path=os.path.abspath(mapping_path) if mapping_path else '')


def _progress_polls(args, root: str, metadata: str, rows: Optional[int]):
  """(polls, expected seconds) for the progress display: ImageExampleGen's staging folder, and
  rough ETAs from the pipeline's last complete runs in the store."""
  from components.image_example_gen import spec
  from pipeline import mlmd
  expected = {}
  if not args.no_cache and mlmd.exists(metadata):
    expected = mlmd.expected_seconds(mlmd.open_store(metadata), args.pipeline_name, rows,
                                     spec.ROWS_IN_PROPERTY)
  polls = {}
  if not _is_uri(root):
    examples_dir = os.path.join(os.path.abspath(root), configs.IMAGE_EXAMPLE_GEN,
                                spec.EXAMPLES_KEY)
    polls[configs.IMAGE_EXAMPLE_GEN] = lambda: progress.StagingProgress(examples_dir,
                                                                         time.time())
  return polls, expected


def _summarise(result, pipeline_name: str) -> None:
  """The run's summary, read back from ML Metadata by the run's own id."""
  from pipeline import mlmd
  from pipeline import reports
  store = mlmd.open_store(result.metadata_path)
  run = mlmd.run_by_name(store, result.run_id)
  times = mlmd.component_times(store, run, pipeline_name)
  validator = reports.validator_result(result.metadata_path, result.run_id, pipeline_name)
  _print_summary(result, validator, times)
