"""Test-set evaluation: the pure function over a split, the course's test line for every
model of a variant, and the evaluation of a saved checkpoint."""

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


evaluate_models = jax.jit(train.over_models(evaluate, (0, None, None)))


def evaluate_split(state: train.TrainState, split: data.Split, replicated: NamedSharding,
                   num_models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`evaluate` of every model on `split`, placed on the devices: numpy (summed losses,
  numbers correct, predictions per class), padding models dropped."""
  images, labels = jax.device_put(tuple(split), replicated)
  return tuple(x[:num_models] for x in jax.device_get(evaluate_models(state, images, labels)))


def evaluate_variant(config: Config, variant: str, state: train.TrainState, test_split: data.Split,
                 replicated: NamedSharding, log: Callable[[str], None]) -> dict[str, Any]:
  """Test results of every model, printed in the course's format."""
  loss_sums, corrects, predicted = evaluate_split(state, test_split, replicated, config.num_models)
  total = len(test_split.labels)
  collapsed = [bool(np.count_nonzero(p) == 1) for p in predicted]
  for i, (loss_sum, correct) in enumerate(zip(loss_sums, corrects)):
    log(f'[{variant}] {config.describe_model(i)}: '
        + report.test_line(loss_sum / total, correct, total)
        + ('  (collapsed: predicts one class only)' if collapsed[i] else ''))
  return dict(test_accuracy=[float(c / total) for c in corrects],
              test_loss=[float(s / total) for s in loss_sums],
              correct=[int(c) for c in corrects], total=total, collapsed=collapsed)


def evaluate_checkpoint(config: Config, experiment: ModuleType, variant: str, num_train: int,
                        test_split: data.Split, ckpts: checkpoints.Checkpoints, step: int | None,
                        log: Callable[[str], None]) -> dict[str, Any]:
  """Restore the latest intact (or `step`'s) checkpoint, moving nothing, and test it as
  training did; warn where that is not the run's final step."""
  ready = programs.setup(config, experiment, variant, num_train)
  restored = checkpoints.restore_training(ckpts, ready.untrained(), step, log,
                                          set_aside=False)
  if restored is None:
    raise checkpoints.NothingToEvaluate(f'no checkpoint in {ckpts.directory}')
  restored_step, final = int(restored.state.step[0]), ready.spec.total_steps
  log(f'[{variant}] restored checkpoint at step {restored_step} from {ckpts.directory}')
  if restored_step != final:
    log(f'WARNING: [{variant}] step {restored_step} is not the run\'s final step ({final}): the '
        'test lines below are of a model trained part of the way')
  return evaluate_variant(config, variant, restored.state, test_split,
                          ready.placement.replicated, log)
