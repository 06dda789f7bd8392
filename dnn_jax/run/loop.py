"""The training loop of one variant: all its models as one compiled program, call after call,
evaluated after epochs, checkpointed and logged after each call, stoppable, watched for
divergence; and what it leaves (`VariantResult`)."""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from dnn_jax.config import Config
from dnn_jax.core import data, evaluation, losses, models, platform, training
from dnn_jax.errors import Interrupted, TrainingDiverged
from dnn_jax.results import scores
from dnn_jax.run import checkpoints, cluster, interrupts, metrics, program, progress
from dnn_jax.run.history import History

# A model whose mean training loss over an epoch is this many times its initial model's test
# loss (or a uniform prediction's, if larger) has diverged. Not less: on raw pixels the linear
# logistic loss grows in proportion to the learning rate at an unchanged accuracy (its weights
# scale with it), where a runaway learning rate takes the loss up by orders of magnitude.
DIVERGENCE_FACTOR = 1e6
# With --eval_every_epochs=0, the models are evaluated every epoch while that takes at most
# EVAL_SHARE_TOLERATED of an epoch's training time (a noisy machine may push a share near
# EVAL_SHARE over it), else every k-th epoch, k keeping it under EVAL_SHARE.
EVAL_SHARE, EVAL_SHARE_TOLERATED = 0.10, 0.15


class VariantResult(NamedTuple):
  """A variant's results (what results.json holds) and the arrays its figures draw."""
  results: dict[str, Any]
  step_losses: np.ndarray       # (models, steps)
  test_accuracy: np.ndarray     # (models, epochs), NaN where an epoch was not tested
  train_accuracy: np.ndarray    # (models, epochs), NaN where not evaluated (task.TRAIN_ERROR)
  params: Any                   # every model's parameters, numpy, with the models axis
  predictions: np.ndarray       # (models, test examples): the class each model predicts


