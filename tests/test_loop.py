"""The training loop: seed i of a many-seed run is the single run of that seed, bit for bit
at the same numerics (chunk width), to float rounding at another; the numerics are recorded."""

import numpy as np
import pytest

from dnn_jax.run import loop
from dnn_jax.tasks import lenet, linear
from tests.conftest import small_config


@pytest.fixture(scope='module')
def splits():
  return linear.load_data(small_config())


def test_seed_i_of_a_vmapped_run_equals_a_single_run_to_rounding(splits):
  many = loop.run_variant(small_config(num_seeds=3), linear, 'logistic', *splits, log=print)
  assert many.results['numerics'][0]['models_per_chunk'] == 3  # auto: all, side by side
  for i in range(3):
    one = loop.run_variant(small_config(seed=3 + i, num_seeds=1), linear, 'logistic',
                           *splits, log=print)
    assert one.results['numerics'][0]['models_per_chunk'] == 1
    np.testing.assert_allclose(one.step_losses[0], many.step_losses[i], rtol=1e-5)
    assert one.results['correct'][0] == many.results['correct'][i]
    assert one.results['test_loss'][0] == pytest.approx(many.results['test_loss'][i], rel=1e-5)


@pytest.mark.slow  # over 8 s on 2 cores
def test_at_the_same_chunk_width_seed_i_is_its_single_run_bit_for_bit_where_rounding_grows():
  """Batch-1 LeNet at the course's learning rate: a run where a rounding difference grows into
  another model (docs/runs.md: 61.64% alone, 52.23% beside 7 others at width 3); at width 1
  the 3 seeds are their single runs, bit for bit."""
  def run(**settings):
    config = small_config('lenet', batch_size=1, train_examples=300, epochs=1,
                          models_per_chunk=1, **settings)
    return loop.run_variant(config, lenet, 'sparse', *lenet.load_data(config), log=print)

  many = run(num_seeds=3, seed=7)
  for i in range(3):
    one = run(seed=7 + i)
    assert one.results['numerics'] == many.results['numerics']
    np.testing.assert_array_equal(one.step_losses[0], many.step_losses[i])
    assert one.results['test_loss'][0] == many.results['test_loss'][i]


def test_auto_evaluation_costs_at_most_a_tenth_of_training():
  assert loop.auto_eval_every(0.2, 2.2) == 1  # 9%: every epoch
  assert loop.auto_eval_every(0.3, 2.0) == 1  # 15%: tolerated
  assert loop.auto_eval_every(0.25, 1.0) == 3  # then every 3rd epoch: 8%
  assert loop.auto_eval_every(0.01, 0.0) == 1
