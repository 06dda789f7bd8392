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


# The MAP criterion's constant j (LeCun et al. 1998, section II.C), which the paper leaves
# unstated: e^-j acts as an 11th "rubbish" class whose penalty is j. With j = 0.1 the criterion
# keeps pulling the correct class's penalty towards 0 as the paper's plain MSE criterion does
# (a larger j stops the pull once it is below j), while the log term pushes up competitors
# within reach.
MAP_J = 0.1


def map_criterion(penalties: jax.Array, labels: jax.Array) -> jax.Array:
  """y_correct + log(e^-j + sum_i e^-y_i) of RBF penalties y (smallest wins), stably."""
  rubbish = jnp.full(penalties.shape[:-1] + (1,), MAP_J, penalties.dtype)
  competition = jax.nn.logsumexp(-jnp.concatenate([penalties, rubbish], axis=-1), axis=-1)
  return jnp.take_along_axis(penalties, labels[..., None], axis=-1)[..., 0] + competition


def argmin_class(penalties: jax.Array) -> jax.Array:
  return jnp.argmin(penalties, axis=-1)


def argmin_correct(penalties: jax.Array, labels: jax.Array) -> jax.Array:
  return argmin_class(penalties) == labels


OBJECTIVES: dict[str, Objective] = {
    'logistic': Objective(logistic, sign_correct, sign_class, sign_label_class, 2, math.log(2)),
    'sum_of_squares': Objective(sum_of_squares, sign_correct, sign_class, sign_label_class, 2,
                                0.5),
    'cross_entropy': Objective(cross_entropy, argmax_correct, argmax_class, lambda y: y, 10,
                               math.log(10)),
    'map': Objective(map_criterion, argmin_correct, argmin_class, lambda y: y, 10,
                     math.log(math.exp(-MAP_J) + 10)),
}
