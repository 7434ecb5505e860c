"""The ``cxr-tfx`` command line. Start-up imports no TensorFlow: `--help` answers at once, and
every command prints what it will do before loading anything heavy (pipeline/progress.py).

The package: ``main`` parses (parser.py) and dispatches to one module per command (run.py,
validate.py, compile.py, report.py, lineage.py, demo.py); options.py turns options into the
components' configs, inputs.py says what the input is, summary.py ends a run, loading.py loads
TensorFlow, TFX and Beam for the commands that need them. The names below stay importable from
``pipeline.cli``; the handlers are looked up here when a command runs."""
import os
import sys
import time
from typing import List, Optional
import warnings

_STARTED = time.monotonic()  # when the command started (this package loads first): total time


from components.errors import CxrError
from components.errors import escape_control
from components.errors import io_error_message
from pipeline import configs
from pipeline import progress
from pipeline.cli.compile import _compile
from pipeline.cli.demo import _demo_data
from pipeline.cli.lineage import _lineage
from pipeline.cli.loading import _load_libraries  # noqa: F401 (tests patch it)
from pipeline.cli.loading import HEAVY_LIBRARIES  # noqa: F401 (tests patch it)
from pipeline.cli.options import _component_beam_args  # noqa: F401
from pipeline.cli.options import _ingest_config  # noqa: F401
from pipeline.cli.options import _is_uri  # noqa: F401
from pipeline.cli.parser import build_parser
from pipeline.cli.predict import _predict
from pipeline.cli.report import _report
from pipeline.cli.run import _run  # noqa: F401
from pipeline.cli.run import COMPONENTS  # noqa: F401
from pipeline.cli.summary import _membership_text  # noqa: F401
from pipeline.cli.validate import _validate

# What ``pipeline.cli`` offers: the entry point and parser, and the few helpers tests reach
# (the handlers look ``_load_libraries`` and ``_lineage`` up here, where tests replace them).
__all__ = ['COMPONENTS', 'HEAVY_LIBRARIES', 'build_parser', 'main', '_component_beam_args',
           '_ingest_config', '_lineage', '_load_libraries', '_membership_text']


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
  import atexit
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
             'report': _report, 'lineage': _lineage,
             'predict': _predict}[args.command]
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
