"""The training loop of one variant: all its models as one compiled program, chunk after chunk,
checkpointed, stoppable, watched for divergence, then tested."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable, Sequence

import jax
import numpy as np

from dnn_jax import checkpoints, data, evaluate, interrupts, losses, models, programs, train
from dnn_jax.config import Config

# A model whose mean training loss over an epoch is this many times its initial model's test
# loss (or a uniform prediction's, if larger) has diverged. Not less: on raw pixels the linear
# logistic loss grows in proportion to the learning rate at an unchanged 96% accuracy (its
# weights scale with it; measured: 11x its start at lr 1e-3, 1,000x at lr 0.1), where a
# learning rate of 1e30 takes losses to 1e31.
DIVERGENCE_FACTOR = 1e6


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite, or rose far above where it started."""


def train_variant(config: Config, experiment: ModuleType, variant: str, train_split: data.Split,
                  test_split: data.Split, log: Callable[[str], None],
                  ckpts: checkpoints.Checkpoints | None = None,
                  stops: Sequence[int] = ()) -> dict[str, Any]:
  """Train the `config.num_models` models of one variant as one program; test them.

  With `ckpts`, resumes from the newest intact checkpoint and saves one after every call
  of the epoch function. A signal number in `stops` (`interrupts.stop_requests`) stops it
  with `interrupts.Interrupted` before training or after the chunk in progress. A diverging
  model stops a single-value run (`TrainingDiverged`); in a sweep it is marked and the others
  go on. Returns the variant's results, with the per-step training losses under 'step_losses'.
  """
  program = programs.compile_program(config, experiment, variant, train_split)
  spec, num_models = program.setup.spec, config.num_models
  num_params = models.num_trainable_params(spec.model,
                                           jax.tree.map(lambda p: p[0], program.state.params))
  log(f'[{variant}] {num_params:,} trainable parameters; {num_models} model(s), '
      f'{spec.models_per_chunk} side by side, compiled in {program.compile_time_s:.2f}s')
  replicated = program.setup.placement.replicated
  initial_loss = np.maximum(
      evaluate.evaluate_split(program.state, test_split, replicated, num_models)[0]
      / len(test_split.labels), losses.OBJECTIVES[spec.objective].chance_loss)
  training = program.setup.untrained()._replace(state=program.state)
  if ckpts:
    training = checkpoints.restore_training(ckpts, training, None, log) or training
  state, data_keys, history = training
  step = int(state.step[0])
  if step:  # checkpoints are written after a chunk, so only a restored state is past 0
    log(f'[{variant}] Resuming from checkpoint at epoch {step // spec.steps_per_epoch}, '
        f'step {step}')

  if stops and step < spec.total_steps:
    raise interrupts.Interrupted(
        f'[{variant}] interrupted by signal {stops[0]} before training on from step {step}: '
        + (f'its checkpoints are in {ckpts.directory}' if step else 'no checkpoint of it yet'),
        stops[0])
  diverged = _diverged(history, initial_loss, spec, step, num_models)
  while step < spec.total_steps:
    epoch = step // spec.steps_per_epoch
    start = time.perf_counter()
    state, chunk_losses = program.epoch_fn(state, train.epoch_keys(data_keys, epoch),
                                           program.images, program.labels)
    interrupts.wait_until_ready(chunk_losses)
    new_step = int(state.step[0])
    history.epoch_times[epoch] += time.perf_counter() - start
    history.step_losses[:, step:new_step] = np.asarray(chunk_losses)[:, :new_step - step]
    step = new_step
    now_diverged = _diverged(history, initial_loss, spec, step, num_models)
    for model in np.flatnonzero(now_diverged & ~diverged):
      message = _divergence(history, initial_loss, spec, step, model, config, variant)
      if len(config.grid) == 1:
        raise TrainingDiverged(message)
      log(message + '; marked, the other models go on')
    diverged = now_diverged
    if step % spec.steps_per_epoch == 0 or step == spec.total_steps:
      epoch_losses = history.step_losses[:num_models, epoch * spec.steps_per_epoch:step]
      log(f'[{variant}] epoch {epoch + 1}: train loss '
          f'{epoch_losses[~diverged].mean() if not diverged.all() else np.nan:.4f}, '
          f'{history.epoch_times[epoch]:.2f}s ({history.epoch_times.sum():.2f}s elapsed)')
    if ckpts:
      checkpoints.save_training(ckpts, step, checkpoints.Training(state, data_keys, history))
    if stops:
      raise interrupts.Interrupted(
          f'[{variant}] interrupted by signal {stops[0]} at epoch {epoch + 1}, step {step}: '
          + (f'checkpoint saved in {ckpts.directory}' if ckpts else 'no checkpoint (no workdir)'),
          stops[0])
  train_time = float(history.epoch_times.sum())
  log(f'[{variant}] trained in {train_time:.2f}s steady-state (+{program.compile_time_s:.2f}s '
      'compile)')
  tested = evaluate.evaluate_variant(config, variant, state, test_split, replicated, log)
  return dict(
      num_params=num_params, **tested, diverged=diverged.tolist(),
      train_loss_per_epoch=history.epoch_losses(num_models, spec.steps_per_epoch).tolist(),
      compile_time_s=program.compile_time_s, train_time_s=train_time,
      epoch_time_s=history.epoch_times.tolist(), models_per_chunk=spec.models_per_chunk,
      peak_device_memory_bytes=(jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use'),
      xla_memory_estimate_bytes=program.memory_estimate_bytes,
      step_losses=history.step_losses[:num_models])


def _finished_epochs(spec: train.TrainSpec, step: int) -> int:
  ends = np.minimum(np.arange(1, spec.num_epochs + 1) * spec.steps_per_epoch, spec.total_steps)
  return int(np.sum(ends <= step))


def _exceeded(history: checkpoints.History, initial_loss: np.ndarray, spec: train.TrainSpec,
              step: int, num_models: int) -> np.ndarray:
  """(models, finished epochs): whether each epoch's mean loss is over DIVERGENCE_FACTOR
  times the model's `initial_loss`."""
  means = history.epoch_losses(num_models, spec.steps_per_epoch)[:, :_finished_epochs(spec, step)]
  return means > DIVERGENCE_FACTOR * initial_loss[:, None]


def _diverged(history: checkpoints.History, initial_loss: np.ndarray, spec: train.TrainSpec,
              step: int, num_models: int) -> np.ndarray:
  """Per model, up to `step`: a non-finite loss, or a finished epoch far above its start."""
  non_finite = (~np.isfinite(history.step_losses[:num_models, :step])).any(axis=1)
  return non_finite | _exceeded(history, initial_loss, spec, step, num_models).any(axis=1)


def _divergence(history: checkpoints.History, initial_loss: np.ndarray, spec: train.TrainSpec,
                step: int, model: int, config: Config, variant: str) -> str:
  """One line on how `model` diverged, with a learning rate to try."""
  losses_so_far = history.step_losses[model, :step]
  bad = np.flatnonzero(~np.isfinite(losses_so_far))
  if bad.size:
    what = (f'training loss became {losses_so_far[bad[0]]} at epoch '
            f'{bad[0] // spec.steps_per_epoch + 1}, step {bad[0] + 1}')
  else:
    epoch = int(np.argmax(_exceeded(history, initial_loss, spec, step, config.num_models)[model]))
    mean = history.epoch_losses(config.num_models, spec.steps_per_epoch)[model, epoch]
    what = (f'training diverged: the mean loss of epoch {epoch + 1} is {mean:.4g}, over '
            f'{DIVERGENCE_FACTOR:g}x its start ({initial_loss[model]:.4g})')
  learning_rate = config.model(model)[0]['learning_rate']
  return (f'[{variant}] {what} ({config.describe_model(model)}); try '
          f'--learning_rate={learning_rate / 10:g}')
