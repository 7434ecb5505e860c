"""How the progress display draws: the modes (terminal, plain, quiet), an activity's state (label,
start time, progress from a poll or from the work, its rate), the texts drawn for it (tqdm's meter
or a spinner on a terminal, a status line otherwise) and ``Renderer``, which turns the display's
messages and ticks into writes. Used by ``pipeline.progress.Display`` in this process or in its
forked display process (``pipeline.progress_transport``); imports nothing heavy.
"""
import itertools
from typing import Callable, Optional, Tuple

TTY, PLAIN, QUIET = 'tty', 'plain', 'quiet'
_SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'
_CLEAR_LINE = '\r\x1b[K'

# A progress poll: -> (done, total or None, unit), or None while nothing is known yet.
Progress = Tuple[int, Optional[int], str]
Poll = Callable[[], Optional[Progress]]


def seconds_text(seconds: float) -> str:
  """12.3 -> '12.3 s'; 75 -> '1 min 15 s'."""
  if seconds < 60:
    return f'{seconds:.1f} s'
  minutes, secs = divmod(int(round(seconds)), 60)
  return f'{minutes} min {secs:02d} s'


class Activity:
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


def bar_text(a: Activity, now: float, width: int, frame: str) -> str:
  """The live line on a terminal: a tqdm meter when progress is known, else a spinner frame,
  the label and the times."""
  elapsed = now - a.started
  if a.progress is not None:
    from tqdm import tqdm  # imported before any fork
    done, total, unit = a.progress
    return tqdm.format_meter(done, total, elapsed, ncols=width, prefix=a.label,
                             unit=f' {unit}', rate=a.rate(now))
  return f'{frame} {a.label} {seconds_text(elapsed)}{_expected(a)}'


def status_text(a: Activity, now: float) -> str:
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


def _expected(a: Activity) -> str:
  if not a.expected_seconds:
    return ''
  return f' (the last complete run took {seconds_text(a.expected_seconds)})'


class Renderer:
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
    self._current: Optional[Activity] = None
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
      self._current = Activity(label, poll, expected, started)
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
