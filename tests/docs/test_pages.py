"""The README stays a front page, its links resolve, and every page is in the site's nav."""
import os
import re

from markdown.extensions.toc import slugify
import pytest

from tests.docs import docutil

README_MAX_LINES = 250
LINK = re.compile(r'\]\(([^)\s]+)\)')
HEADING = re.compile(r'^#{1,6} +(.+?) *#*$', re.M)


def anchors(markdown_text: str):
  """The heading ids Python-Markdown's toc gives a page (mkdocs' default)."""
  without_code = re.sub(r'^```.*?^```', '', markdown_text, flags=re.M | re.S)
  return {slugify(re.sub(r'[`*_]', '', h), '-') for h in HEADING.findall(without_code)}


def test_readme_is_a_front_page():
  lines = docutil.read('README.md').count('\n')
  assert lines <= README_MAX_LINES, (
      f'README.md has {lines} lines (at most {README_MAX_LINES}): it is the front page; move the '
      'details to the docs/ page of their task.')


@pytest.mark.parametrize('path', ['README.md'])
def test_relative_links_resolve(path):
  """mkdocs --strict checks the pages' links; this checks the README's (file and anchor)."""
  base = os.path.dirname(os.path.join(docutil.REPO, path))
  broken = []
  for target in LINK.findall(docutil.read(path)):
    if re.match(r'[a-z]+:', target):
      continue
    file_part, _, anchor = target.partition('#')
    full = os.path.normpath(os.path.join(base, file_part))
    if not os.path.exists(full):
      broken.append(target)
    elif anchor and full.endswith('.md'):
      with open(full, encoding='utf-8') as f:
        if anchor not in anchors(f.read()):
          broken.append(target)
  assert not broken, f'{path}: links to nothing: {broken}'


def test_every_page_is_in_the_nav():
  nav = docutil.read('mkdocs.yml')
  missing = [p for p in docutil.doc_files(include_generated=True)[1:]
             if not re.search(rf':\s*{re.escape(os.path.basename(p))}\s*$', nav, re.M)]
  assert not missing, f'pages missing from the nav of mkdocs.yml: {missing}'


def test_readme_lists_every_command(commands):
  readme = docutil.read('README.md')
  missing = [name for name in commands if f'| `cxr-tfx {name}` |' not in readme]
  assert not missing, (f'README.md\'s command table lacks {missing}: one line per command of '
                       '`cxr-tfx --help`.')
