"""Test-set evaluation: the pure function over a split, the course's test line for every
seed of a variant, and the evaluation of a saved checkpoint."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding

from dnn_jax import checkpoints, data, losses, programs, report, train
from dnn_jax.config import Config


def evaluate(state: train.TrainState, images: jax.Array,
             labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(summed loss, number correct, predictions per class) over the whole split, in batches
  of `eval_batch_size`."""
  spec, n = state.spec, images.shape[0]
  batch = min(spec.config.eval_batch_size, n)
  num_batches = -(-n // batch)
  pad = num_batches * batch - n
  weights = (jnp.arange(n + pad) < n).reshape(num_batches, batch)
  images = jnp.pad(images, ((0, pad), (0, 0), (0, 0), (0, 0))).reshape(num_batches, batch, 28, 28, 1)
  labels = jnp.pad(labels, (0, pad)).reshape(num_batches, batch)
  objective = losses.OBJECTIVES[spec.objective]

  def body(totals, xs):
    x, y, w = xs
    outputs = spec.model.apply({'params': state.params}, spec.preprocess(x))
    loss = jnp.sum(jnp.where(w, objective.loss(outputs, y), 0.0))
    correct = jnp.sum(w & objective.correct(outputs, y))
    predicted = jnp.zeros(objective.num_classes, jnp.int32).at[objective.predict(outputs)].add(w)
    return (totals[0] + loss, totals[1] + correct, totals[2] + predicted), None

  zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
          jnp.zeros(objective.num_classes, jnp.int32))
  return lax.scan(body, zero, (images, labels, weights))[0]


evaluate_seeds = jax.jit(train.over_seeds(evaluate, (0, None, None)))


def evaluate_variant(config: Config, variant: str, state: train.TrainState, test_split: data.Split,
                 replicated: NamedSharding, log: Callable[[str], None]) -> dict[str, Any]:
  """Test results of every seed, printed in the course's format."""
  test_images, test_labels = jax.device_put(tuple(test_split), replicated)
  loss_sums, corrects, predicted = (
      x[:config.num_seeds] for x in jax.device_get(evaluate_seeds(state, test_images, test_labels)))
  total = len(test_labels)
  collapsed = [bool(np.count_nonzero(p) == 1) for p in predicted]
  for i, (loss_sum, correct) in enumerate(zip(loss_sums, corrects)):
    log(f'[{variant}] seed {config.seed + i}: ' + report.test_line(loss_sum / total, correct, total)
        + ('  (collapsed: predicts one class only)' if collapsed[i] else ''))
  return dict(test_accuracy=[float(c / total) for c in corrects],
              test_loss=[float(s / total) for s in loss_sums],
              correct=[int(c) for c in corrects], total=total, collapsed=collapsed)


def evaluate_checkpoint(config: Config, experiment: ModuleType, variant: str, num_train: int,
                        test_split: data.Split, ckpts: checkpoints.Checkpoints, step: int | None,
                        log: Callable[[str], None]) -> dict[str, Any]:
  """Restore the latest (or `step`'s) checkpoint and test it as training did."""
  ready = programs.setup(config, experiment, variant, num_train)
  like = checkpoints.Training(ready.abstract_state, ready.data_keys, checkpoints.History.empty(
      ready.placement.padded_seeds, ready.spec.total_steps, config.num_epochs(num_train)))
  restored = checkpoints.restore_training(ckpts, like, step, log)
  if restored is None:
    raise checkpoints.NothingToEvaluate(f'no checkpoint in {ckpts.directory}')
  log(f'[{variant}] restored checkpoint at step {int(restored.state.step[0])} from '
      f'{ckpts.directory}')
  return evaluate_variant(config, variant, restored.state, test_split,
                          ready.placement.replicated, log)
