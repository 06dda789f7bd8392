"""Test-set evaluation: the pure function over a split (loss, accuracy, confusion matrix and
each prediction), the course's test line for every model of a variant, and the evaluation of
a saved checkpoint."""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding

from dnn_jax import checkpoints, cluster, data, losses, placement, programs, report, training
from dnn_jax.config import Config


class Tested(NamedTuple):
  """A model's (or, with a leading models axis, every model's) results on a split."""
  loss_sum: Any     # summed loss
  correct: Any      # number correct
  confusion: Any    # (classes, classes): [true class, predicted class] counts
  predictions: Any  # the predicted class of each example


def evaluate(state: training.TrainState, images: jax.Array, labels: jax.Array) -> Tested:
  """`Tested` over the whole split, in batches of `eval_batch_size`."""
  spec, n = state.spec, images.shape[0]
  batch = min(spec.config.eval_batch_size, n)
  num_batches = -(-n // batch)
  pad = num_batches * batch - n
  weights = (jnp.arange(n + pad) < n).reshape(num_batches, batch)
  images = jnp.pad(images, ((0, pad), (0, 0), (0, 0), (0, 0))).reshape(
      num_batches, batch, 28, 28, 1)
  labels = jnp.pad(labels, (0, pad)).reshape(num_batches, batch)
  objective = losses.OBJECTIVES[spec.objective]

  def body(totals, xs):
    x, y, w = xs
    outputs = spec.model.apply({'params': state.params}, spec.preprocess(x))
    loss = jnp.sum(jnp.where(w, objective.loss(outputs, y), 0.0))
    correct = jnp.sum(w & objective.correct(outputs, y))
    predicted = objective.predict(outputs).astype(jnp.int32)
    confusion = totals[2].at[objective.label_class(y), predicted].add(w)
    return (totals[0] + loss, totals[1] + correct, confusion), predicted

  classes = objective.num_classes
  zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
          jnp.zeros((classes, classes), jnp.int32))
  totals, predicted = lax.scan(body, zero, (images, labels, weights))
  return Tested(*totals, predicted.reshape(-1)[:n])


_evaluate_over_models = training.over_models(evaluate, (0, None, None))
evaluate_models = jax.jit(_evaluate_over_models)


@functools.cache
def _evaluate_models_on(mesh: Mesh):
  """`evaluate_models` for the models sharded over `mesh`: each device tests its own."""
  if mesh.size == 1:
    return evaluate_models
  return jax.jit(placement.per_device(_evaluate_over_models, mesh))


def place(split: data.Split, replicated: NamedSharding) -> tuple[jax.Array, jax.Array]:
  """A split's (images, labels) on the devices, one copy each, to test on again and again."""
  return placement.put(tuple(split), replicated)


def test_models(state: training.TrainState, placed: tuple[jax.Array, jax.Array],
                num_models: int) -> Tested:
  """`evaluate` of every model on a `place`d split: numpy, padding models dropped."""
  evaluate_on = _evaluate_models_on(placed[0].sharding.mesh)
  return Tested(*(x[:num_models] for x in cluster.host(evaluate_on(state, *placed))))


def results(config: Config, variant: str, tested: Tested,
            log: Callable[[str], None]) -> dict[str, Any]:
  """Every model's test results, printed in the course's format, as results.json holds them."""
  total = int(tested.confusion[0].sum())
  collapsed = [bool(np.count_nonzero(c.sum(axis=0)) == 1) for c in tested.confusion]
  for i, (loss_sum, correct) in enumerate(zip(tested.loss_sum, tested.correct)):
    log(f'[{variant}] {config.describe_model(i)}: '
        + report.test_line(loss_sum / total, correct, total)
        + ('  (collapsed: predicts one class only)' if collapsed[i] else ''))
  return dict(test_accuracy=[float(c / total) for c in tested.correct],
              test_loss=[float(s / total) for s in tested.loss_sum],
              correct=[int(c) for c in tested.correct], total=total, collapsed=collapsed,
              confusion=tested.confusion.tolist())


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
  restored_step, final = int(cluster.host(restored.state.step)[0]), ready.spec.total_steps
  log(f'[{variant}] restored checkpoint at step {restored_step} from {ckpts.directory}')
  if restored_step != final:
    log(f'WARNING: [{variant}] step {restored_step} is not the run\'s final step ({final}): the '
        'test lines below are of a model trained part of the way')
  tested = test_models(restored.state, place(test_split, ready.placement.replicated),
                       config.num_models)
  return results(config, variant, tested, log)
