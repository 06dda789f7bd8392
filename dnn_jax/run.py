"""`train_and_evaluate(config, experiment, workdir)`: the loop around the pure functions.

All seeds of a variant train as one compiled program (`train.train_epoch_seeds`). Where
several devices are visible, the seed axis is sharded over a 1-D mesh of them; the seed
count is padded up to a multiple of the device count and the padding seeds are dropped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnn_jax import checkpoints, data, metrics, models, plots, report, train
from dnn_jax.config import Config, ConfigError

LINEAR_SMOOTHING = 500  # steps averaged in the loss plot of batch-1 runs


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite."""


def seed_shardings(num_seeds: int) -> tuple[int, NamedSharding, NamedSharding]:
  """(padded seed count, sharding of the seed axis, replicated sharding for data)."""
  devices = jax.devices()
  mesh = Mesh(np.array(devices), ('seeds',))
  padded = -(-num_seeds // len(devices)) * len(devices)
  return padded, NamedSharding(mesh, PartitionSpec('seeds')), NamedSharding(mesh, PartitionSpec())


def available_memory_bytes() -> int:
  """Free memory of one device: its allocator's limit, or the host's free RAM on CPU."""
  stats = jax.devices()[0].memory_stats()
  if stats and 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def check_memory(compiled: jax.stages.Compiled, num_seeds: int, padded_seeds: int) -> int:
  """Bytes one device needs for the compiled epoch (XLA's own analysis); fails early,
  naming the largest seed count that fits, when that is more than the device has."""
  analysis = compiled.memory_analysis()
  need = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)
  seeds_per_device = padded_seeds // len(jax.devices())
  per_seed = (analysis.temp_size_in_bytes + analysis.output_size_in_bytes) / seeds_per_device
  available = available_memory_bytes()
  if need > available:
    largest = int((available - (need - per_seed * seeds_per_device)) // per_seed) * len(jax.devices())
    raise ConfigError(
        f'--num_seeds={num_seeds} needs about {need / 2**30:.1f} GiB per device '
        f'({per_seed / 2**20:.0f} MiB per seed), but {available / 2**30:.1f} GiB is free on '
        f'{report.device_description()}; the largest --num_seeds that fits is {max(largest, 0)}')
  return need


def make_spec(config: Config, experiment: ModuleType, variant: str, num_train: int) -> train.TrainSpec:
  return train.TrainSpec(
      model=experiment.make_model(config, variant), objective=experiment.objective(variant),
      learning_rate=config.learning_rate, batch_size=config.batch_size,
      steps_per_epoch=config.steps_per_epoch(num_train),
      total_steps=config.total_steps(num_train), sampling=config.sampling,
      pixel_scale=config.pixel_scale, eval_batch_size=config.eval_batch_size,
      chunk_steps=config.checkpoint_every_steps, batch_parts=config.batch_parts)


class Setup(NamedTuple):
  """A variant's spec, its seeds' keys, shardings and abstract state: nothing compiled."""
  spec: train.TrainSpec
  init_keys: jax.Array
  data_keys: jax.Array
  abstract_state: train.TrainState
  seed_sharding: NamedSharding
  replicated: NamedSharding
  padded_seeds: int


def setup_variant(config: Config, experiment: ModuleType, variant: str, num_train: int) -> Setup:
  padded, seed_sharding, replicated = seed_shardings(config.num_seeds)
  spec = make_spec(config, experiment, variant, num_train)
  init_keys, data_keys = jax.device_put(
      jax.vmap(train.split_seed_key)(train.seed_keys(config.seed, padded)), seed_sharding)
  abstract_state = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=seed_sharding),
      jax.eval_shape(train.init_seeds, init_keys, spec))
  return Setup(spec, init_keys, data_keys, abstract_state, seed_sharding, replicated, padded)


class CompiledTraining(NamedTuple):
  """A variant ready to train: its setup, compiled epoch, initial state and device data."""
  setup: Setup
  epoch_fn: jax.stages.Compiled
  state: train.TrainState
  images: jax.Array
  labels: jax.Array
  compile_time_s: float
  memory_estimate_bytes: int


