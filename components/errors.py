"""The project's own error type, and terminal-safe text (pure: no TensorFlow/TFX imports).

Every error cxr-tfx raises on purpose -- bad input, a bad option, a failed check -- is a
``CxrError``: the CLI prints it as one clear message and exits 2. Anything else reaching the CLI
is a bug in cxr-tfx (or its libraries): a traceback and a request for a bug report.
"""
import os
import re
import stat
from typing import Optional
import unicodedata

_KEEP = '\n\t'


class CxrError(Exception):
  """Base class of cxr-tfx's deliberate errors; the message says what and which option fixes it."""


class ConfigError(CxrError, ValueError):
  """An option is invalid (any component's, the pipeline's or the command line's); the message
  names the option that fixes it."""


# Unicode categories shown as escapes: controls (Cc: terminal escape sequences, newlines),
# formats (Cf: bidirectional overrides such as U+202E, which reorder what a reader sees;
# zero-width characters) and line/paragraph separators.
_ESCAPED = ('Cc', 'Cf', 'Zl', 'Zp')


def _escape(c: str) -> str:
  return repr(c)[1:-1] if c.isascii() or ord(c) < 0x100 else f'\\u{ord(c):04x}'


def escape_control(text: str) -> str:
  """Control and format characters (terminal escape sequences, bidirectional overrides) as
  visible escapes, e.g. '\\x1b', '\\u202e'; newlines and tabs kept. For messages and
  paths printed from user data."""
  return ''.join(c if c in _KEEP or unicodedata.category(c) not in _ESCAPED else _escape(c)
                 for c in str(text))


def escape_name(text: str) -> str:
  """``escape_control`` and newlines and tabs too: for one-line names (class names, image
  ids) in tables and reports, where a newline would break the row."""
  return ''.join(c if unicodedata.category(c) not in _ESCAPED else _escape(c)
                 for c in str(text))


_FILE_KINDS = ((stat.S_ISDIR, 'directory'), (stat.S_ISFIFO, 'FIFO'),
               (stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
               (stat.S_ISSOCK, 'socket'))
_WHY_NOT = {'FIFO': ' (named pipe): reading it would wait for a writer',
            'character device': ': reading it might never end'}


def file_kind(mode: int) -> str:
  """What a file that is not regular is, by its st_mode: 'FIFO', 'directory', ..."""
  return next((name for test, name in _FILE_KINDS if test(mode)), 'special file')


def special_file(path: str) -> str:
  """What ``path`` is when it exists and is not a regular file (symlinks followed), e.g. 'a
  FIFO (named pipe): ...'; '' for a regular file or a path that does not exist. Checked before
  a local CSV or class mapping is opened: open() on a FIFO blocks, /dev/zero never ends."""
  try:
    mode = os.stat(path).st_mode
  except OSError:
    return ''
  if stat.S_ISREG(mode):
    return ''
  kind = file_kind(mode)
  return f'a {kind}{_WHY_NOT.get(kind, "")}'


_CHECK = ('Check that the path exists, that you may read/write it, and that its disk is not full '
          'or read-only.')
# Worker errors reach the launcher as text: Beam runners re-raise a worker's exception as a
# RuntimeError (or a job failure) carrying its message, so the OS error is recognised by it.
_OS_REASONS = ('No space left on device', 'Read-only file system', 'Permission denied',
               'Disk quota exceeded')
_TF_STYLE = re.compile(r'(?:Error|errors_impl\.\w+): (?P<path>[^;\n]+?); '
                       r'(?P<reason>' + '|'.join(_OS_REASONS) + ')')
_PY_STYLE = re.compile(r"\[Errno \d+\] (?P<reason>[^:\n]+): '(?P<path>[^'\n]+)'")
_STORE_FAILURES = ('database or disk is full', 'attempt to write a readonly database',
                   'unable to open database file', 'disk I/O error')


def io_error_message(error: BaseException, store_path: str = '') -> Optional[str]:
  """An I/O failure anywhere in ``error``'s chain -- permissions, a read-only or full disk, a
  missing path, the ML Metadata store (SQLite ``store_path``) not writable -- as one line naming
  the path and what to do; None when it is not one (then it is a bug). TensorFlow's file errors
  are recognised by module and Beam-wrapped worker errors by their text, so no TensorFlow
  import is needed."""
  seen = []
  while error is not None and error not in seen:
    seen.append(error)
    error = error.__cause__ or error.__context__  # type: ignore[assignment]  # None ends the loop
  for e in seen:  # the store first: SQLite reports its failures without a path
    message = str(e)
    for failure in _STORE_FAILURES:
      if failure in message:
        where = f' {store_path}' if store_path else ''
        return (f'the ML Metadata store{where} cannot be written: {failure}. Free disk space '
                'or choose a writable --metadata / --pipeline-root.')
  for e in seen:
    if isinstance(e, OSError) and (e.filename or e.strerror):
      path = ' '.join(repr(p) for p in (e.filename, e.filename2) if p) or 'a file'
      return f'cannot access {path}: {e.strerror or e}. {_CHECK}'
    if type(e).__module__.startswith('tensorflow') and getattr(e, 'message', None):
      return f'{e.message}. {_CHECK}'  # type: ignore[attr-defined]  # TensorFlow's OpError
    match = _TF_STYLE.search(str(e)) or _PY_STYLE.search(str(e))
    if match:
      return f"cannot write {match['path']!r}: {match['reason']}. {_CHECK}"
  return None
