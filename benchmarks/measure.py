"""What the benchmarks measure, as functions: a steady-state time, the device's matmul rate at a
precision, and one experiment's compile, epoch and evaluation at a models axis. benchmarks/speed.py
and benchmarks/device_check.py report them."""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from dnn_jax import tasks
from dnn_jax.catalog import make_config
from dnn_jax.core import data, platform, training
from dnn_jax.run import program


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
  """Median seconds of `repeats` calls of `fn` after one warm-up call, and every time."""
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times[1:]), times[1:]


def matmul_flops_per_s(precision: str = 'float32', n: int | None = None,
                       repeats: int = 5) -> float:
  """The device's float32 matmul rate at `precision` (a key of platform.PRECISIONS), measured
  on random data after a warm-up: the reference for `share of peak`. `n`: the matrices' size
  (default: 2048 on CPU, 8192 on accelerators, large enough to leave launch costs behind)."""
  n = n or (2048 if jax.default_backend() == 'cpu' else 8192)
  a, b = jax.random.normal(jax.random.key(0), (2, n, n), jnp.float32)
  with jax.default_matmul_precision(platform.PRECISIONS[precision]):
    matmul = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
  seconds, _ = median_time(lambda: matmul(a, b), repeats)
  return 2 * n**3 / seconds


def benchmark(case: str, num_seeds: int, learning_rates: tuple[float, ...] | None,
              peak: float, *, quick: bool = False, lenet_examples: int = 0, repeats: int = 3,
              variants: str = tasks.BOTH, **settings) -> list[dict]:
  """One row per variant of experiment `case` at `num_seeds` seeds (x `learning_rates`): its
  compile time, steady-state epoch and evaluation against `peak`. `quick`: tiny slices."""
  task = tasks.TRAINING[make_config(case).task]
  train_examples = 200 if quick else (lenet_examples if task.NAME in ('lenet', 'lenet1998') else 0)
  config = make_config(case, num_seeds=num_seeds, train_examples=train_examples,
                       steps=0 if quick else None, learning_rate=learning_rates,
                       **{task.VARIANT_SETTING: variants}, **settings)
  train_split, test_split = task.load_data(config)
  if quick:
    test_split = data.first(test_split, 200)
  repeats = 1 if quick else repeats
  rows = []
  for variant in config.variants:
    ready = program.setup(config, task, variant, len(train_split.labels))
    compiled = program.compile_epoch(config, ready, train_split)
    keys, state = training.epoch_keys(ready.data_keys, 0), [compiled.state]

    def epoch():  # the epoch donates its input state: carry the output along
      state[0], losses = compiled.epoch_fn(state[0], keys, compiled.images, compiled.labels)
      return losses

    epoch_s, times = median_time(epoch, repeats)
    test_data = program.place(test_split, ready.placement.replicated)
    evaluate = program.evaluate_models_on(ready.placement.models.mesh, config.eval_batch_size)
    eval_s, _ = median_time(lambda: evaluate(state[0], *test_data), repeats)
    spec, models = ready.spec, config.num_models
    step_flops = program.step_flops(ready) * models
    flops_per_s = step_flops * spec.steps_per_epoch / epoch_s
    rows.append(dict(
        case=case, variant=variant, grid=len(config.grid), num_seeds=num_seeds,
        num_models=models, models_per_chunk=spec.models_per_chunk,
        steps_per_epoch=spec.steps_per_epoch, batch_size=config.batch_size,
        epochs=spec.num_epochs, compile_s=compiled.compile_time_s,
        epoch_s=epoch_s, epoch_times_s=times, run_s=spec.num_epochs * epoch_s,
        us_per_step=1e6 * epoch_s / spec.steps_per_epoch,
        images_per_s=models * spec.steps_per_epoch * config.batch_size / epoch_s,
        eval_images_per_s=models * len(test_split.labels) / eval_s,
        step_flops=step_flops, flops_per_s=flops_per_s, share_of_matmul_peak=flops_per_s / peak,
        memory_bytes=compiled.memory_estimate_bytes))
  return rows
