"""The training loop of one variant: all its seeds as one compiled program, chunk after chunk,
checkpointed, stoppable, then tested."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable, Sequence

import jax
import numpy as np

from dnn_jax import checkpoints, data, evaluate, interrupts, models, programs, train
from dnn_jax.config import Config


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite."""


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
  num_epochs = config.num_epochs(len(train_split.labels))
  training = checkpoints.Training(program.state, program.setup.data_keys, checkpoints.History.empty(
      program.setup.placement.padded_seeds, spec.total_steps, num_epochs))
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
    state, losses = program.epoch_fn(state, train.epoch_keys(data_keys, epoch), program.images,
                                     program.labels)
    interrupts.wait_until_ready(losses)
    new_step = int(state.step[0])
    losses = np.asarray(losses)[:, :new_step - step]
    history.epoch_times[epoch] += time.perf_counter() - start
    _check_finite(losses[:config.num_seeds], variant, config.seed, step, spec.steps_per_epoch)
    history.step_losses[:, step:new_step] = losses
    step = new_step
    if ckpts:
      checkpoints.save_training(ckpts, step, checkpoints.Training(state, data_keys, history))
    if step % spec.steps_per_epoch == 0 or step == spec.total_steps:
      first = epoch * spec.steps_per_epoch
      log(f'[{variant}] epoch {epoch + 1}: train loss '
          f'{history.step_losses[:config.num_seeds, first:step].mean():.4f}, '
          f'{history.epoch_times[epoch]:.2f}s ({history.epoch_times.sum():.2f}s elapsed)')
    if stops:
      raise interrupts.Interrupted(
          f'[{variant}] interrupted by signal {stops[0]} at epoch {epoch + 1}, step {step}: '
          + (f'checkpoint saved in {ckpts.directory}' if ckpts else 'no checkpoint (no workdir)'),
          stops[0])
  train_time = float(history.epoch_times.sum())
  log(f'[{variant}] trained in {train_time:.2f}s steady-state (+{program.compile_time_s:.2f}s '
      'compile)')
  tested = evaluate.evaluate_variant(config, variant, state, test_split,
                                     program.setup.placement.replicated, log)
  return dict(
      num_params=num_params, **tested,
      train_loss_per_epoch=history.epoch_losses(config.num_seeds, spec.steps_per_epoch).tolist(),
      compile_time_s=program.compile_time_s, train_time_s=train_time,
      epoch_time_s=history.epoch_times.tolist(),
      peak_device_memory_bytes=(jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use'),
      xla_memory_estimate_bytes=program.memory_estimate_bytes,
      step_losses=history.step_losses[:config.num_seeds])


def _check_finite(losses: np.ndarray, variant: str, first_seed: int, first_step: int,
                  steps_per_epoch: int) -> None:
  """Raise TrainingDiverged naming the epoch, step and seed of the first non-finite loss."""
  bad = ~np.isfinite(losses)
  if bad.any():
    seed = int(np.argmax(bad.any(axis=1)))
    step = first_step + int(np.argmax(bad[seed]))
    raise TrainingDiverged(
        f'[{variant}] training loss became {losses[seed, step - first_step]} at epoch '
        f'{step // steps_per_epoch + 1}, step {step + 1} (seed {first_seed + seed}); '
        'try a smaller --learning_rate')