def compile_training(config: Config, experiment: ModuleType, variant: str,
                     train_split: data.Split) -> CompiledTraining:
  """Place the data, compile the seeds' epoch (checking it fits) and initialise the state."""
  setup = setup_variant(config, experiment, variant, len(train_split.labels))
  images, labels = jax.device_put(tuple(train_split), setup.replicated)  # uint8 on the device
  keys = train.epoch_keys(setup.data_keys, 0)  # its own small compile is not the epoch's
  start = time.perf_counter()
  epoch_fn = train.train_epoch_seeds.lower(setup.abstract_state, keys, images, labels).compile()
  compile_time = time.perf_counter() - start
  memory_estimate = check_memory(epoch_fn, config.num_seeds, setup.padded_seeds)
  state = jax.device_put(train.init_seeds(setup.init_keys, setup.spec), setup.seed_sharding)
  return CompiledTraining(setup, epoch_fn, state, images, labels, compile_time, memory_estimate)


class Interrupted(Exception):
  """Training stopped on SIGINT/SIGTERM after saving a checkpoint."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


@contextlib.contextmanager
def stop_requests(log: Callable[[str], None]):
  """Within the block, a first SIGINT or SIGTERM records a request to stop (in the yielded
  list), which the training loop honours after the current chunk; a second one aborts at
  once with KeyboardInterrupt, keeping the last checkpoint."""
  requests: list[int] = []

  def handle(signum, frame):
    del frame
    if requests:
      raise KeyboardInterrupt
    requests.append(signum)
    log(f'signal {signum}: stopping after the current chunk with a checkpoint; '
        'send it again to abort at once')

  signals = (signal.SIGINT, signal.SIGTERM)
  previous = {s: signal.signal(s, handle) for s in signals}
  try:
    yield requests
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def wait_until_ready(array: jax.Array) -> None:
  """Block until `array` is computed, in Python, so that signal handlers run meanwhile."""
  while not array.is_ready():
    time.sleep(0.002)


class History(NamedTuple):
  """What a checkpoint keeps besides the state: per-step losses and per-epoch times."""
  step_losses: np.ndarray  # float32 (padded seeds, total steps), filled up to the step
  epoch_times: np.ndarray  # float64 (epochs,)

  @classmethod
  def empty(cls, setup: Setup, num_epochs: int) -> History:
    return cls(np.zeros((setup.padded_seeds, setup.spec.total_steps), np.float32),
               np.zeros(num_epochs, np.float64))

  def epoch_losses(self, num_seeds: int, steps_per_epoch: int) -> np.ndarray:
    """(seeds, epochs) mean training loss of each epoch (the last one maybe partial)."""
    losses = self.step_losses[:num_seeds]
    return np.stack([losses[:, start:start + steps_per_epoch].mean(axis=1)
                     for start in range(0, losses.shape[1], steps_per_epoch)], axis=1)


def _checkpoint_item(state, data_keys, history: History) -> dict[str, Any]:
  return dict(state=state, data_keys=jax.random.key_data(data_keys),
              step_losses=history.step_losses, epoch_times=history.epoch_times)


def _restore(ckpts: checkpoints.Checkpoints, setup: Setup, history: History,
             step: int | None, log: Callable[[str], None]):
  """(state, data keys, history) from the newest intact (or the given) checkpoint, or None."""
  target = checkpoints.abstract(_checkpoint_item(setup.abstract_state, setup.data_keys, history))
  restored = ckpts.restore(target, step, log)
  if restored is None:
    return None
  _, item = restored
  keys = jax.random.wrap_key_data(item['data_keys'])
  return item['state'], keys, History(np.asarray(item['step_losses']),
                                      np.asarray(item['epoch_times']))


def train_variant(config: Config, experiment: ModuleType, variant: str, train_split: data.Split,
                  test_split: data.Split, log: Callable[[str], None],
                  ckpts: checkpoints.Checkpoints | None = None) -> dict[str, Any]:
  """Train `config.num_seeds` seeds of one variant as one program; evaluate on the test split.

  With `ckpts`, resumes from the newest intact checkpoint and saves one after every call
  of the epoch function. Returns the variant's results, with the per-step training losses
  under 'step_losses'.
  """
  prepared = compile_training(config, experiment, variant, train_split)
  setup, epoch_fn, state, images, labels = prepared[:5]
  spec, data_keys = setup.spec, setup.data_keys
  num_params = models.num_trainable_params(spec.model, jax.tree.map(lambda p: p[0], state.params))
  log(f'[{variant}] {num_params:,} trainable parameters; {config.num_seeds} seed(s) compiled '
      f'in {prepared.compile_time_s:.2f}s')
  history = History.empty(setup, config.num_epochs(len(labels)))
  restored = _restore(ckpts, setup, history, None, log) if ckpts else None
  if restored is not None:
    state, data_keys, history = restored
  step = int(state.step[0])
  if step:  # checkpoints are written after a chunk, so only a restored state is past 0
    log(f'[{variant}] Resuming from checkpoint at epoch {step // spec.steps_per_epoch}, '
        f'step {step}')

  with stop_requests(log) as stops:
    while step < spec.total_steps:
      epoch = step // spec.steps_per_epoch
      start = time.perf_counter()
      state, losses = epoch_fn(state, train.epoch_keys(data_keys, epoch), images, labels)
      wait_until_ready(losses)
      new_step = int(state.step[0])
      losses = np.asarray(losses)[:, :new_step - step]
      history.epoch_times[epoch] += time.perf_counter() - start
      _check_finite(losses[:config.num_seeds], variant, config.seed, step, spec.steps_per_epoch)
      history.step_losses[:, step:new_step] = losses
      step = new_step
      if ckpts:
        ckpts.save(step, _checkpoint_item(state, data_keys, history))
      if step % spec.steps_per_epoch == 0 or step == spec.total_steps:
        first = epoch * spec.steps_per_epoch
        log(f'[{variant}] epoch {epoch + 1}: train loss '
            f'{history.step_losses[:config.num_seeds, first:step].mean():.4f}, '
            f'{history.epoch_times[epoch]:.2f}s ({history.epoch_times.sum():.2f}s elapsed)')
      if stops:
        raise Interrupted(
            f'[{variant}] interrupted by signal {stops[0]} at epoch {epoch + 1}, step {step}: '
            + (f'checkpoint saved in {ckpts.directory}' if ckpts else 'no checkpoint (no workdir)'),
            stops[0])
  train_time = float(history.epoch_times.sum())
  log(f'[{variant}] trained in {train_time:.2f}s steady-state (+{prepared.compile_time_s:.2f}s '
      'compile)')
  return dict(
      num_params=num_params,
      **evaluate_variant(config, variant, state, test_split, setup.replicated, log),
      train_loss_per_epoch=history.epoch_losses(config.num_seeds, spec.steps_per_epoch).tolist(),
      compile_time_s=prepared.compile_time_s, train_time_s=train_time,
      epoch_time_s=history.epoch_times.tolist(),
      peak_device_memory_bytes=(jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use'),
      xla_memory_estimate_bytes=prepared.memory_estimate_bytes,
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


def evaluate_variant(config: Config, variant: str, state: train.TrainState, test_split: data.Split,
                     replicated: NamedSharding, log: Callable[[str], None]) -> dict[str, Any]:
  """Test results of every seed, printed in the course's format."""
  test_images, test_labels = jax.device_put(tuple(test_split), replicated)
  loss_sums, corrects, predicted = (
      x[:config.num_seeds] for x in jax.device_get(
          train.evaluate_seeds(state, test_images, test_labels)))
  total = len(test_labels)
  collapsed = [bool(np.count_nonzero(p) == 1) for p in predicted]
  for i, (loss_sum, correct) in enumerate(zip(loss_sums, corrects)):
    log(f'[{variant}] seed {config.seed + i}: ' + report.test_line(loss_sum / total, correct, total)
        + ('  (collapsed: predicts one class only)' if collapsed[i] else ''))
  return dict(test_accuracy=[float(c / total) for c in corrects],
              test_loss=[float(s / total) for s in loss_sums],
              correct=[int(c) for c in corrects], total=total, collapsed=collapsed)


