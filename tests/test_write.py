"""What a run writes: results.json with the table, the table itself, metrics.jsonl, the
figures and report.md."""

import json

import numpy as np
import pytest

from dnn_jax.core import evaluation, models
from dnn_jax.results.plots import Shown
from dnn_jax.run import checkpoints, driver, placement, program
from dnn_jax.tasks import lenet
from tests.conftest import small_config
from tests.test_docs import figures_listed

COMMON_FIGURES = ('loss_curve.png', 'accuracy_curve.png', 'confusion.png', 'misclassified.png')


def assert_figures(workdir, names):
  """`names` are the figures drawn, each in report.md, and docs/runs.md lists each."""
  report = (workdir / 'report.md').read_text()
  assert {p.name for p in workdir.glob('*.png')} == set(names)
  assert set(names) <= figures_listed()
  for name in names:
    png = (workdir / name).read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 10_000, name
    assert f'![{name}]({name})' in report


def test_outputs_are_written(tmp_path):
  config = small_config(epochs=3, eval_every_epochs=2, train_examples=301)
  evaluation.score_over_models.cache_clear()  # a new function: a jit cache of its own
  program.evaluate_models_on.cache_clear()
  results = driver.train_and_evaluate(config, tmp_path, log=lambda s: None,
                                      command='python main.py --experiment=linear')
  # each variant's evaluation compiled once, whatever the number of evaluated epochs
  evaluate = program.evaluate_models_on(placement.place(config.num_models).models.mesh,
                                       config.eval_batch_size)
  assert evaluate._cache_size() == len(config.variants)
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved == json.loads(json.dumps(results))
  assert saved['variance_table'] == (tmp_path / 'variance_table.md').read_text().strip()
  assert '| 5 |' in saved['variance_table']  # seeds 3, 4, 5
  assert set(saved['statistics']) == {'logistic', 'sum_of_squares', 'difference'}
  logistic = saved['variants']['logistic']
  assert len(logistic['collapsed']) == 3
  assert saved['config']['experiment'] == 'linear'
  # evaluated after epoch 2 (every 2nd) and epoch 3 (the last), the last as the final one
  assert [row[0] is None for row in zip(*logistic['test_accuracy_per_epoch'])] == [
      True, False, False]
  assert [round(row[2] * 1991) for row in logistic['test_accuracy_per_epoch']] == logistic['correct']
  assert np.sum(logistic['confusion'], axis=(1, 2)).tolist() == [1991] * 3
  lines = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(l['variant'], l['epoch'], 'test_accuracy' in l) for l in lines] == [
      (v, e, e > 1) for v in config.variants for e in (1, 2, 3)]
  assert_figures(tmp_path, (*COMMON_FIGURES, 'weights.png'))
  report = (tmp_path / 'report.md').read_text()
  assert '```\npython main.py --experiment=linear\n```' in report
  assert saved['variance_table'] in report


@pytest.fixture(scope='module')
def lenet_run(tmp_path_factory):
  """LeNet, both C3 variants, one seed, two epochs on 500 examples: (workdir, config)."""
  workdir = tmp_path_factory.mktemp('lenet_run')
  config = small_config('lenet', c3='both', train_examples=500, epochs=2)
  driver.train_and_evaluate(config, workdir, log=lambda s: None)
  return workdir, config


@pytest.mark.slow  # lenet_run trains two LeNets: 20 s on 2 cores
def test_lenet_figures_are_written(lenet_run):
  workdir, _ = lenet_run
  assert_figures(workdir, (*COMMON_FIGURES, 'c1_kernels.png', 'c3_connections.png'))
  lines = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [(l['variant'], l['epoch']) for l in lines] == [
      ('sparse', 1), ('sparse', 2), ('full', 1), ('full', 2)]
  assert all(0.1 < l['test_accuracy_mean'] <= 1 and len(l['test_loss']) == 1 for l in lines)


@pytest.mark.slow  # lenet_run
def test_c3_figure_zeros_are_exactly_table_one(lenet_run, tmp_path):
  """The trained sparse C3's zero slices are exactly the connections Table I leaves out;
  the full C3 has none."""
  workdir, config = lenet_run
  shown = {}
  for variant in config.variants:
    ready = program.setup(config, lenet, variant, 500)
    ckpts = checkpoints.Checkpoints(workdir / 'checkpoints' / variant, 3, read_only=True)
    restored = checkpoints.restore_snapshot(ckpts, ready.untrained(), None, print)
    ckpts.close()
    assert int(restored.state.step[0]) == 10
    untested = np.full((1, 1), np.nan)
    shown[variant] = Shown(restored.state.params, ('seed 0',), untested, untested)
  figure = lenet.figures(shown, None, 'test')['c3_connections.png'](
      tmp_path / 'c3.png')
  sparse, full = (np.asarray(ax.images[0].get_array()) for ax in figure.axes)
  assert sparse.shape == full.shape == (6, 16)
  np.testing.assert_array_equal(sparse == 0, models.c3_mask() == 0)
  assert (full > 0).all()
