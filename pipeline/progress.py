"""One progress line per component, and quiet TensorFlow/Beam logs unless asked for.

LocalDagRunner logs 'Component %s is running.' / 'Component %s is finished.' through absl; the
launcher logs 'A cached execution %d is used.' in between when it reuses outputs. A logging
handler turns those records into progress lines; everything else below WARNING is hidden.
"""
import contextlib
import logging
import os
import sys
import time
import warnings
from typing import Callable, Dict, Iterator, Optional

_RUNNING = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_CACHED = 'A cached execution %d is used.'
_NOISY_LOGGERS = ('absl', 'apache_beam', 'tensorflow', 'root')
# Warnings that are not the user's to act on, hidden unless verbose:
_HARMLESS = (
    'ArtifactQuery.property_predicate is not supported.',  # TFX 1.16 input resolver, per input
    'ContextQuery.property_predicate is not supported.',
    "Couldn't find python-snappy",  # Beam's TFRecord CRC falls back to pure Python
    'Using the in-place Transform',  # expected: graph only, no analyzers (TransformConfig)
)


class _HideHarmless(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_HARMLESS)


def quiet_native_logs() -> None:
  """Call before TensorFlow is imported: hides its C++ start-up chatter."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


class _ProgressHandler(logging.Handler):

  def __init__(self, emit_line: Callable[[str], None]):
    super().__init__(level=logging.INFO)
    self._emit_line = emit_line
    self._started: Dict[str, float] = {}
    self._current: Optional[str] = None
    self._cached = False
    self.finished = []  # (component, seconds, cached)

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == _RUNNING:
      self._current, self._cached = record.args[0], False
      self._started[self._current] = time.monotonic()
      self._emit_line(f'[{self._current}] started')
    elif record.msg == _CACHED:
      self._cached = True
    elif record.msg == _FINISHED:
      name = record.args[0]
      seconds = time.monotonic() - self._started.get(name, time.monotonic())
      self.finished.append((name, seconds, self._cached))
      self._emit_line(f'[{name}] finished in {seconds:.1f} s'
                      + (' (cached: outputs reused)' if self._cached else ''))


_HIDE_HARMLESS = _HideHarmless()
_HARMLESS_FROM = ('absl', 'apache_beam.io.tfrecordio')  # the loggers those records come from


@contextlib.contextmanager
def component_progress(verbose: bool = False,
                       emit_line: Callable[[str], None] = None) -> Iterator[_ProgressHandler]:
  """While active: progress lines for each component; other logs only if ``verbose``."""
  emit_line = emit_line or (lambda line: print(line, file=sys.stderr, flush=True))
  handler = _ProgressHandler(emit_line)
  absl_logger = logging.getLogger('absl')
  saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
  saved_handlers = {h: h.level for h in logging.getLogger().handlers}
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  saved_verbosity = absl_logging.get_verbosity()
  # Through absl's flag, not only the logger: TensorFlow's object saving (Transform) sets the
  # verbosity to FATAL and back to the *flag's* value, which would silence the progress lines.
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logger.setLevel(logging.INFO)
  absl_logger.addHandler(handler)
  if not verbose:
    for name in _HARMLESS_FROM:
      logging.getLogger(name).addFilter(_HIDE_HARMLESS)
    for name in _NOISY_LOGGERS:
      if name != 'absl':
        logging.getLogger(name).setLevel(logging.WARNING)
    for h in saved_handlers:  # absl's own handler on the root logger, if installed
      h.setLevel(max(h.level, logging.WARNING))
  try:
    with warnings.catch_warnings():
      if not verbose:
        warnings.simplefilter('ignore')
      yield handler
  finally:
    absl_logger.removeHandler(handler)
    absl_logging.set_verbosity(saved_verbosity)
    for name, level in saved.items():
      logging.getLogger(name).setLevel(level)
    for h, level in saved_handlers.items():
      h.setLevel(level)
    for name in _HARMLESS_FROM:
      logging.getLogger(name).removeFilter(_HIDE_HARMLESS)
