"""Terminal-safe output of user data (pure)."""
from components.errors import CxrError
from components.errors import escape_control
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
