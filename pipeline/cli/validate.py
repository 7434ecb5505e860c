"""`cxr-tfx validate`: every check of ImageExampleGen, without TensorFlow."""
import os

from components.errors import escape_control
from components.image_example_gen import config as config_lib
from pipeline import progress
from pipeline.cli.inputs import _check_span_arg
from pipeline.cli.inputs import _classes_line
from pipeline.cli.inputs import _csv_rows
from pipeline.cli.inputs import _default_mapping_path
from pipeline.cli.inputs import _resolve_span
from pipeline.cli.inputs import _split_lines
from pipeline.cli.options import _check_split_args
from pipeline.cli.options import _ingest_config


def _validate(args, display: progress.Display) -> int:
  if bool(args.csv) == bool(args.image_dir):
    raise config_lib.ConfigError('validate needs --csv (the CSV index to check) or --image-dir '
                                 '(the image folder to check), one of them.')
  _check_split_args(args)
  from components.image_example_gen import index
  from pipeline import validate as validate_lib
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
  header_only = config.verify == config_lib.VERIFY_HEADER
  print(f'\nOK: `cxr-tfx run{" --verify header" if header_only else ""}` with these options '
        f'would write {result.examples_to_write:,} examples '
        f'({len(result.bad_rows) + len(result.dropped)} rows quarantined).')
  if header_only:  # validate's default: fast, but not what `run` checks by default
    print('Not checked: pixel data (--verify header). `run` decodes every image and mask by '
          'default (--verify full) and refuses a file whose header is valid but whose pixels '
          'are not; `validate --verify full` checks exactly that.')
  return 0
