"""Regression: a few steps of each course experiment against stored numbers.

The numbers pin the whole training path: data order, initialisation, model, kernels, loss
and SGD. When a change moves them on purpose (a new initialisation, another data order),
print the new ones with `python -m tests.test_regression`, paste them below, and say in the
commit message why they moved. When they move by accident, the change has a bug: compare
with its parent commit.
"""

import numpy as np
import pytest

from dnn_jax import tasks
from dnn_jax.catalog import make_config
from dnn_jax.run import loop

# (experiment, variant) -> (mean training loss of steps 1-25 and 26-50, test loss)
EXPECTED = {
    ('lenet', 'sparse'): (2.2959835529327393, 2.277559757232666, 2.262672185897827),
    ('lenet', 'full'): (2.2944507598876953, 2.2704639434814453, 2.247765064239502),
    ('linear', 'logistic'): (0.571402370929718, 0.5326520800590515, 0.5168483257293701),
    ('linear', 'sum_of_squares'): (0.3954700827598572, 0.36021944880485535, 0.3568168580532074),
    ('linear_with_replacement', 'logistic'): (62.060142517089844, 24.445049285888672,
                                              19.751514434814453),
    ('linear_with_replacement', 'sum_of_squares'): (0.9472328424453735, 1.1999382972717285,
                                                    0.9664270281791687),
}
CASES = list(EXPECTED)


def first_steps(experiment, variant, precision='float32'):
  """Mean training losses of steps 1-25 and 26-50 of seed 0 on the first 1,000 examples, and
  the mean test loss after them (at `precision`: the stored numbers are float32's)."""
  task = tasks.TRAINING[make_config(experiment).task]
  config = make_config(experiment, train_examples=1000, steps=50, precision=precision,
                       **{task.VARIANT_SETTING: variant})
  result = loop.run_variant(config, task, variant, *task.load_data(config),
                            log=lambda line: None)
  losses = result.step_losses[0]
  return float(losses[:25].mean()), float(losses[25:].mean()), result.results['test_loss'][0]


@pytest.mark.parametrize('case', CASES, ids='/'.join)
def test_first_steps_match_the_stored_numbers(case):
  np.testing.assert_allclose(first_steps(*case), EXPECTED[case], rtol=1e-5, err_msg=(
      f'{case} moved: if on purpose, update EXPECTED (see this module\'s docstring)'))


if __name__ == '__main__':
  for case in CASES:
    print(f'    {case}: {first_steps(*case)!r},')
