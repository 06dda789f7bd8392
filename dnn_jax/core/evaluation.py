"""Test-set evaluation, pure: a model's loss, accuracy, confusion matrix and each prediction over
a split, in batches; and the same over a models axis."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from dnn_jax.core import losses, training


class Scores(NamedTuple):
  """A model's (or, with a leading models axis, every model's) results on a split."""
  loss_sum: Any     # summed loss
  correct: Any      # number correct
  confusion: Any    # (classes, classes): [true class, predicted class] counts
  predictions: Any  # the predicted class of each example


def score(state: training.TrainState, images: jax.Array, labels: jax.Array,
          batch_size: int) -> Scores:
  """`Scores` of the model in `state` over the whole split, `batch_size` examples at a time."""
  spec, n = state.spec, images.shape[0]
  batch = min(batch_size, n)
  num_batches = -(-n // batch)
  pad = num_batches * batch - n
  weights = (jnp.arange(n + pad) < n).reshape(num_batches, batch)
  images = jnp.pad(images, ((0, pad), (0, 0), (0, 0), (0, 0))).reshape(
      num_batches, batch, *images.shape[1:])
  labels = jnp.pad(labels, (0, pad)).reshape(num_batches, batch)
  objective = losses.OBJECTIVES[spec.objective]

  def body(totals, xs):
    x, y, w = xs
    outputs = spec.apply(state.params, x)
    loss = jnp.sum(jnp.where(w, objective.loss(outputs, y), 0.0))
    correct = jnp.sum(w & objective.correct(outputs, y))
    predicted = objective.predict(outputs).astype(jnp.int32)
    confusion = totals[2].at[objective.label_class(y), predicted].add(w)
    return (totals[0] + loss, totals[1] + correct, confusion), predicted

  classes = objective.num_classes
  zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
          jnp.zeros((classes, classes), jnp.int32))
  totals, predicted = lax.scan(body, zero, (images, labels, weights))
  return Scores(*totals, predicted.reshape(-1)[:n])


@functools.cache
def score_over_models(batch_size: int):
  """`score` of every model of a TrainState with a models axis (`training.over_models`),
  unjitted: the caller places it on its devices."""
  return training.over_models(functools.partial(score, batch_size=batch_size),
                              (0, None, None))
