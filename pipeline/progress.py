"""What the command line shows while it works, and quiet TensorFlow/Beam logs unless asked for.

``Display`` writes to stderr (results go to stdout): on a terminal, one live line redrawn every
``TTY_REFRESH_SECONDS`` -- a spinner with the elapsed time, or a progress bar (tqdm's meter: done
/ total, rate, ETA) when the work reports its progress; when stderr is not a terminal (CI logs),
a plain line every ``PLAIN_INTERVAL_SECONDS`` while something runs; with ``quiet``, nothing.
The drawing happens in a small forked process fed through a pipe, so that the spinner keeps
turning while this process holds the GIL (TensorFlow's import, Beam's in-process runner).

Where the numbers come from (nothing is parsed out of log text):

* ImageExampleGen: ``StagingProgress`` polls the running execution's staging folder. The
  launcher's plan (``.staging/plan.jsonl``) lists every chunk and its rows; a worker writes one
  piece file per chunk (``.staging/pieces/``) and closes it when the chunk is done, so a chunk
  counts as done once its piece exists and no process of this run still has it open (``/proc``).
* Other components report no progress of their own: they show the elapsed time and, when the
  metadata store has an earlier complete execution of the same component, how long that took
  (from its ML Metadata timestamps, scaled by rows: ``mlmd.expected_seconds``).
* Component start and end: LocalDagRunner's own log records ('Component %s is running.' /
  'is finished.', 'A cached execution %d is used.'), matched by their format string and args.

The drawing is in ``progress_render`` (activities, texts, the renderer), where it runs in
``progress_transport`` (a thread or the forked display process), and ImageExampleGen's poll in
``progress_staging``; this module keeps the entry points: ``Display``, ``session``,
``component_progress``, ``quiet_native_logs`` (and re-exports ``StagingProgress``).
"""
import contextlib
import logging
import os
import sys
import time
from typing import Callable, Dict, Iterator, Optional
import warnings

from pipeline.progress_render import PLAIN
from pipeline.progress_render import Poll
from pipeline.progress_render import QUIET
from pipeline.progress_render import Renderer
from pipeline.progress_render import seconds_text
from pipeline.progress_render import TTY
from pipeline.progress_staging import StagingProgress  # noqa: F401 (re-export)
from pipeline.progress_transport import ProcessTransport
from pipeline.progress_transport import ThreadTransport

TTY_REFRESH_SECONDS = 0.2  # a terminal's live line is redrawn (and progress polled) this often
PLAIN_INTERVAL_SECONDS = 10.0  # without a terminal: one progress line this often

_RUNNING = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_CACHED = 'A cached execution %d is used.'
_NOISY_LOGGERS = ('absl', 'apache_beam', 'tensorflow', 'tfx', 'ml_metadata')
_SILENT = logging.CRITICAL + 1


