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
"""
import contextlib
import glob
import itertools
import json
import logging
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from components.image_example_gen import staging

TTY, PLAIN, QUIET = 'tty', 'plain', 'quiet'
TTY_REFRESH_SECONDS = 0.2  # a terminal's live line is redrawn (and progress polled) this often
PLAIN_INTERVAL_SECONDS = 10.0  # without a terminal: one progress line this often
_SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'
_CLEAR_LINE = '\r\x1b[K'

_RUNNING = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_CACHED = 'A cached execution %d is used.'
_NOISY_LOGGERS = ('absl', 'apache_beam', 'tensorflow', 'tfx', 'ml_metadata')
_SILENT = logging.CRITICAL + 1

# A progress poll: -> (done, total or None, unit), or None while nothing is known yet.
Progress = Tuple[int, Optional[int], str]
Poll = Callable[[], Optional[Progress]]


def quiet_native_logs() -> None:
  """Call before TensorFlow is imported: hides its C++ start-up chatter."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def seconds_text(seconds: float) -> str:
  """12.3 -> '12.3 s'; 75 -> '1 min 15 s'."""
  if seconds < 60:
    return f'{seconds:.1f} s'
  minutes, secs = divmod(int(round(seconds)), 60)
  return f'{minutes} min {secs:02d} s'


class _Activity:
  """One thing in progress: a label, when it started, and how to learn its progress: a poll
  (called by the renderer) or values the work reports (``Display.report``)."""

  def __init__(self, label: str, poll: Optional[Poll], expected_seconds: Optional[float],
               started: float):
    self.label = label
    self.poll = poll
    self.expected_seconds = expected_seconds
    self.started = started
    self.progress: Optional[Progress] = None
    self.first_seen: Optional[Tuple[float, int]] = None  # (time, done) when counting began

  def set_progress(self, found: Progress, now: float) -> None:
    if self.first_seen is None or found[0] < self.first_seen[1]:
      self.first_seen = (now, found[0])
    self.progress = found

  def update(self, now: float) -> None:
    if self.poll is None:
      return
    try:
      found = self.poll()
    except Exception:  # pylint: disable=broad-except  (progress must never break the work)
      return
    if found is not None:
      self.set_progress(found, now)

  def rate(self, now: float) -> Optional[float]:
    """Units per second since counting began (the set-up before it is not in the rate)."""
    if self.progress is None or self.first_seen is None:
      return None
    t0, done0 = self.first_seen
    if now - t0 < 0.5 or self.progress[0] <= done0:
      return None
    return (self.progress[0] - done0) / (now - t0)


def bar_text(a: _Activity, now: float, width: int, frame: str) -> str:
  """The live line on a terminal: a tqdm meter when progress is known, else a spinner frame,
  the label and the times."""
  elapsed = now - a.started
  if a.progress is not None:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top  (imported before any fork)
    done, total, unit = a.progress
    return tqdm.format_meter(done, total, elapsed, ncols=width, prefix=a.label,
                             unit=f' {unit}', rate=a.rate(now))
  return f'{frame} {a.label} {seconds_text(elapsed)}{_expected(a)}'


def status_text(a: _Activity, now: float) -> str:
  """The plain (non-terminal) line: counts, percent, rate, time left."""
  elapsed = now - a.started
  if a.progress is None:
    return f'{a.label}: {seconds_text(elapsed)} so far{_expected(a)}'
  done, total, unit = a.progress
  text = f'{a.label} {done:,}' + (f'/{total:,} {unit} ({100 * done / total:.0f}%)'
                                  if total else f' {unit}')
  rate = a.rate(now)
  if rate:
    text += f', {rate:,.0f} {unit}/s'
    if total and done < total:
      text += f', about {seconds_text((total - done) / rate)} left'
  return text + f', {seconds_text(elapsed)} so far'


def _expected(a: _Activity) -> str:
  if not a.expected_seconds:
    return ''
  return f' (the last complete run took {seconds_text(a.expected_seconds)})'


def _fileno(stream) -> Optional[int]:
  try:
    return stream.fileno()
  except (AttributeError, OSError, ValueError):  # e.g. io.StringIO
    return None


