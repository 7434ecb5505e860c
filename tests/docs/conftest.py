"""Fixtures of the documentation checks. Nothing here imports TensorFlow (pipeline.cli keeps its
start-up light), so these tests take about a second."""
import pytest

from tests.docs import docutil


@pytest.fixture(scope='session')
def gen_cli():
  return docutil.load_gen_cli()


@pytest.fixture(scope='session')
def parser(gen_cli):
  """pipeline.cli.build_parser(), as docs/gen_cli.py builds it."""
  return gen_cli.build_parser()


@pytest.fixture(scope='session')
def commands(gen_cli, parser):
  """{command name: its option strings}, from pipeline.cli.build_parser()."""
  return {name: {s for action in sub._actions for s in action.option_strings}  # pylint: disable=protected-access
          for name, sub in gen_cli.subcommands(parser).items()}
