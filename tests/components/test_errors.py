"""Terminal-safe output of user data (pure)."""
from components.errors import CxrError, escape_control
from components.image_example_gen.config import ConfigError
from components.image_example_gen.index import IndexValidationError
from components.image_example_gen.summary import IngestSummary, format_shard_table


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
