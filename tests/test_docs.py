"""The README reads in five minutes, and every file it and docs/ link to exists."""

import re

from tests.conftest import ROOT

DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]


def test_the_readme_is_short():
  assert len((ROOT / 'README.md').read_text().splitlines()) <= 120


def test_every_relative_link_resolves():
  for doc in DOCS:
    for target in re.findall(r'\]\(([^)#:]+)(?:#[^)]*)?\)', doc.read_text()):
      assert (doc.parent / target).exists(), f'{doc.name}: {target}'


def figures_listed():
  """The figure files docs/runs.md lists in its table."""
  return set(re.findall(r'^\| `([a-z0-9_]+\.png)`', (ROOT / 'docs' / 'runs.md').read_text(),
                        re.M))