def run_variant(config: Config, task: ModuleType, variant: str, train_split: data.Split,
                test_split: data.Split, log: Callable[[str], None],
                ckpts: checkpoints.Checkpoints | None = None, stops: Sequence[int] = (),
                metrics_log: metrics.MetricsLog | None = None,
                ready: program.Setup | None = None) -> VariantResult:
  """Train the `config.num_models` models of one variant as one program (`ready`: its setup,
  if built already), evaluating them every `config.eval_every_epochs` epochs (0:
  `auto_eval_every`) and after the last.

  With `ckpts`, resumes from the newest intact checkpoint and saves one after every call
  of the epoch function; with `metrics_log`, writes a line after every call. A signal number
  in `stops` (`interrupts.stop_requests`), of any process, stops it with
  `Interrupted` before training or after the call in progress. A diverging model
  stops a single-value run (`TrainingDiverged`); in a sweep it is marked and the others go on.
  """
  ready = ready or program.setup(config, task, variant, len(train_split.labels))
  compiled = program.compile_epoch(config, ready, train_split)
  spec, num_models = ready.spec, config.num_models
  num_params = models.num_trainable_params(spec.model,
                                           jax.tree.map(lambda p: p[0], compiled.state.params))
  log(f'[{variant}] {num_params:,} trainable parameters; {num_models} model(s), '
      f'{spec.models_per_chunk} side by side, compiled in {compiled.compile_time_s:.2f}s')
  test_data = program.place(test_split, ready.placement.replicated)
  train_data = (compiled.images, compiled.labels) if task.TRAIN_ERROR else None

  def evaluate(state: training.TrainState, placed=test_data) -> evaluation.Scores:
    return program.evaluate_models(state, placed, num_models, config.eval_batch_size)

  initial_loss = np.maximum(evaluate(compiled.state).loss_sum / len(test_split.labels),
                            losses.OBJECTIVES[spec.objective].chance_loss)
  start_from = ready.untrained()._replace(state=compiled.state)
  if ckpts:
    start_from = checkpoints.restore_snapshot(ckpts, start_from, None, log) or start_from
  state, data_keys, history, trained_with = start_from
  step = int(cluster.host(state.step)[0])
  if step:  # checkpoints are written after a chunk, so only a restored state is past 0
    log(f'[{variant}] Resuming from checkpoint at epoch {step // spec.steps_per_epoch}, '
        f'step {step}')
  computed = _numerics_so_far(trained_with, numerics(config, spec), step, variant, log)
  if metrics_log:
    metrics_log.start(variant, spec, history, step, num_models)

  signum = stop_signal(stops) if step < spec.total_steps else 0
  if signum:
    raise Interrupted(
        f'[{variant}] interrupted by signal {signum} before training on from step {step}: '
        + (f'its checkpoints are in {ckpts.directory}' if step else 'no checkpoint of it yet'),
        signum)
  diverged = _diverged(history, initial_loss, spec, step, num_models)
  tested, eval_every = None, config.eval_every_epochs or None  # None: decided by the first
  while step < spec.total_steps:
    epoch = step // spec.steps_per_epoch
    start = time.perf_counter()
    with progress.watching(progress.Progress(
        f'[{variant}] epoch {epoch + 1}', ready.placement.here,
        spec.steps_per_call * config.batch_size, log)):
      state, chunk_losses = compiled.epoch_fn(state, training.epoch_keys(data_keys, epoch),
                                              compiled.images, compiled.labels)
      interrupts.wait_until_ready(chunk_losses)
    new_step = int(cluster.host(state.step)[0])
    history.epoch_times[epoch] += time.perf_counter() - start
    history.step_losses[:, step:new_step] = cluster.host(chunk_losses)[:, :new_step - step]
    step = new_step
    now_diverged = _diverged(history, initial_loss, spec, step, num_models)
    for model in np.flatnonzero(now_diverged & ~diverged):
      message = _divergence(history, initial_loss, spec, step, model, config, variant)
      if len(config.grid) == 1:
        raise TrainingDiverged(message)
      log(message + '; marked, the other models go on')
    diverged = now_diverged
    epoch_ended = step % spec.steps_per_epoch == 0 or step == spec.total_steps
    if epoch_ended and (epoch + 1 == spec.num_epochs or (epoch + 1) % (eval_every or 1) == 0):
      tested = _evaluate_after(epoch, state, evaluate, history, num_models, len(test_split.labels),
                               train_data)
      eval_every = eval_every or auto_eval_every(history.eval_times[epoch],
                                                 history.epoch_times[epoch])
    if epoch_ended:
      log(_epoch_line(variant, history, spec, epoch, step, diverged, num_models))
    if ckpts:
      checkpoints.save_snapshot(ckpts, step,
                                checkpoints.Snapshot(state, data_keys, history, computed))
    if metrics_log:
      metrics_log.append(metrics.record(variant, spec, history, step, num_models))
    interrupts.abort_if_asked(stops)
    signum = stop_signal(stops)
    if signum:
      raise Interrupted(
          f'[{variant}] interrupted by signal {signum} at epoch {epoch + 1}, step {step}: '
          + (f'checkpoint saved in {ckpts.directory}' if ckpts else 'no checkpoint (no workdir)'),
          signum)
  train_time, eval_time = float(history.epoch_times.sum()), float(history.eval_times.sum())
  log(f'[{variant}] trained in {train_time:.2f}s steady-state (+{compiled.compile_time_s:.2f}s '
      f'compile, +{eval_time:.2f}s evaluating during training)')
  if tested is None:  # resumed at the last step: nothing was trained here
    tested = evaluate(state)
  for line in scores.test_lines(config, variant, tested):
    log(line)
  results = dict(
      num_params=num_params, **scores.summary(tested),
      diverged=diverged.tolist(),
      train_loss_per_epoch=history.epoch_losses(num_models, spec.steps_per_epoch).tolist(),
      test_accuracy_per_epoch=_json_floats(history.test_accuracy[:num_models]),
      test_loss_per_epoch=_json_floats(history.test_loss[:num_models]),
      **({'train_accuracy_per_epoch': _json_floats(history.train_accuracy[:num_models])}
         if task.TRAIN_ERROR else {}),
      compile_time_s=compiled.compile_time_s, train_time_s=train_time, eval_time_s=eval_time,
      epoch_time_s=history.epoch_times.tolist(), eval_time_per_epoch_s=history.eval_times.tolist(),
      models_per_chunk=spec.models_per_chunk, numerics=list(computed),
      peak_device_memory_bytes=(jax.local_devices()[0].memory_stats() or {}).get(
          'peak_bytes_in_use'),
      xla_memory_estimate_bytes=compiled.memory_estimate_bytes)
  params = jax.tree.map(lambda p: p[:num_models], cluster.host(state.params))
  return VariantResult(results, history.step_losses[:num_models],
                       history.test_accuracy[:num_models], history.train_accuracy[:num_models],
                       params, tested.predictions)


def numerics(config: Config, spec: training.TrainSpec) -> dict[str, Any]:
  """How a model's arithmetic is carried out, beside its identity: a model's numbers are the
  same bit for bit only where this is the same too (else the same to float rounding)."""
  return dict(models_per_chunk=spec.models_per_chunk, kernels=config.kernels,
              micro_batches=config.micro_batches, platform=jax.default_backend(),
              devices=jax.device_count(), deterministic=platform.deterministic())


