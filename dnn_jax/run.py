"""`train_and_evaluate(config, experiment, workdir)`: the loop around the pure functions."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import jax
import numpy as np

from dnn_jax import models, report, train
from dnn_jax.config import Config


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite."""


def _first_nonfinite(step_losses: np.ndarray) -> tuple[int, int] | None:
  """(seed, step within the epoch) of the first non-finite loss, or None."""
  bad = ~np.isfinite(step_losses)
  if not bad.any():
    return None
  seed = int(np.argmax(bad.any(axis=1)))
  return seed, int(np.argmax(bad[seed]))


def train_variant(config: Config, experiment: ModuleType, variant: str,
                  train_split, test_split, log: Callable[[str], None]) -> dict[str, Any]:
  """Train `config.num_seeds` seeds of one variant as one program; evaluate on the test split."""
  images, labels = jax.device_put(tuple(train_split))  # uint8 on the device
  num_train = len(labels)
  spec = train.TrainSpec(
      model=experiment.make_model(config, variant), objective=experiment.objective(variant),
      learning_rate=config.learning_rate, batch_size=config.batch_size,
      steps_per_epoch=config.steps_per_epoch(num_train),
      total_steps=config.total_steps(num_train), sampling=config.sampling,
      pixel_scale=config.pixel_scale, eval_batch_size=config.eval_batch_size)
  init_keys, data_keys = jax.vmap(train.split_seed_key)(
      train.seed_keys(config.seed, config.num_seeds))
  state = train.init_seeds(init_keys, spec)
  num_params = models.num_trainable_params(spec.model, jax.tree.map(lambda p: p[0], state.params))
  log(f'[{variant}] {num_params:,} trainable parameters')

  start = time.perf_counter()
  epoch_fn = train.train_epoch_seeds.lower(
      state, train.epoch_keys(data_keys, 0), images, labels).compile()
  compile_time = time.perf_counter() - start
  log(f'[{variant}] compiled in {compile_time:.2f}s')

  epoch_times, epoch_losses = [], []
  for epoch in range(config.num_epochs(num_train)):
    start = time.perf_counter()
    state, step_losses = epoch_fn(state, train.epoch_keys(data_keys, epoch), images, labels)
    active = min(spec.steps_per_epoch, spec.total_steps - epoch * spec.steps_per_epoch)
    step_losses = np.asarray(step_losses)[:, :active]  # waits for the device
    epoch_times.append(time.perf_counter() - start)
    if (bad := _first_nonfinite(step_losses)) is not None:
      seed, step = bad
      raise TrainingDiverged(
          f'[{variant}] training loss became {step_losses[seed, step]} at epoch {epoch + 1}, '
          f'step {epoch * spec.steps_per_epoch + step + 1} (seed {config.seed + seed}); '
          'try a smaller --learning_rate')
    epoch_losses.append(step_losses.mean(axis=1))
    log(f'[{variant}] epoch {epoch + 1}: train loss {epoch_losses[-1].mean():.4f}, '
        f'{epoch_times[-1]:.2f}s ({sum(epoch_times):.2f}s elapsed)')
  train_time = sum(epoch_times)
  log(f'[{variant}] trained in {train_time:.2f}s steady-state (+{compile_time:.2f}s compile)')

  test_images, test_labels = jax.device_put(tuple(test_split))
  loss_sums, corrects = jax.device_get(train.evaluate_seeds(state, test_images, test_labels))
  total = len(test_labels)
  for i, (loss_sum, correct) in enumerate(zip(loss_sums, corrects)):
    log(f'[{variant}] seed {config.seed + i}: ' + report.test_line(loss_sum / total, correct, total))
  return dict(
      num_params=num_params,
      test_accuracy=[float(c / total) for c in corrects],
      test_loss=[float(s / total) for s in loss_sums],
      correct=[int(c) for c in corrects], total=total,
      train_loss_per_epoch=np.stack(epoch_losses, axis=1).tolist(),  # [seed][epoch]
      compile_time_s=compile_time, train_time_s=train_time, epoch_time_s=epoch_times)


def side_by_side(variants: dict[str, dict[str, Any]]) -> str:
  """A Markdown table of the variants' mean results."""
  rows = ['| variant | parameters | test accuracy | test loss | train time (s) |',
          '|---|---:|---:|---:|---:|']
  for name, r in variants.items():
    rows.append(f'| {name} | {r["num_params"]:,} | {100 * np.mean(r["test_accuracy"]):.2f}% '
                f'| {np.mean(r["test_loss"]):.4f} | {r["train_time_s"]:.2f} |')
  return '\n'.join(rows)


def train_and_evaluate(config: Config, experiment: ModuleType, workdir: str | Path,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Train every variant of `config`, print the results and write workdir/results.json."""
  log(f'experiment: {config.experiment}')
  for key, value in config.to_json().items():
    log(f'  {key} = {value}')
  train_split, test_split = experiment.load_data(config)
  log(f'data: {len(train_split.labels)} training, {len(test_split.labels)} test examples; '
      f'device: {report.device_description()}')
  variants = {v: train_variant(config, experiment, v, train_split, test_split, log)
              for v in config.variants}
  if len(variants) > 1:
    log(side_by_side(variants))
  results = dict(experiment=config.experiment, config=config.to_json(),
                 device=report.device_description(), versions=report.versions(),
                 variants=variants)
  report.write_json(Path(workdir) / 'results.json', results)
  log(f'results: {Path(workdir) / "results.json"}')
  return results