class _Renderer:
  """The display's state and drawing, driven by messages and ticks from one thread at a time.

  Messages: ('line', text), ('start', label, poll, expected seconds, start time),
  ('progress', done, total, unit, time), ('finish', text, add count), ('close',)."""

  def __init__(self, write: Callable[[str], None], width: Callable[[], int], mode: str,
               interval: float, clock: Callable[[], float]):
    self._write = write
    self._width = width
    self.mode = mode
    self._interval = interval
    self._clock = clock
    self._current: Optional[_Activity] = None
    self._live = False  # a live line is on the terminal now
    self._frames = itertools.cycle(_SPINNER)
    self._last_plain = 0.0

  def _clear(self) -> None:
    if self._live:
      self._write(_CLEAR_LINE)
      self._live = False

  def _draw(self) -> None:
    if self.mode == TTY and self._current is not None:
      self._write(_CLEAR_LINE + bar_text(self._current, self._clock(), self._width(),
                                         next(self._frames)))
      self._live = True

  def handle(self, message: tuple) -> None:
    kind = message[0]
    if kind == 'line':
      self._clear()
      self._write(message[1] + '\n')
      self._draw()
    elif kind == 'start':
      _, label, poll, expected, started = message
      self._current = _Activity(label, poll, expected, started)
      self._last_plain = started
      self._draw()
    elif kind == 'progress':
      if self._current is not None:
        self._current.set_progress(message[1:4], message[4])
    elif kind == 'finish':
      _, text, add_count = message
      current, self._current = self._current, None
      self._clear()
      if current is not None:
        current.update(self._clock())
        if add_count and current.progress is not None:
          text += f' ({current.progress[0]:,} {current.progress[2]})'
      if text:
        self._write(text + '\n')
    elif kind == 'close':
      self._current = None
      self._clear()

  def tick(self) -> None:
    if self._current is None:
      return
    now = self._clock()
    self._current.update(now)
    if self.mode == TTY:
      self._draw()
    elif now - self._last_plain >= self._interval:
      self._last_plain = now
      self._write(status_text(self._current, now) + '\n')


class _ThreadTransport:
  """The renderer in this process: messages handled at once, ticks from a daemon thread. For
  streams without a file descriptor (tests' StringIO) or systems without fork."""

  def __init__(self, renderer: _Renderer, tick: float):
    self._renderer = renderer
    self._tick = tick
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name='cxr-progress', daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while not self._stop.wait(self._tick):
      with self._lock:
        self._renderer.tick()

  def send(self, message: tuple) -> None:
    with self._lock:
      self._renderer.handle(message)

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)
    self.send(('close',))


class _ProcessTransport:
  """The renderer in a forked process fed through a pipe, so it draws on time whatever this
  process does: importing TensorFlow can hold the GIL for tens of seconds while its shared
  libraries load (40 s from a cold disk cache, measured), and Beam's in-process runner holds it
  for seconds at a time; a thread's spinner would freeze. The child only draws (raw writes to
  the stream's file descriptor) and exits when the pipe closes."""

  def __init__(self, renderer: _Renderer, fd: int, tick: float):
    read_end, self._pipe = os.pipe()
    self._pid = os.fork()
    if self._pid == 0:  # the child
      code = 0
      try:
        os.close(self._pipe)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: this process's parent decides
        renderer._write = lambda text: _write_fd(fd, text)  # pylint: disable=protected-access
        self._serve(renderer, read_end, tick)
      except BaseException:  # pylint: disable=broad-except
        code = 1
      finally:
        os._exit(code)  # pylint: disable=protected-access
    os.close(read_end)

  @staticmethod
  def _serve(renderer: _Renderer, read_end: int, tick: float) -> None:
    buffer = b''
    while True:
      if select.select([read_end], [], [], tick)[0]:
        data = os.read(read_end, 1 << 16)
        if not data:
          renderer.handle(('close',))
          return
        buffer += data
        while len(buffer) >= 4:
          size = struct.unpack('>I', buffer[:4])[0]
          if len(buffer) < 4 + size:
            break
          message = pickle.loads(buffer[4:4 + size])
          buffer = buffer[4 + size:]
          renderer.handle(message)
          if message[0] == 'close':
            return
      renderer.tick()

  def send(self, message: tuple) -> None:
    data = pickle.dumps(message)
    try:
      os.write(self._pipe, struct.pack('>I', len(data)) + data)
    except OSError:  # the display process is gone: progress is never worth an error
      pass

  def close(self) -> None:
    self.send(('close',))
    os.close(self._pipe)
    os.waitpid(self._pid, 0)


def _write_fd(fd: int, text: str) -> None:
  data = text.encode('utf-8', 'replace')
  while data:
    try:
      data = data[os.write(fd, data):]
    except InterruptedError:
      continue
    except OSError:  # the reader left
      return


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
      import tqdm  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import  (before the fork)
    tick = refresh_seconds if mode == TTY else min(1.0, plain_interval / 2)
    fd = _fileno(self._stream)
    renderer = _Renderer(self._write, self._width, mode, plain_interval, clock)
    if fd is not None and hasattr(os, 'fork') and not in_process:
      self._flush()
      self._transport = _ProcessTransport(renderer, fd, tick)
    else:
      self._transport = _ThreadTransport(renderer, tick)

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


