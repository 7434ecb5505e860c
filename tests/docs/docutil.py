"""Helpers of the documentation checks: where the docs are, and docs/gen_cli.py as a module."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(REPO, 'docs')
GENERATED = ('docs/cli.md',)  # argparse's own text (checked against the parser as a whole)


def load_gen_cli():
  """docs/gen_cli.py as a module (docs/ is not a package)."""
  spec = importlib.util.spec_from_file_location('gen_cli', os.path.join(DOCS, 'gen_cli.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def doc_files(include_generated: bool = False):
  """README.md and every page under docs/ (paths relative to the repository), sorted."""
  pages = [f'docs/{name}' for name in sorted(os.listdir(DOCS)) if name.endswith('.md')]
  return ['README.md'] + [p for p in pages if include_generated or p not in GENERATED]


def read(relative_path: str) -> str:
  with open(os.path.join(REPO, relative_path), encoding='utf-8') as f:
    return f.read()
