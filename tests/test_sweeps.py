"""Sweeps: a grid of learning rates x seeds on one models axis, one compiled program per
variant; each model equals its single run; the chunk width changes nothing; the sweep's
table, figure, divergence marks, and evaluation."""

import json

import jax
import numpy as np
import pytest

from dnn_jax.results import sweeps
from dnn_jax.run import driver, loop
from dnn_jax.tasks import linear
from tests.conftest import small_config

RATES = (0.01, 0.05, 0.2)


def sweep_config(**overrides):
  return small_config(**dict(dict(learning_rate=RATES, num_seeds=2, loss='logistic'), **overrides))


@pytest.fixture(scope='module')
def splits():
  return linear.load_data(small_config())


def test_model_i_j_of_a_grid_is_its_single_run_bit_for_bit(splits):
  config = sweep_config(models_per_chunk=1)
  grid = loop.run_variant(config, linear, 'logistic', *splits, log=print)
  assert config.num_models == 6 and grid.results['models_per_chunk'] == 1
  for m in range(config.num_models):
    values, seed = config.model(m)
    assert (values['learning_rate'], seed) == (RATES[m // 2], 3 + m % 2)
    one = loop.run_variant(small_config(loss='logistic', num_seeds=1, seed=seed, **values),
                           linear, 'logistic', *splits, log=print)
    np.testing.assert_array_equal(one.step_losses[0], grid.step_losses[m])
    assert ((one.results['correct'][0], one.results['test_loss'][0])
            == (grid.results['correct'][m], grid.results['test_loss'][m]))


def test_the_chunk_width_changes_nothing_but_float_rounding(splits):
  """(At learning rates where training is stable: at 0.2, rounding grows to 1e-4 in 200 steps.)"""
  runs = {width: loop.run_variant(sweep_config(models_per_chunk=width, learning_rate=(
      0.01, 0.02, 0.03)), linear, 'logistic', *splits, log=print) for width in (1, 4, 6)}
  assert [r.results['models_per_chunk'] for r in runs.values()] == [1, 4, 6]
  for r in runs.values():  # vmapped dots round differently from single ones
    np.testing.assert_allclose(r.step_losses, runs[1].step_losses, rtol=1e-5, atol=1e-6)
    assert r.results['correct'] == runs[1].results['correct']


def test_one_compile_per_variant_whatever_the_grid(tmp_path, monkeypatch):
  compiles = []
  compile_lowered = jax.stages.Lowered.compile
  monkeypatch.setattr(jax.stages.Lowered, 'compile',
                      lambda self, *a, **k: compiles.append(1) or compile_lowered(self, *a, **k))
  driver.train_and_evaluate(sweep_config(loss='both', learning_rate=RATES + (0.1, 0.3)),
                            tmp_path, log=lambda line: None)
  assert len(compiles) == 2  # one epoch program per loss, for the 5 x 2 models


def test_a_sweep_writes_its_table_figure_and_statistics(tmp_path):
  results = driver.train_and_evaluate(sweep_config(loss='both'), tmp_path, log=lambda line: None)
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['sweep_table'] == (tmp_path / 'sweep_table.md').read_text().strip()
  assert [m['learning_rate'] for m in saved['models']] == [r for r in RATES for _ in range(2)]
  rows = saved['sweep']
  assert [row['point']['learning_rate'] for row in rows] == list(RATES)
  accuracy = results['variants']['logistic']['test_accuracy']
  assert rows[1]['variants']['logistic']['test_accuracy']['mean'] == pytest.approx(
      np.mean(accuracy[2:4]))
  assert rows[1]['difference']['diff'] == pytest.approx(
      np.mean(accuracy[2:4]) - np.mean(results['variants']['sum_of_squares']['test_accuracy'][2:4]))
  table = saved['sweep_table']
  assert table.count('\n| ') == len(RATES) and '- best for logistic: learning_rate' in table
  png = (tmp_path / 'sweep.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 10_000
  assert not (tmp_path / 'variance_table.md').exists()


def test_a_diverging_model_is_marked_and_the_others_go_on(splits):
  config = sweep_config(learning_rate=(0.05, 1e30))
  lines = []
  result = loop.run_variant(config, linear, 'logistic', *splits, log=lines.append).results
  assert result['diverged'] == [False, False, True, True]
  assert any('learning_rate 1e+30, seed 3); try --learning_rate=1e+29; marked' in line
             for line in lines)
  assert min(result['test_accuracy'][:2]) > 0.8
  rows = sweeps.summarize({'logistic': result}, config)  # each failed seed counted once
  assert [row['variants']['logistic']['failed'] for row in rows] == [0, 2]


def test_a_sweep_resumes_and_evaluates(tmp_path):
  config = sweep_config(checkpoint_every_steps=100)
  trained = driver.train_and_evaluate(config, tmp_path, log=lambda line: None)
  evaluated = driver.evaluate_checkpoints(config, tmp_path, log=lambda line: None)
  assert evaluated['logistic']['correct'] == trained['variants']['logistic']['correct']
