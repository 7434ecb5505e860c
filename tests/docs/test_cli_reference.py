"""docs/cli.md is generated from the parser (docs/gen_cli.py) and must not drift from it."""
import difflib
import os
import subprocess
import sys

from tests.docs import docutil


def test_cli_md_is_the_parsers_help(gen_cli):
  committed = docutil.read('docs/cli.md')
  generated = gen_cli.render()
  if committed != generated:
    diff = ''.join(list(difflib.unified_diff(
        committed.splitlines(True), generated.splitlines(True),
        'docs/cli.md (committed)', 'docs/cli.md (from pipeline.cli.build_parser())'))[:60])
    raise AssertionError(
        'docs/cli.md differs from what the command line\'s parser says. Regenerate it with\n\n'
        f'    {gen_cli.REGENERATE}\n\nand commit the result. First differences:\n{diff}')


def test_cli_md_documents_every_command(gen_cli, parser):
  text = docutil.read('docs/cli.md')
  for name in gen_cli.subcommands(parser):
    assert f'## cxr-tfx {name}\n' in text, f'docs/cli.md has no section for `cxr-tfx {name}`'


def test_generating_the_reference_imports_no_tensorflow():
  """The generator (and so these tests) stay fast: pipeline.cli must not import TensorFlow."""
  code = ('import sys, runpy; sys.argv = ["gen_cli.py"]; '
          'import io, contextlib\n'
          'with contextlib.redirect_stdout(io.StringIO()):\n'
          f'  runpy.run_path({os.path.join(docutil.DOCS, "gen_cli.py")!r}, run_name="__main__")\n'
          'heavy = sorted(m for m in ("tensorflow", "tfx", "apache_beam", "ml_metadata") '
          'if m in sys.modules)\n'
          'print(",".join(heavy))')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        timeout=120, cwd=docutil.REPO, check=False)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == '', f'docs/gen_cli.py imported {done.stdout.strip()}'


def test_the_reference_does_not_depend_on_the_machine(gen_cli, monkeypatch):
  """Terminal width and core count do not change the text, so CI and every laptop agree."""
  reference = gen_cli.render()
  monkeypatch.setenv('COLUMNS', '37')
  if hasattr(os, 'sched_getaffinity'):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(7)))
  monkeypatch.setattr(os, 'cpu_count', lambda: 7)
  assert gen_cli.render() == reference
