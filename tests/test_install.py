"""The package installs with pip (`pip install .`, and the wheel it builds) into a fresh
virtual environment, and runs from another folder through the API and the console command,
finding the experiments and MNIST inside the installed package."""

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import ROOT

LEFT_OUT = shutil.ignore_patterns('.git', '.venv*', 'runs', 'build', '*.egg-info', '__pycache__',
                                  '.pytest_cache')


def fresh_venv(path):
  """A new virtual environment that sees this one's packages (a .pth file), so that pip finds
  the dependencies installed, and checks the package's version ranges against them, offline."""
  subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True, timeout=120)
  purelib = subprocess.run([path / 'bin' / 'python', '-c', 'import sysconfig; print('
                            'sysconfig.get_paths()["purelib"])'], capture_output=True, text=True,
                           check=True).stdout.strip()
  ours = {sysconfig.get_paths()['purelib'], *site.getsitepackages()}
  (path / purelib.split(str(path) + '/')[1] / 'ours.pth').write_text('\n'.join(sorted(ours)))
  return path / 'bin'


def run(command, cwd, env=None, timeout=600):
  result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  return result.stdout


def runs_from_elsewhere(bin_dir, elsewhere):
  """A one-epoch linear run through the API and one through `dnn-jax`: their test accuracy."""
  where = run([bin_dir / 'python', '-c', 'from dnn_jax import shipped; '
               'print(shipped.folder("data/mnist"), shipped.folder("experiments"))'], elsewhere)
  folders = where.split()  # inside the installed package, not the checkout
  assert len(folders) == 2 and all(f.startswith(str(bin_dir.parent)) for f in folders), where
  run([bin_dir / 'python', '-c', "import dnn_jax; dnn_jax.train('linear', epochs=1, "
       "workdir='api', log=None)"], elsewhere)
  on_path = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  printed = run(['dnn-jax', '--experiment=linear', '--epochs=1', '--workdir=cli'], elsewhere,
                on_path)
  assert 'to evaluate again: dnn-jax --mode=eval --workdir=cli' in printed
  return [json.loads((elsewhere / w / 'results.json').read_text())['variants']['logistic']
          ['test_accuracy'] for w in ('api', 'cli')]


@pytest.mark.slow
def test_pip_install_and_the_wheel_run_from_another_folder(tmp_path):
  source = tmp_path / 'source'
  shutil.copytree(ROOT, source, ignore=LEFT_OUT)
  run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', tmp_path / 'dist', source],
      tmp_path)
  (wheel,) = (tmp_path / 'dist').glob('dnn_jax-*.whl')
  for name, target in (('from_source', source), ('from_wheel', wheel)):
    bin_dir = fresh_venv(tmp_path / name)
    run([bin_dir / 'pip', 'install', '-q', target], tmp_path)
    run([bin_dir / 'pip', 'check'], tmp_path)
    elsewhere = tmp_path / f'{name}_elsewhere'
    elsewhere.mkdir()
    api, cli = runs_from_elsewhere(bin_dir, elsewhere)
    assert api == cli and api[0] > 0.9
