"""Per-example losses and correctness, paired as the `Objective` of a training run."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class Objective(NamedTuple):
  """What a model's outputs are judged by: per-example `loss` and boolean `correct`, the
  class index each output predicts and each label is (of `num_classes`), for confusion
  matrices and to spot collapsed models, and the loss of a uniform prediction (a zero
  output), to spot diverged ones."""
  loss: Callable[[jax.Array, jax.Array], jax.Array]
  correct: Callable[[jax.Array, jax.Array], jax.Array]
  predict: Callable[[jax.Array], jax.Array]
  label_class: Callable[[jax.Array], jax.Array]
  num_classes: int
  chance_loss: float


def logistic(f: jax.Array, y: jax.Array) -> jax.Array:
  """-log sigmoid(y f) for labels y in {-1, +1}; stable for any |f| (softplus(-y f))."""
  return optax.sigmoid_binary_cross_entropy(f, (y + 1) / 2)


def sum_of_squares(f: jax.Array, y: jax.Array) -> jax.Array:
  """Squared error of the two-class softmax (s(f), s(-f)) against the one-hot target.

  The course's form, with s the sigmoid and y in {-1, +1}:
    0.5(1-y)[(1-s(-f))^2 + s(f)^2] + 0.5(1+y)[(1-s(f))^2 + s(-f)^2].
  Since 1 - s(t) = s(-t), both brackets equal 2 s(-y f)^2, which is what we compute:
  no cancellation in 1 - s(.), finite value and gradient for any |f|.
  """
  return 2.0 * jax.nn.sigmoid(-y * f) ** 2


def sign_correct(f: jax.Array, y: jax.Array) -> jax.Array:
  """The course's rule for the linear model: f * y >= 0 counts as correct."""
  return f * y >= 0


def sign_class(f: jax.Array) -> jax.Array:
  """Class index of the linear model's prediction: 1 for f >= 0 (+1), else 0 (-1)."""
  return (f >= 0).astype(jnp.int32)


def sign_label_class(y: jax.Array) -> jax.Array:
  """Class index of a label -1 (0) or +1 (1)."""
  return (y > 0).astype(jnp.int32)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def argmax_class(logits: jax.Array) -> jax.Array:
  return jnp.argmax(logits, axis=-1)


def argmax_correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return argmax_class(logits) == labels


OBJECTIVES: dict[str, Objective] = {
    'logistic': Objective(logistic, sign_correct, sign_class, sign_label_class, 2, math.log(2)),
    'sum_of_squares': Objective(sum_of_squares, sign_correct, sign_class, sign_label_class, 2,
                                0.5),
    'cross_entropy': Objective(cross_entropy, argmax_correct, argmax_class, lambda y: y, 10,
                               math.log(10)),
}