def evaluate_checkpoint(config: Config, experiment: ModuleType, variant: str,
                        train_split: data.Split, test_split: data.Split,
                        ckpts: checkpoints.Checkpoints, step: int | None,
                        log: Callable[[str], None]) -> dict[str, Any]:
  """Restore the latest (or `step`'s) checkpoint and evaluate it as training did."""
  num_train = len(train_split.labels)
  setup = setup_variant(config, experiment, variant, num_train)
  restored = _restore(ckpts, setup, History.empty(setup, config.num_epochs(num_train)), step, log)
  if restored is None:
    raise checkpoints.NothingToEvaluate(f'no checkpoint in {ckpts.directory}')
  state = restored[0]
  log(f'[{variant}] restored checkpoint at step {int(state.step[0])} from {ckpts.directory}')
  return evaluate_variant(config, variant, state, test_split, setup.replicated, log)


def train_and_evaluate(config: Config, experiment: ModuleType, workdir: str | Path,
                       log: Callable[[str], None] = print, mode: str = 'train',
                       checkpoint_step: int | None = None, overwrite: bool = False
                       ) -> dict[str, Any]:
  """Train every variant of `config` (resuming from `workdir`'s checkpoints); print and
  save results.json, variance_table.md and loss_curve.png in `workdir`.

  `mode='eval'` instead restores each variant's latest (or `checkpoint_step`'s)
  checkpoint and prints its test results.
  """
  workdir = Path(workdir)
  checkpoints.check_config(workdir, config, overwrite and mode == 'train', create=mode == 'train')
  log(f'experiment: {config.experiment} ({mode})')
  for key, value in config.to_json().items():
    log(f'  {key} = {value}')
  train_split, test_split = experiment.load_data(config)
  log(f'data: {len(train_split.labels)} training, {len(test_split.labels)} test examples; '
      f'device: {report.device_description()}')
  variants = {}
  for variant in config.variants:
    ckpts = checkpoints.Checkpoints(workdir / 'checkpoints' / variant, config.keep_checkpoints)
    try:
      if mode == 'eval':
        variants[variant] = evaluate_checkpoint(config, experiment, variant, train_split,
                                                test_split, ckpts, checkpoint_step, log)
      else:
        variants[variant] = train_variant(config, experiment, variant, train_split, test_split,
                                          log, ckpts)
    finally:
      ckpts.close()
  if mode == 'eval':
    return variants
  step_losses = {v: r.pop('step_losses') for v, r in variants.items()}
  seeds = list(range(config.seed, config.seed + config.num_seeds))
  table = metrics.variance_table(variants, seeds)
  log(table)

  (workdir / 'variance_table.md').write_text(table + '\n')
  window = LINEAR_SMOOTHING if config.batch_size == 1 else 1
  plots.loss_curves(step_losses, workdir / 'loss_curve.png', window=window,
                    title=f'{config.experiment}, {config.num_seeds} seed(s), batch '
                          f'{config.batch_size}, lr {config.learning_rate}, {config.sampling}, '
                          f'{config.pixel_scale} pixels, {config.total_steps(len(train_split.labels))} steps')
  summaries = {v: {key: metrics.summary(r[key]) for key, _, _ in metrics.TABLE_METRICS}
               for v, r in variants.items()}
  if len(variants) == 2:
    summaries['difference'] = metrics.welch(*(r['test_accuracy'] for r in variants.values()))
  results = dict(experiment=config.experiment, config=config.to_json(),
                 device=report.device_description(), versions=report.versions(),
                 variants=variants, statistics=summaries, variance_table=table)
  report.write_json(workdir / 'results.json', results)
  log(f'results: {workdir / "results.json"}, {workdir / "variance_table.md"}, '
      f'{workdir / "loss_curve.png"}')
  return results
