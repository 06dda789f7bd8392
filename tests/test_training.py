"""The pure training functions: jit/non-jit agreement, determinism, no recompilation,
micro-batches, sampling, and the accuracy claims on the real MNIST."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.core import data, evaluation, kernels, models, training
from tests.conftest import init, init_models, make_spec

train_epoch_models = jax.jit(training.over_models(training.train_epoch, (0, 0, None, None)),
                             donate_argnums=0)


def linear_spec(steps_per_epoch=20, total_steps=None, objective='logistic', **overrides):
  return make_spec(models.LinearClassifier(), objective, steps_per_epoch, total_steps, **overrides)


def lenet_spec(batch_size, steps, c3='sparse', **overrides):
  return make_spec(models.LeNet5(c3=c3, kernels=kernels.default_kernels()), 'cross_entropy',
                   steps, experiment='lenet', batch_size=batch_size, **overrides)


@pytest.fixture(scope='module')
def binary_train(mnist_train):
  return data.binary_4_vs_9(mnist_train)


class TrainStepTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_and_non_jit_steps_agree(self):
    # The linear model: run eagerly, LeNet's step compiles its many ops one by one (7 s).
    spec = linear_spec(steps_per_epoch=1, batch_size=8, micro_batches=2)
    state = init(jax.random.key(0), spec)
    images = jax.random.randint(jax.random.key(1), (8, 28, 28, 1), 0, 256).astype(jnp.uint8)
    labels = jnp.where(jnp.arange(8) % 3 == 0, 1, -1)
    reference, reference_loss = training.train_step(state, (images, labels))
    new_state, loss = self.variant(training.train_step)(state, (images, labels))
    chex.assert_trees_all_close(new_state.params, reference.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, reference_loss, rtol=1e-5)
    assert int(new_state.step) == 1
    chex.assert_trees_all_equal_shapes(new_state.params, state.params)


@pytest.mark.parametrize('micro_batches', [3, pytest.param(5, marks=pytest.mark.slow)])
def test_micro_batches_change_neither_loss_nor_step(micro_batches):
  images = jax.random.randint(jax.random.key(1), (7, 28, 28, 1), 0, 256).astype(jnp.uint8)
  batch = images, jnp.arange(7) % 10  # 7 = 3 + 2 + 2: unequal slices
  step = jax.jit(training.train_step)
  state = init(jax.random.key(0), lenet_spec(batch_size=7, steps=1, micro_batches=1))
  whole, whole_loss = step(state, batch)
  split = init(jax.random.key(0), lenet_spec(batch_size=7, steps=1, micro_batches=micro_batches))
  split, split_loss = step(split, batch)
  chex.assert_trees_all_close(split.params, whole.params, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(split_loss, whole_loss, rtol=1e-6)
  assert not np.allclose(split.params['F7']['bias'], state.params['F7']['bias'])  # a real step


def run_epochs(spec, split, epochs, seed=0):
  init_keys, data_keys = training.seed_keys(seed, 1)
  state = init_models(init_keys, spec)
  for epoch in range(epochs):
    state, step_losses = train_epoch_models(
        state, training.epoch_keys(data_keys, epoch), split.images, split.labels)
  return state, step_losses


def test_same_seed_same_result_and_other_seed_differs(binary_train):
  split = data.first(binary_train, 200)
  spec = linear_spec(steps_per_epoch=100)
  a, _ = run_epochs(spec, split, 2)
  b, _ = run_epochs(spec, split, 2)
  c, _ = run_epochs(spec, split, 2, seed=1)
  chex.assert_trees_all_equal(a.params, b.params)
  assert not np.allclose(a.params['linear']['kernel'], c.params['linear']['kernel'])


def test_epochs_reuse_one_compilation(binary_train):
  split = data.first(binary_train, 100)
  spec = linear_spec(steps_per_epoch=50)
  epoch_fn = jax.jit(training.train_epoch)  # jit wrappers of one function share a cache
  state = init(jax.random.key(0), spec)
  cache_sizes = []
  for epoch in range(3):
    state, _ = epoch_fn(state, jax.random.fold_in(jax.random.key(1), epoch),
                        split.images, split.labels)
    cache_sizes.append(epoch_fn._cache_size())
  assert cache_sizes[0] == cache_sizes[1] == cache_sizes[2]  # compiled once, at epoch 1
  assert int(state.step) == 150


def test_shuffle_visits_every_example_once_per_epoch():
  spec = linear_spec(steps_per_epoch=10, batch_size=3)
  indices = np.asarray(training.epoch_indices(jax.random.key(0), spec, 30))
  assert indices.shape == (10, 3)
  np.testing.assert_array_equal(np.sort(indices.ravel()), np.arange(30))
  replacement = linear_spec(steps_per_epoch=1000, sampling='with_replacement')
  draws = np.asarray(training.epoch_indices(jax.random.key(0), replacement, 30)).ravel()
  assert draws.min() >= 0 and draws.max() < 30 and len(np.unique(draws)) == 30
  assert np.bincount(draws).max() > 1  # repeats: drawn with replacement


def test_a_partial_last_epoch_stops_at_total_steps(binary_train):
  split = data.first(binary_train, 50)
  spec = linear_spec(steps_per_epoch=50, total_steps=70, sampling='with_replacement')
  state, _ = run_epochs(spec, split, 2)
  assert int(state.step[0]) == 70
  exact, _ = run_epochs(linear_spec(steps_per_epoch=35, total_steps=70,
                                    sampling='with_replacement'), split, 2)
  assert int(exact.step[0]) == 70


def evaluate_accuracy(state, test):
  correct = jax.jit(evaluation.score_over_models(100))(state, test.images, test.labels).correct
  return float(correct[0]) / len(test.labels)


@pytest.mark.parametrize('objective', ['logistic', 'sum_of_squares'])
def test_linear_reaches_94_percent_in_three_epochs(binary_train, mnist_test, objective):
  n = len(binary_train.labels)
  spec = linear_spec(steps_per_epoch=n, total_steps=3 * n, objective=objective)
  state, _ = run_epochs(spec, binary_train, 3)
  assert evaluate_accuracy(state, data.binary_4_vs_9(mnist_test)) >= 0.94


@pytest.mark.parametrize('c3', ['sparse', pytest.param('full', marks=pytest.mark.slow)])
def test_lenet_reaches_85_percent_after_300_steps(mnist_train, mnist_test, c3):
  spec = lenet_spec(batch_size=100, steps=300, c3=c3)
  state, _ = run_epochs(spec, data.first(mnist_train, 30_000), 1)
  assert evaluate_accuracy(state, mnist_test) >= 0.85
