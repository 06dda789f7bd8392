"""notebooks/course.ipynb runs top to bottom, its outputs stripped in the repository."""

import json
import os

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / 'notebooks' / 'course.ipynb'


def test_the_notebook_is_stored_without_outputs():
  cells = json.loads(NOTEBOOK.read_text())['cells']
  code = [c for c in cells if c['cell_type'] == 'code']
  assert code and all(not c['outputs'] and c['execution_count'] is None for c in code)


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  """Executed in an empty folder (its runs/ go there); the executed copy is kept beside it."""
  import nbclient
  import nbformat
  monkeypatch.setenv('PYTHONPATH', str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(notebook, timeout=900, kernel_name='python3',
                          resources={'metadata': {'path': str(tmp_path)}}).execute()
  nbformat.write(notebook, tmp_path / 'course.executed.ipynb')
  outputs = [o for c in notebook.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(images) == 5  # weights, accuracy, C3, misclassified, filters
  tables = [o for o in outputs if 'text/markdown' in o.get('data', {})]
  assert len(tables) == 3 and all('| **mean** |' in t.data['text/markdown'] for t in tables)
  assert (tmp_path / 'runs' / 'notebook' / 'lenet-slice' / 'report.md').exists()
