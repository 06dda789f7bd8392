"""The training loop: seed i of a vmapped run is the single run of that seed."""

import numpy as np
import pytest

from dnn_jax.run import loop
from dnn_jax.tasks import linear
from tests.conftest import small_config


@pytest.fixture(scope='module')
def splits():
  return linear.load_data(small_config())


def test_seed_i_of_a_vmapped_run_equals_a_single_run(splits):
  many = loop.run_variant(small_config(num_seeds=3), linear, 'logistic', *splits, log=print)
  for i in range(3):
    one = loop.run_variant(small_config(seed=3 + i, num_seeds=1), linear, 'logistic',
                           *splits, log=print)
    np.testing.assert_allclose(one.step_losses[0], many.step_losses[i], rtol=1e-5)
    assert one.results['correct'][0] == many.results['correct'][i]
    assert one.results['test_loss'][0] == pytest.approx(many.results['test_loss'][i], rel=1e-5)


def test_auto_evaluation_costs_at_most_a_tenth_of_training():
  assert loop.auto_eval_every(0.2, 2.2) == 1  # 9%: every epoch
  assert loop.auto_eval_every(0.3, 2.0) == 1  # 15%: tolerated
  assert loop.auto_eval_every(0.25, 1.0) == 3  # then every 3rd epoch: 8%
  assert loop.auto_eval_every(0.01, 0.0) == 1
