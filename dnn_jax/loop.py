"""The training loop of one variant: all its seeds as one compiled program, chunk after chunk,
checkpointed, stoppable, then tested."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable, Sequence

import jax
import numpy as np

from dnn_jax import checkpoints, data, evaluate, interrupts, losses, models, programs, train
from dnn_jax.config import Config


# A seed whose mean training loss over an epoch is this many times its initial model's test
# loss (or a uniform prediction's, if larger) has diverged. The raw-pixel logistic protocol
# trains at about 0.5x of where it started; learning rates 100x too large reach 100x and more.
DIVERGENCE_FACTOR = 10


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite, or rose far above where it started."""


def train_variant(config: Config, experiment: ModuleType, variant: str, train_split: data.Split,
                  test_split: data.Split, log: Callable[[str], None],
                  ckpts: checkpoints.Checkpoints | None = None,
                  stops: Sequence[int] = ()) -> dict[str, Any]:
  """Train `config.num_seeds` seeds of one variant as one program; test them.

  With `ckpts`, resumes from the newest intact checkpoint and saves one after every call
  of the epoch function. A signal number in `stops` (`interrupts.stop_requests`) stops it
  with `interrupts.Interrupted` before training or after the chunk in progress. Returns the
  variant's results, with the per-step training losses under 'step_losses'.
  """
  program = programs.compile_program(config, experiment, variant, train_split)
  spec = program.setup.spec
  num_params = models.num_trainable_params(spec.model,
                                           jax.tree.map(lambda p: p[0], program.state.params))
  log(f'[{variant}] {num_params:,} trainable parameters; {config.num_seeds} seed(s) compiled '
      f'in {program.compile_time_s:.2f}s')
  replicated = program.setup.placement.replicated
  initial_loss = np.maximum(
      evaluate.evaluate_split(program.state, test_split, replicated, config.num_seeds)[0]
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
  while step < spec.total_steps:
    epoch = step // spec.steps_per_epoch
    start = time.perf_counter()
    state, chunk_losses = program.epoch_fn(state, train.epoch_keys(data_keys, epoch),
                                           program.images, program.labels)
    interrupts.wait_until_ready(chunk_losses)
    new_step = int(state.step[0])
    chunk_losses = np.asarray(chunk_losses)[:, :new_step - step]
    history.epoch_times[epoch] += time.perf_counter() - start
    _check_finite(chunk_losses[:config.num_seeds], variant, config.seed, step,
                  spec.steps_per_epoch)
    history.step_losses[:, step:new_step] = chunk_losses
    step = new_step
    if step % spec.steps_per_epoch == 0 or step == spec.total_steps:
      epoch_losses = history.step_losses[:config.num_seeds, epoch * spec.steps_per_epoch:step]
      log(f'[{variant}] epoch {epoch + 1}: train loss {epoch_losses.mean():.4f}, '
          f'{history.epoch_times[epoch]:.2f}s ({history.epoch_times.sum():.2f}s elapsed)')
      _check_not_diverged(epoch_losses.mean(axis=1), initial_loss, variant, config, epoch)
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
      num_params=num_params, **tested,
      train_loss_per_epoch=history.epoch_losses(config.num_seeds, spec.steps_per_epoch).tolist(),
      compile_time_s=program.compile_time_s, train_time_s=train_time,
      epoch_time_s=history.epoch_times.tolist(),
      peak_device_memory_bytes=(jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use'),
      xla_memory_estimate_bytes=program.memory_estimate_bytes,
      step_losses=history.step_losses[:config.num_seeds])


def _check_not_diverged(epoch_loss: np.ndarray, initial_loss: np.ndarray, variant: str,
                        config: Config, epoch: int) -> None:
  """Raise TrainingDiverged naming the first seed whose mean loss over `epoch` is over
  DIVERGENCE_FACTOR times `initial_loss`, with a learning rate to try."""
  bad = epoch_loss > DIVERGENCE_FACTOR * initial_loss
  if bad.any():
    seed = int(np.argmax(bad))
    raise TrainingDiverged(
        f'[{variant}] training diverged: the mean loss of epoch {epoch + 1} is '
        f'{epoch_loss[seed]:.4g}, over {DIVERGENCE_FACTOR}x its start ({initial_loss[seed]:.4g}) '
        f'(seed {config.seed + seed}); try --learning_rate={config.learning_rate / 10:g}')


def _check_finite(step_losses: np.ndarray, variant: str, first_seed: int, first_step: int,
                  steps_per_epoch: int) -> None:
  """Raise TrainingDiverged naming the epoch, step and seed of the first non-finite loss."""
  bad = ~np.isfinite(step_losses)
  if bad.any():
    seed = int(np.argmax(bad.any(axis=1)))
    step = first_step + int(np.argmax(bad[seed]))
    raise TrainingDiverged(
        f'[{variant}] training loss became {step_losses[seed, step - first_step]} at epoch '
        f'{step // steps_per_epoch + 1}, step {step + 1} (seed {first_seed + seed}); '
        'try a smaller --learning_rate')
