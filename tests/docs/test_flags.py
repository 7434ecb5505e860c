"""Every `--flag` that README.md or a docs page names must be an option of `cxr-tfx`; and where a
page shows a command (`cxr-tfx run ...`), every flag in it must be an option of that command."""
import re

import pytest

from tests.docs import docutil

# Flags of other tools that the docs show, each with the tool. Keep this list small: a flag here
# is not checked against anything.
OTHER_TOOLS = {
    '--small-scale': 'python -m bench.run',
    '--ieg-variants': 'python -m bench.run',
    '--profile': 'python -m bench.run',
    '--stages': 'python -m bench.run',
    '--report': 'docs/make_screenshot.py',
    '--write': 'docs/gen_cli.py',
    '--direct_num_workers': 'Beam, in component_beam_args=... (Python)',
    '--strict': 'mkdocs build',
    '--logdir': 'tensorboard',
    '--dir': 'saved_model_cli',
    '--tag_set': 'saved_model_cli',
    '--signature_def': 'saved_model_cli',
    '--inputs': 'saved_model_cli',
    '--outdir': 'saved_model_cli',
}
# A flag: two dashes and a letter, not preceded by a word character, '-', '/', '.' or '=' -- so
# the Beam options after `--beam-arg=` or `--beam-arg-for COMPONENT=` (e.g.
# `--beam-arg=--runner=DataflowRunner`) are the Beam SDK's, not cxr-tfx's, and are skipped.
FLAG = re.compile(r'(?<![\w\-/.=])--[A-Za-z][\w-]*')
COMMAND = re.compile(r'\bcxr-tfx ([a-z][a-z-]*)(?![\w:-])')
FENCE = re.compile(r'^```[^\n]*\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'(?<!`)`([^`]+)`(?!`)')


def all_options(commands):
  return set().union(*commands.values()) | {'-h', '--help'}


def flags_in(text: str):
  """[(line number, flag)] of every flag token in ``text``."""
  return [(text.count('\n', 0, m.start()) + 1, m.group(0)) for m in FLAG.finditer(text)]


def command_lines(text: str):
  """(command, the text of its invocation) for every `cxr-tfx COMMAND ...` the text shows: in
  fenced blocks (continuation lines joined, up to a `#` comment or the next command) and in
  inline code spans."""
  pieces = []
  for block in FENCE.findall(text):
    pieces += re.sub(r'\\\n', ' ', block).split('\n')
  without_blocks = FENCE.sub('', text)
  pieces += INLINE.findall(without_blocks)
  for piece in pieces:
    piece = re.split(r'\s#\s?', piece)[0]
    starts = list(COMMAND.finditer(piece))
    for i, m in enumerate(starts):
      end = starts[i + 1].start() if i + 1 < len(starts) else len(piece)
      yield m.group(1), piece[m.end():end]


@pytest.mark.parametrize('path', docutil.doc_files())
def test_every_flag_named_exists(path, commands):
  known = all_options(commands)
  unknown = [(line, flag) for line, flag in flags_in(docutil.read(path))
             if flag not in known and flag not in OTHER_TOOLS]
  assert not unknown, (
      f'{path} names flags `cxr-tfx` does not have (pipeline.cli.build_parser()): '
      + ', '.join(f'{flag} (line {line})' for line, flag in unknown)
      + '. Fix the page, or if the flag belongs to another tool, add it to OTHER_TOOLS in '
      'tests/docs/test_flags.py.')


@pytest.mark.parametrize('path', docutil.doc_files())
def test_commands_shown_use_their_own_flags(path, commands):
  wrong = []
  for command, args in command_lines(docutil.read(path)):
    if command not in commands:
      wrong.append(f'`cxr-tfx {command}` is not a command (commands: {", ".join(commands)})')
      continue
    for _, flag in flags_in(args):
      if flag not in commands[command] and flag not in OTHER_TOOLS:
        wrong.append(f'`cxr-tfx {command}` has no option {flag}')
  assert not wrong, f'{path}: ' + '; '.join(wrong)


def test_the_checks_see_flags_and_skip_beam_options():
  text = ('cxr-tfx run --csv x.csv --beam-arg=--runner=DataflowRunner \\\n'
          '    --beam-arg-for ImageExampleGen=--direct_num_workers=2   # not --this\n')
  assert [f for _, f in flags_in(text)] == ['--csv', '--beam-arg', '--beam-arg-for', '--this']
  shown = list(command_lines(f'```sh\n{text}```\n and `cxr-tfx validate --verify full`'))
  assert [c for c, _ in shown] == ['run', 'validate']
  assert '--this' not in shown[0][1]
  assert not flags_in('|---|---:|')


def test_other_tools_flags_are_not_cxr_tfx_flags(commands):
  """An allow-listed flag that cxr-tfx gains must leave the list (it would hide a typo)."""
  assert not set(OTHER_TOOLS) & all_options(commands)
