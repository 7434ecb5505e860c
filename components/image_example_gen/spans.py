"""CSV index patterns with spans: ``index-{SPAN}.csv`` (pure: no TensorFlow/TFX imports).

TFX's own driver (``tfx.components.example_gen.driver.FileBasedDriver``) resolves the span and
version ImageExampleGen ingests; that is the authority. This module mirrors its rules for what
must not import TensorFlow: the CLI's first line (which CSV, how many rows) and
``cxr-tfx validate``. A test pins the two to the same answers.

The rules (TFX's ``example_gen/utils.py``): a pattern holds at most one ``{SPAN}`` (or
``{SPAN:width}``: zero-padded to that width) or the three date specs ``{YYYY}``, ``{MM}``,
``{DD}`` (span = days since 1970-01-01), and optionally one ``{VERSION}`` (``{VERSION:width}``).
Without a span asked for, the newest span is taken; within a span, the newest version.
"""
import dataclasses
import datetime
import fnmatch
import glob
import os
import re
from typing import Dict, List, Optional, Tuple

from components.errors import CxrError

SPAN_SPEC_RE = re.compile(r'\{SPAN(?::(?P<width>[^}]*))?\}')
VERSION_SPEC_RE = re.compile(r'\{VERSION(?::(?P<width>[^}]*))?\}')
DATE_SPECS = ('{YYYY}', '{MM}', '{DD}')
_EPOCH = datetime.date(1970, 1, 1)


class SpanError(CxrError, ValueError):
  """A span pattern is malformed, or no CSV matches it (for the span asked for)."""


@dataclasses.dataclass(frozen=True)
class Resolved:
  """The CSV a pattern resolves to, with its span and version (None without {VERSION})."""
  path: str
  span: int
  version: Optional[int]


def has_span_spec(path: str) -> bool:
  """True when ``path`` holds a span spec ({SPAN}, {SPAN:w} or the date specs)."""
  return bool(SPAN_SPEC_RE.search(path)) or any(spec in path for spec in DATE_SPECS)


def has_any_spec(path: str) -> bool:
  return has_span_spec(path) or bool(VERSION_SPEC_RE.search(path))


def check_pattern(path: str) -> None:
  """SpanError unless ``path``'s specs follow TFX's rules (see the module doc)."""
  spans = SPAN_SPEC_RE.findall(path)
  versions = VERSION_SPEC_RE.findall(path)
  dates = [spec for spec in DATE_SPECS if spec in path]
  where = f'{path!r} (option --csv)'
  if spans and dates:
    raise SpanError(f'{where}: use either {{SPAN}} or the date specs {{YYYY}}{{MM}}{{DD}}, '
                    'not both.')
  if len(spans) > 1:
    raise SpanError(f'{where}: only one {{SPAN}} is allowed.')
  if dates and not all(path.count(spec) == 1 for spec in DATE_SPECS):
    raise SpanError(f'{where}: the date specs need exactly one each of {{YYYY}}, {{MM}} and '
                    '{DD}.')
  if versions and not (spans or dates):
    raise SpanError(f'{where}: {{VERSION}} needs a {{SPAN}} (or date specs) in the pattern.')
  if len(versions) > 1:
    raise SpanError(f'{where}: only one {{VERSION}} is allowed.')
  for width in spans + versions:
    if width and not (width.isdigit() and int(width) > 0):
      raise SpanError(f'{where}: a spec width must be a positive integer, got {width!r}.')


def split_pattern(path: str) -> Tuple[str, str]:
  """-> (input_base, pattern): the deepest folder without a spec, and the rest (TFX's
  FileBasedExampleGen globs ``input_base/pattern``). 'data/w-{SPAN}/index.csv' ->
  ('data', 'w-{SPAN}/index.csv')."""
  head, tail = os.path.split(path)
  parts = [tail]
  while '{' in head:
    head, part = os.path.split(head)
    parts.insert(0, part)
  return head, '/'.join(parts)


def date_to_span(year: int, month: int, day: int) -> int:
  return (datetime.date(year, month, day) - _EPOCH).days


