"""The Python API: the same runs and the same one-line errors as the command line, whose thin
layer it is; a Results object with the tables, per-model numbers and figures."""

import json
import subprocess
import sys

import pytest

import dnn_jax
from tests.conftest import ROOT, ours

SMALL = dict(loss='both', num_seeds=2, train_examples=500, epochs=2)


@pytest.fixture(scope='module')
def api_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('api_run')
  return dnn_jax.train('linear', workdir=workdir, log=None, **SMALL)


def numbers(results):
  return {v: {k: r[k] for k in ('test_accuracy', 'test_loss', 'correct', 'confusion',
                                'train_loss_per_epoch', 'test_accuracy_per_epoch')}
          for v, r in results['variants'].items()}


@pytest.mark.slow  # over 8 s on 2 cores
def test_the_api_and_the_command_line_give_the_same_run(api_run, tmp_path):
  result = subprocess.run([sys.executable, str(ROOT / 'main.py'), '--experiment=linear',
                           *(f'--{k}={v}' for k, v in SMALL.items()), f'--workdir={tmp_path}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert numbers(json.loads((tmp_path / 'results.json').read_text())) == numbers(api_run.data)
  assert (json.loads((tmp_path / 'config.json').read_text())
          == json.loads((api_run.workdir / 'config.json').read_text()))


@pytest.mark.parametrize('settings, flags', [
    (dict(c3='half'), ['--c3=half']),
    (dict(loss='logistic'), ['--loss=logistic']),
    (dict(learning_rate=[0.1, -2.0]), ['--learning_rate=0.1,-2']),
    (dict(epochs=0), ['--epochs=0']),
    (dict(sampling='bootstrap'), ['--sampling=bootstrap']),
    (dict(protocol='course', experiment='linear'), ['--experiment=linear', '--protocol=course']),
], ids=lambda v: str(v))
def test_api_errors_are_the_command_lines_lines(settings, flags, tmp_path):
  with pytest.raises(dnn_jax.ConfigError) as raised:
    dnn_jax.train(settings.pop('experiment', 'lenet'), workdir=tmp_path, log=None, **settings)
  result = subprocess.run([sys.executable, str(ROOT / 'main.py'), *flags,
                           f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 2 and ours(result.stderr) == f'error: {raised.value}\n'
  assert not list(tmp_path.iterdir())


def test_an_unknown_setting_names_the_accepted_ones():
  with pytest.raises(dnn_jax.ConfigError, match='--lr: no such setting; accepted: .*learning_rate'):
    dnn_jax.train('lenet', lr=0.1)


def test_results_hold_the_tables_numbers_and_figures(api_run):
  assert api_run.table == (api_run.workdir / 'variance_table.md').read_text().strip()
  assert api_run.to_markdown() == api_run.table
  rows = api_run.rows
  assert [(r['variant'], r['seed']) for r in rows] == [
      (v, s) for v in ('logistic', 'sum_of_squares') for s in (0, 1)]
  assert [r['test_accuracy'] for r in rows[:2]] == api_run.accuracy('logistic')
  assert {'weights.png', 'loss_curve.png', 'accuracy_curve.png'} <= set(api_run.figures)
  png = api_run.plot_weights()
  assert png._repr_png_().startswith(b'\x89PNG')
  assert api_run.plot_accuracy_curve() == api_run.figure('accuracy_curve.png')
  assert {f'plot_{name[:-4]}' for name in api_run.figures} <= set(dir(api_run))
  with pytest.raises(dnn_jax.ConfigError, match='no such figure; it drew: '):
    api_run.plot_c3_connections()
  assert dnn_jax.Results.load(api_run.workdir).data == json.loads(json.dumps(api_run.data))


def test_evaluate_restores_and_tests_like_training(api_run):
  evaluated = dnn_jax.evaluate(api_run.workdir, log=None, eval_batch_size=7)
  assert ({v: r['correct'] for v, r in evaluated.items()}
          == {v: r['correct'] for v, r in api_run.data['variants'].items()})


def test_experiments_list_what_each_trains_and_fixes():
  experiments = dnn_jax.experiments()
  assert experiments['lenet']['learning_rate'] == 0.1 and experiments['lenet']['task'] == 'lenet'
  assert experiments['linear_with_replacement']['steps'] == 50_000
  assert experiments['linear_lr_sweep']['num_seeds'] == 16
