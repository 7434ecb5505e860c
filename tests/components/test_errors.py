"""Terminal-safe output of user data, special files (pure)."""
import os

from components.errors import CxrError
from components.errors import escape_control
from components.errors import escape_name
from components.errors import special_file
from components.image_example_gen.config import ConfigError
from components.image_example_gen.index import IndexValidationError
from components.image_example_gen.summary import format_shard_table
from components.image_example_gen.summary import IngestSummary


def test_control_characters_are_escaped_newlines_kept():
  assert escape_control('a\x1b[31mred\x1b[0m\x07\x9b\nb\tc') == 'a\\x1b[31mred\\x1b[0m\\x07\\x9b\nb\tc'
  assert escape_control('Viral Pneumonia é') == 'Viral Pneumonia é'


def test_class_names_with_escape_sequences_are_shown_escaped_in_the_shard_table():
  summary = IngestSummary(
      csv_path='x.csv', seed=0, splits=[{'name': 'train', 'num_shards': 1}],
      class_names={0: 'ok', 1: 'evil\x1b[2J'}, rows_in=3, examples_written=3,
      shards=[{'split': 'train', 'index': 0, 'file': 'f.gz', 'count': 3,
               'class_counts': {0: 2, 1: 1}}])
  table = format_shard_table(summary)
  assert '\x1b' not in table and 'evil\\x1b[2J' in table


def test_the_projects_errors_are_cxr_errors():
  assert issubclass(ConfigError, CxrError) and issubclass(ConfigError, ValueError)
  assert issubclass(IndexValidationError, CxrError)


def test_io_error_message_names_the_path_wherever_the_error_came_from():
  from components.errors import io_error_message
  beam_wrapped = RuntimeError(
      'tensorflow.python.framework.errors_impl.ResourceExhaustedError: /r/IEG/examples/1/'
      ".staging/pieces/train-00000-00000.gz; No space left on device [while running 'W']")
  assert io_error_message(beam_wrapped).startswith(
      "cannot write '/r/IEG/examples/1/.staging/pieces/train-00000-00000.gz': No space left "
      'on device.')
  try:
    try:
      raise OSError(30, 'Read-only file system', '/ro/root')
    except OSError as e:
      raise ValueError('wrapped') from e
  except ValueError as chained:
    assert io_error_message(chained).startswith("cannot access '/ro/root': Read-only file system.")
  store = RuntimeError('Error when executing query: database or disk is full query: INSERT')
  assert io_error_message(store, '/m/metadata.sqlite').startswith(
      'the ML Metadata store /m/metadata.sqlite cannot be written: database or disk is full.')
  assert io_error_message(KeyError(4)) is None  # a bug, not an I/O error


def test_names_show_newlines_tabs_and_bidirectional_overrides_as_escapes():
  """Issue #29: a class name with a newline, a tab or U+202E (which reverses what follows on
  screen) is one visible line in tables and reports; messages keep their newlines."""
  name = 'Normal\nCOVID\tX\u202eevil\u200b'
  assert escape_name(name) == 'Normal\\nCOVID\\tX\\u202eevil\\u200b'
  assert escape_control(name) == 'Normal\nCOVID\tX\\u202eevil\\u200b'
  summary = IngestSummary(
      csv_path='x.csv', seed=0, splits=[{'name': 'train', 'num_shards': 1}],
      class_names={0: 'ok', 1: name}, rows_in=1, examples_written=1,
      shards=[{'split': 'train', 'index': 0, 'file': 'f.gz', 'count': 1,
               'class_counts': {1: 1}}])
  table = format_shard_table(summary)
  assert '\u202e' not in table and 'Normal\\nCOVID' in table
  assert len(table.splitlines()) == len(format_shard_table(IngestSummary(
      **{**summary.__dict__, 'class_names': {0: 'ok', 1: 'plain'}})).splitlines())


def test_special_files_are_named_before_anything_opens_them(tmp_path):
  fifo = tmp_path / 'index.csv'
  os.mkfifo(fifo)
  assert special_file(str(fifo)).startswith('a FIFO')
  assert special_file('/dev/zero').startswith('a character device')
  assert special_file(str(tmp_path)) == 'a directory'
  regular = tmp_path / 'ok.csv'
  regular.write_text('x')
  assert special_file(str(regular)) == '' and special_file(str(tmp_path / 'missing')) == ''