def _regex(pattern: str) -> 're.Pattern':
  """The pattern as a regex capturing span/version (or year/month/day); globs elsewhere."""
  out, i = [], 0
  token = re.compile(r'\{SPAN(?::([^}]*))?\}|\{VERSION(?::([^}]*))?\}|\{YYYY\}|\{MM\}|\{DD\}')
  for m in token.finditer(pattern):
    out.append(fnmatch.translate(pattern[i:m.start()])[4:-3])  # '(?s:...)\Z' -> '...'
    text = m.group(0)
    if text.startswith('{SPAN'):
      out.append(f'(?P<span>\\d{{{m.group(1)}}})' if m.group(1) else '(?P<span>\\d+)')
    elif text.startswith('{VERSION'):
      out.append(f'(?P<version>\\d{{{m.group(2)}}})' if m.group(2) else '(?P<version>\\d+)')
    else:
      out.append({'{YYYY}': r'(?P<year>\d{4})', '{MM}': r'(?P<month>\d{2})',
                  '{DD}': r'(?P<day>\d{2})'}[text])
    i = m.end()
  out.append(fnmatch.translate(pattern[i:])[4:-3])
  return re.compile(''.join(out) + r'\Z', re.S)


def _glob(pattern: str) -> List[str]:
  wildcard = re.sub(r'\{SPAN(?::[^}]*)?\}|\{VERSION(?::[^}]*)?\}|\{YYYY\}|\{MM\}|\{DD\}', '*',
                    pattern)
  if '://' in pattern:
    import tensorflow as tf  # URIs only
    return tf.io.gfile.glob(wildcard)
  return glob.glob(wildcard)


def list_spans(path: str) -> Dict[int, Dict[Optional[int], List[str]]]:
  """{span: {version (None without {VERSION}): [matching files]}} for a pattern.

  Like TFX's driver, which fails on them, a file that matches the pattern's wildcard (each
  spec as '*') but has no span number, version or calendar date where the pattern says is an
  error (SpanError naming it), not skipped."""
  check_pattern(path)
  regex = _regex(path)
  found: Dict[int, Dict[Optional[int], List[str]]] = {}
  for match in _glob(path):
    m = regex.match(match)
    if not m:
      raise SpanError(_unmatched(path, match, 'has no span number (or version) where the '
                                 'pattern has {SPAN} ({VERSION})'))
    groups = m.groupdict()
    if groups.get('year') is not None:
      try:
        span = date_to_span(int(groups['year']), int(groups['month']), int(groups['day']))
      except ValueError:
        raise SpanError(_unmatched(path, match, 'its date is not a calendar date')) from None
    else:
      span = int(groups['span'])
    version = int(groups['version']) if groups.get('version') is not None else None
    found.setdefault(span, {}).setdefault(version, []).append(match)
  return found


def _unmatched(pattern: str, match: str, why: str) -> str:
  return (f"{pattern}: {match} matches the pattern's wildcard but {why}; TFX's driver refuses "
          'a folder holding it: move or rename the file, or narrow the pattern (option --csv).')


def _spans_text(found) -> str:
  spans = sorted(found)
  shown = ', '.join(str(s) for s in spans[:10]) + (', ...' if len(spans) > 10 else '')
  return f'spans found: {shown}' if spans else 'no CSV matches it'


def resolve(path: str, span: Optional[int] = None) -> Resolved:
  """The CSV ``path`` stands for: itself without specs; else the newest span's (or ``span``'s)
  newest version. SpanError when nothing (or more than one file) matches."""
  if not has_any_spec(path):
    return Resolved(path, 0, None)
  found = list_spans(path)
  if not found:
    raise SpanError(f'{path}: no CSV matches the span pattern (option --csv).')
  target = max(found) if span is None else span
  if target not in found:
    raise SpanError(f'{path}: no CSV for span {target} ({_spans_text(found)}) (option --span).')
  versions = found[target]
  version = max(versions, key=lambda v: -1 if v is None else v)
  matches = sorted(versions[version])
  if len(matches) != 1:
    raise SpanError(f'{path}: span {target} matches {len(matches)} files ({", ".join(matches)}); '
                    'the pattern must match exactly one CSV per span and version (option --csv).')
  return Resolved(matches[0], target, version)