def _numerics_so_far(trained_with: Sequence[dict[str, Any]], now: dict[str, Any], step: int,
                     variant: str, log: Callable[[str], None]) -> tuple[dict[str, Any], ...]:
  """The numerics of each stretch of steps, this run's from `step` on; a warning where a
  resumed run computes otherwise than the steps before it."""
  if not trained_with:
    return (dict(now, from_step=step),)
  before = {k: v for k, v in trained_with[-1].items() if k != 'from_step'}
  if before == now:
    return tuple(trained_with)
  changed = ', '.join(f'{k} {now[k]} (was {before.get(k)})' for k in now if before.get(k) != now[k])
  log(f'WARNING: [{variant}] resuming at step {step} with {changed}: from here the numbers '
      "match an uninterrupted run's to float rounding, not bit for bit")
  return (*trained_with, dict(now, from_step=step))


def stop_signal(stops: Sequence[int]) -> int:
  """The signal that asked to stop, in this process or any other (so that all stop at the
  same point); 0 if none did."""
  return int(cluster.every_process(stops[0] if stops else 0).max())


def _evaluate_after(epoch: int, state: training.TrainState,
                    evaluate: Callable[..., evaluation.Scores], history: History,
                    num_models: int, total: int, train_data=None) -> evaluation.Scores:
  """Evaluate every model after `epoch`, recording its accuracy and loss and the time taken;
  with `train_data` (placed), its accuracy on the training set too."""
  start = time.perf_counter()
  if train_data is not None:
    history.train_accuracy[:num_models, epoch] = (
        evaluate(state, train_data).correct / len(train_data[1]))
  tested = evaluate(state)
  history.eval_times[epoch] = time.perf_counter() - start
  history.test_accuracy[:num_models, epoch] = tested.correct / total
  history.test_loss[:num_models, epoch] = tested.loss_sum / total
  return tested


def auto_eval_every(eval_s: float, epoch_s: float) -> int:
  """Evaluate every how many epochs, from one evaluation's and one epoch's time: every epoch
  while it takes at most EVAL_SHARE_TOLERATED of the epoch, else as rarely as keeps it under
  EVAL_SHARE."""
  share = eval_s / epoch_s if epoch_s > 0 else 0.0
  return 1 if share <= EVAL_SHARE_TOLERATED else math.ceil(share / EVAL_SHARE)


def _epoch_line(variant: str, history: History, spec: training.TrainSpec, epoch: int,
                step: int, diverged: np.ndarray, num_models: int) -> str:
  """'[sparse] epoch 3: train loss 0.0512, test accuracy 98.12% (98.05-98.20), ...'."""
  epoch_losses = history.step_losses[:num_models, epoch * spec.steps_per_epoch:step]
  line = (f'[{variant}] epoch {epoch + 1}: train loss '
          f'{epoch_losses[~diverged].mean() if not diverged.all() else np.nan:.4f}')
  accuracy = 100 * history.test_accuracy[:num_models, epoch]
  if not np.isnan(accuracy).all():
    line += f', test accuracy {accuracy.mean():.2f}%'
    if num_models > 1:
      line += f' ({accuracy.min():.2f}-{accuracy.max():.2f})'
    line += f', test loss {history.test_loss[:num_models, epoch].mean():.4f}'
  evaluated = (f' + {history.eval_times[epoch]:.2f}s evaluating' if history.eval_times[epoch]
               else '')
  return (line + f'; {history.epoch_times[epoch]:.2f}s{evaluated} '
          f'({history.epoch_times.sum():.2f}s training elapsed)')


def _json_floats(values: np.ndarray) -> list[list[float | None]]:
  """A float array as JSON lists, NaN (not tested) as null."""
  return [[float(v) if np.isfinite(v) else None for v in row] for row in values]


def _finished_epochs(spec: training.TrainSpec, step: int) -> int:
  ends = np.minimum(np.arange(1, spec.num_epochs + 1) * spec.steps_per_epoch, spec.total_steps)
  return int(np.sum(ends <= step))


def _exceeded(history: History, initial_loss: np.ndarray, spec: training.TrainSpec,
              step: int, num_models: int) -> np.ndarray:
  """(models, finished epochs): whether each epoch's mean loss is over DIVERGENCE_FACTOR
  times the model's `initial_loss`."""
  means = history.epoch_losses(num_models, spec.steps_per_epoch)[:, :_finished_epochs(spec, step)]
  return means > DIVERGENCE_FACTOR * initial_loss[:, None]


def _diverged(history: History, initial_loss: np.ndarray, spec: training.TrainSpec,
              step: int, num_models: int) -> np.ndarray:
  """Per model, up to `step`: a non-finite loss, or a finished epoch far above its start."""
  non_finite = (~np.isfinite(history.step_losses[:num_models, :step])).any(axis=1)
  return non_finite | _exceeded(history, initial_loss, spec, step, num_models).any(axis=1)


def _divergence(history: History, initial_loss: np.ndarray, spec: training.TrainSpec,
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