# --- ImageExampleGen: per-chunk completion from its staging folder ----------------------------

STAGING_DIR, PLAN_FILE, PIECES_DIR = (staging.STAGING_DIR, staging.PLAN_FILE,
                                     staging.PIECES_DIR)
SPLIT_PREFIX = 'Split-'


def _descendants(pid: int) -> List[int]:
  """``pid`` and all its descendant processes (the SDK workers under multi_processing)."""
  out, todo = [], [pid]
  while todo:
    p = todo.pop()
    out.append(p)
    for children in glob.glob(f'/proc/{p}/task/*/children'):
      try:
        with open(children, encoding='ascii') as f:
          todo.extend(int(c) for c in f.read().split())
      except OSError:
        pass
  return out


def open_files_under(folder: str, pids: Sequence[int]) -> Set[str]:
  """Paths under ``folder`` that one of ``pids`` has open (Linux ``/proc/<pid>/fd``)."""
  prefix = os.path.realpath(folder) + os.sep
  found = set()
  for pid in pids:
    fd_dir = f'/proc/{pid}/fd'
    try:
      fds = os.listdir(fd_dir)
    except OSError:
      continue
    for fd in fds:
      try:
        target = os.readlink(f'{fd_dir}/{fd}')
      except OSError:
        continue
      if target.startswith(prefix):
        found.add(target)
  return found


class StagingProgress:
  """A Poll for ImageExampleGen: rows of chunks done / rows planned, from the staging folder of
  the execution started at or after ``since`` (epoch seconds) under ``examples_dir``
  (``<pipeline root>/ImageExampleGen/examples``).

  A piece file is created when its chunk starts and closed when it is complete; a piece
  counts as done once it exists and no process of this run (this one and its descendants) has
  it open -- exact, not a guess from sizes; a piece's name says how many rows it holds
  (``staging.piece_name``). Without ``/proc`` (not Linux) a piece counts when it appears (at
  most one chunk per worker early). The check pass before the deal writes no pieces: the bar
  stays at 0 until the write pass starts.
  """

  def __init__(self, examples_dir: str, since: float, pid: int = 0):
    self._examples_dir = examples_dir
    self._since = since
    self._pid = pid or os.getpid()
    self._staging: Optional[str] = None
    self._total: Optional[int] = None  # rows in the plan, once it is complete
    self._done: Dict[str, int] = {}
    self._proc = os.path.isdir('/proc/self/fd')

  def _find_staging(self) -> Optional[str]:
    newest = None
    for plan in glob.glob(os.path.join(glob.escape(self._examples_dir), '*', STAGING_DIR,
                                       PLAN_FILE)):
      try:
        mtime = os.stat(plan).st_mtime
      except OSError:
        continue
      if mtime >= self._since - 1 and (newest is None or mtime > newest[0]):
        newest = (mtime, os.path.dirname(plan))
    return newest and newest[1]

  def _read_plan(self) -> None:
    total = 0
    with open(os.path.join(self._staging, PLAN_FILE), encoding='utf-8') as f:
      for line in f:
        total += len(json.loads(line)[4])
    self._total = total

  def __call__(self) -> Optional[Progress]:
    if self._staging is None:
      self._staging = self._find_staging()
      if self._staging is None:
        return None
    if not os.path.isdir(self._staging):  # published (or failed): staging removed
      return self._result(final=True)
    pieces_dir = os.path.join(self._staging, PIECES_DIR)
    if self._total is None:
      # The plan is complete once the job writes pieces, or (earlier, while Beam starts) once
      # no process of the run has it open any more.
      plan = os.path.join(self._staging, PLAN_FILE)
      if not os.path.isdir(pieces_dir) and (not self._proc or os.path.realpath(plan) in
                                            open_files_under(self._staging,
                                                             _descendants(self._pid))):
        return None
      self._read_plan()
    try:
      names = os.listdir(pieces_dir)
    except OSError:
      names = []
    writing = set()
    if self._proc:
      writing = {os.path.basename(p)
                 for p in open_files_under(pieces_dir, _descendants(self._pid))}
    for name in names:
      if name not in writing and name not in self._done:
        self._done[name] = staging.piece_rows(name)
    if glob.glob(os.path.join(glob.escape(self._staging), SPLIT_PREFIX + '*')):
      return self._result(final=True)  # shards assembled: every chunk was written
    return self._result(final=False)

  def _result(self, final: bool) -> Optional[Progress]:
    if self._total is None:
      return None
    done = self._total if final else min(sum(self._done.values()), self._total)
    return (done, self._total, 'rows')


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
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
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