def quiet_native_logs() -> None:
  """Call before TensorFlow is imported: hides its C++ start-up chatter."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def _fileno(stream) -> Optional[int]:
  try:
    return stream.fileno()
  except (AttributeError, OSError, ValueError):  # e.g. io.StringIO
    return None


class Display:
  """Lines and a live progress line on stderr (see the module docstring).

  ``line(text)`` prints a permanent line; ``start``/``finish`` (or ``activity``) show a spinner
  or a bar in between, from ``poll`` (called by the display) or from ``report(done, total)``
  (called by the work). Drawing happens in a forked display process when the stream has a file
  descriptor (a thread otherwise); ``close()`` waits until everything is written and the live
  line is cleared, so call it before printing results.
  """

  def __init__(self, stream=None, mode: str = '', quiet: bool = False,
               refresh_seconds: float = TTY_REFRESH_SECONDS,
               plain_interval: float = PLAIN_INTERVAL_SECONDS,
               clock: Callable[[], float] = time.monotonic, in_process: bool = False):
    self._stream = stream or sys.stderr
    if quiet:
      mode = QUIET
    if not mode:
      isatty = getattr(self._stream, 'isatty', lambda: False)
      mode = TTY if isatty() else PLAIN
    self.mode = mode
    self._clock = clock
    self._last_report = 0.0
    self._transport = None
    if mode == QUIET:
      return
    if mode == TTY:
      import tqdm  # noqa: F401  # before the fork
    tick = refresh_seconds if mode == TTY else min(1.0, plain_interval / 2)
    fd = _fileno(self._stream)
    renderer = Renderer(self._write, self._width, mode, plain_interval, clock)
    if fd is not None and hasattr(os, 'fork') and not in_process:
      self._flush()
      self._transport = ProcessTransport(renderer, fd, tick)
    else:
      self._transport = ThreadTransport(renderer, tick)

  @property
  def quiet(self) -> bool:
    return self.mode == QUIET

  def _write(self, text: str) -> None:
    try:
      self._stream.write(text)
      self._stream.flush()
    except (BrokenPipeError, ValueError):  # the reader left, or the stream is closed
      pass

  def _flush(self) -> None:
    try:
      self._stream.flush()
    except (OSError, ValueError):
      pass

  def _width(self) -> int:
    try:
      columns = os.get_terminal_size(_fileno(self._stream)).columns
    except (OSError, TypeError, ValueError):
      columns = 0
    return max(40, columns - 1) if columns else 99  # 0: a terminal that did not say

  def _send(self, message: tuple) -> None:
    if self._transport is not None:
      self._transport.send(message)

  def line(self, text: str) -> None:
    """A permanent line (nothing when quiet)."""
    self._send(('line', text))

  def start(self, label: str, poll: Optional[Poll] = None,
            expected_seconds: Optional[float] = None) -> None:
    """Shows ``label`` as running until ``finish`` (or the next ``start``). ``poll`` must be
    picklable when drawing happens in the display process (StagingProgress is)."""
    self._send(('start', label, poll, expected_seconds, self._clock()))

  def report(self, done: int, total: Optional[int], unit: str) -> None:
    """Progress of the current activity, from the work itself (sent at most 20 times a second,
    and always when done == total)."""
    now = self._clock()
    if now - self._last_report >= 0.05 or done == total:
      self._last_report = now
      self._send(('progress', done, total, unit, now))

  def finish(self, text: str = '', add_count: bool = False) -> None:
    """Ends the current activity, printing ``text`` (if any) as its permanent line, with the
    count reached ('(21,165 rows)') when ``add_count`` and progress was known."""
    self._send(('finish', text, add_count))

  @contextlib.contextmanager
  def activity(self, label: str, poll: Optional[Poll] = None, done_text: str = '',
               expected_seconds: Optional[float] = None) -> Iterator['Display']:
    """``with display.activity('[demo-data]', poll):`` a spinner or bar while the block runs;
    ``done_text`` (with '{seconds}' filled in) is printed when it ends without an error."""
    self.start(label, poll, expected_seconds)
    started = self._clock()
    try:
      yield self
    except BaseException:
      self.finish()
      raise
    self.finish(done_text.format(seconds=seconds_text(self._clock() - started))
                if done_text else '')

  def close(self) -> None:
    """Clears the live line and waits until everything is written; later calls do nothing."""
    transport, self._transport = self._transport, None
    if transport is not None:
      transport.close()


# --- Component progress from LocalDagRunner's log records -------------------------------------

class _Session:
  """What the CLI set up for a run: the display and per-component progress polls."""

  def __init__(self, display: Display, polls: Dict[str, Callable[[], Poll]],
               expected: Dict[str, float]):
    self.display = display
    self.polls = polls
    self.expected = expected


_session: Optional[_Session] = None


@contextlib.contextmanager
def session(display: Display, polls: Optional[Dict[str, Callable[[], Poll]]] = None,
            expected_seconds: Optional[Dict[str, float]] = None) -> Iterator[Display]:
  """While active, ``component_progress`` (used by local_runner) shows each component on
  ``display`` with the poll made by ``polls[component]()`` and the expected duration
  ``expected_seconds[component]``; without a session it prints plain start/finish lines."""
  global _session  # pylint: disable=global-statement
  saved, _session = _session, _Session(display, dict(polls or {}), dict(expected_seconds or {}))
  try:
    yield display
  finally:
    _session = saved


class _ProgressHandler(logging.Handler):

  def __init__(self, emit_line: Callable[[str], None], current_session: Optional[_Session]):
    super().__init__(level=logging.INFO)
    self._emit_line = emit_line
    self._session = current_session
    self._started: Dict[str, float] = {}
    self._current: Optional[str] = None
    self._cached = False
    self.finished = []  # (component, seconds, cached)

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == _RUNNING:
      self._current, self._cached = record.args[0], False
      self._started[self._current] = time.monotonic()
      if self._session is None:
        self._emit_line(f'[{self._current}] started')
      else:
        make_poll = self._session.polls.get(self._current)
        self._session.display.start(f'[{self._current}]', make_poll() if make_poll else None,
                                    self._session.expected.get(self._current))
    elif record.msg == _CACHED:
      self._cached = True
    elif record.msg == _FINISHED:
      name = record.args[0]
      seconds = time.monotonic() - self._started.get(name, time.monotonic())
      self.finished.append((name, seconds, self._cached))
      self._current = None
      text = (f'[{name}] finished in {seconds:.1f} s'
              + (' (cached: outputs reused)' if self._cached else ''))
      if self._session is None:
        self._emit_line(text)
      else:
        self._session.display.finish(text, add_count=not self._cached)

  def failed(self) -> None:
    """The run stopped with an error while a component was running."""
    if self._current is None:
      return
    seconds = time.monotonic() - self._started.get(self._current, time.monotonic())
    text = f'[{self._current}] failed after {seconds:.1f} s'
    if self._session is None:
      self._emit_line(text)
    else:
      self._session.display.finish(text)
    self._current = None


@contextlib.contextmanager
def component_progress(verbose: bool = False,
                       emit_line: Callable[[str], None] = None) -> Iterator[_ProgressHandler]:
  """While active: each component's progress (on the session's display, else as plain lines);
  library logs (absl, TensorFlow, Beam, TFX, ML Metadata, errors included) only if ``verbose``:
  a failure reaches the user as the exception the CLI reports, not as log lines."""
  emit_line = emit_line or (lambda line: print(line, file=sys.stderr, flush=True))
  handler = _ProgressHandler(emit_line, _session)
  absl_logger = logging.getLogger('absl')
  root = logging.getLogger()
  saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
  saved_root = root.level
  saved_handlers = {h: h.level for h in root.handlers}
  saved_propagate = absl_logger.propagate
  from absl import logging as absl_logging
  saved_verbosity = absl_logging.get_verbosity()
  # Through absl's flag, not only the logger: TensorFlow's object saving (Transform) sets the
  # verbosity to FATAL and back to the *flag's* value, which would silence the progress records.
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logger.setLevel(logging.INFO)
  absl_logger.addHandler(handler)
  if not verbose:
    absl_logger.propagate = False  # absl's records reach the progress handler only
    for name in _NOISY_LOGGERS:
      if name != 'absl':
        logging.getLogger(name).setLevel(_SILENT)
    root.setLevel(_SILENT)  # loggers without a level of their own inherit it
    for h in saved_handlers:  # e.g. absl's or basicConfig's handler on the root logger
      h.setLevel(_SILENT)
  try:
    with warnings.catch_warnings():
      if not verbose:
        warnings.simplefilter('ignore')
      yield handler
  except BaseException:
    handler.failed()
    raise
  finally:
    absl_logger.removeHandler(handler)
    absl_logger.propagate = saved_propagate
    absl_logging.set_verbosity(saved_verbosity)
    for name, level in saved.items():
      logging.getLogger(name).setLevel(level)
    root.setLevel(saved_root)
    for h, level in saved_handlers.items():
      h.setLevel(level)
