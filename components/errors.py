"""The project's own error type, and terminal-safe text (pure: no TensorFlow/TFX imports).

Every error cxr-tfx raises on purpose -- bad input, a bad option, a failed check -- is a
``CxrError``: the CLI prints it as one clear message and exits 2. Anything else reaching the CLI
is a bug in cxr-tfx (or its libraries): a traceback and a request for a bug report.
"""
import unicodedata

_KEEP = '\n\t'


class CxrError(Exception):
  """Base class of cxr-tfx's deliberate errors; the message says what and which option fixes it."""


def escape_control(text: str) -> str:
  """Control characters (terminal escape sequences included) as visible escapes, e.g. '\\x1b';
  newlines and tabs kept. For anything printed that came from user data: class names, paths."""
  return ''.join(c if c in _KEEP or unicodedata.category(c) != 'Cc'
                 else repr(c)[1:-1] for c in str(text))
