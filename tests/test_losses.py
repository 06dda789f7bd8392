"""The losses against hand-computed values, and their stability at |f| = 1e4."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.core import losses


def sigmoid(t):
  return 1 / (1 + math.exp(-t))


def course_sum_of_squares(f, y):
  """The course's formula, term by term."""
  s = sigmoid
  return (0.5 * (1 - y) * ((1 - s(-f)) ** 2 + s(f) ** 2)
          + 0.5 * (1 + y) * ((1 - s(f)) ** 2 + s(-f) ** 2))


@pytest.mark.parametrize('f', [-3.0, -0.5, 0.0, 0.7, 2.5])
@pytest.mark.parametrize('y', [-1, 1])
def test_losses_match_hand_formulas(f, y):
  fa, ya = jnp.array([f]), jnp.array([y])
  assert float(losses.logistic(fa, ya)[0]) == pytest.approx(-math.log(sigmoid(y * f)), rel=1e-6)
  assert float(losses.sum_of_squares(fa, ya)[0]) == pytest.approx(
      course_sum_of_squares(f, y), rel=1e-5, abs=1e-7)


def test_hand_values():
  # -log sigmoid(0) = log 2; sum of squares at f = 0: 2 * (1/2)^2 = 0.5.
  assert float(losses.logistic(jnp.array([0.0]), jnp.array([1]))[0]) == pytest.approx(math.log(2))
  assert float(losses.sum_of_squares(jnp.array([0.0]), jnp.array([-1]))[0]) == pytest.approx(0.5)


@pytest.mark.parametrize('name', ['logistic', 'sum_of_squares'])
@pytest.mark.parametrize('f', [1e4, -1e4])
@pytest.mark.parametrize('y', [-1, 1])
def test_stable_at_large_f(name, f, y):
  loss = losses.OBJECTIVES[name].loss
  value, grad = jax.value_and_grad(lambda f: loss(f, jnp.array([y]))[0])(jnp.array([f]))
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  right = y * f > 0
  if name == 'logistic':
    assert float(value) == pytest.approx(0.0 if right else 1e4, abs=1e-3)
  else:
    assert float(value) == pytest.approx(0.0 if right else 2.0)


def test_cross_entropy_and_argmax():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
  labels = jnp.array([0, 2])
  expected = [-(2 - math.log(math.e ** 2 + 1 + math.e ** -1)), math.log(3)]
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected, rtol=1e-6)
  np.testing.assert_array_equal(losses.argmax_correct(logits, labels), [True, False])


def test_sign_correct_counts_zero_as_correct():
  np.testing.assert_array_equal(
      losses.sign_correct(jnp.array([0.0, 1.0, -1.0, 2.0]), jnp.array([1, -1, -1, 1])),
      [True, False, True, True])


@pytest.mark.parametrize('name', sorted(losses.OBJECTIVES))
def test_chance_loss_is_the_loss_of_a_zero_output(name):
  objective = losses.OBJECTIVES[name]
  shape = (4,) if objective.num_classes == 2 else (4, objective.num_classes)
  labels = jnp.array([-1, 1, -1, 1]) if objective.num_classes == 2 else jnp.arange(4)
  np.testing.assert_allclose(objective.loss(jnp.zeros(shape), labels), objective.chance_loss,
                             rtol=1e-6)
