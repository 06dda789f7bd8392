"""Benchmark suite: training and evaluation speed of every course experiment, for one model,
many seeds, and a learning-rate grid x seeds, all on one models axis.

  python -m benchmarks.speed                 # every case, full epochs (about 30 min on 2 CPU cores)
  python -m benchmarks.speed --cases=lenet --seed_counts=1 --sweep_seeds=0 --repeats=5
  python -m benchmarks.speed --quick         # a smoke run (CI): tiny slices, one repeat

Per case (an experiment, both variants) and models axis: compile time; steady-state time per
epoch (the median of --repeats epochs after a warm-up epoch, each ended by
`block_until_ready`) and its ratio to one model's; the whole run (epochs x epoch time);
images/s (all models); evaluation images/s on the test split; FLOP/s achieved, from XLA's own
cost analysis of the training step, and its share of the device's measured float32 matmul
rate; and the memory XLA plans for the epoch. Writes a Markdown table and a JSON file
(device, versions, command).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from dnn_jax import tasks
from dnn_jax.catalog import make_config
from dnn_jax.core import data, training
from dnn_jax.results import environment, files
from dnn_jax.run import program

FLAGS = flags.FLAGS
CASES = {  # experiment -> (default seed counts, learning rates of its sweep case)
    'lenet': ((1, 8, 32), (0.02, 0.05, 0.1, 0.2, 0.5)),
    'linear': ((1, 8), (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)),
    'linear_with_replacement': ((1, 8), (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)),
}
flags.DEFINE_list('cases', list(CASES), 'Experiments to run.')
flags.DEFINE_list('seed_counts', [], 'Seed counts for every case; default: 1, 8, 32 for '
                  'LeNet and 1, 8 for linear. Ratios are against one model.')
flags.DEFINE_integer('sweep_seeds', 8, "Seeds of each case's 5-value learning-rate sweep; 0: no "
                     'sweep.')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per case (after one warm-up epoch).')
flags.DEFINE_integer('lenet_examples', 0, 'Training images per LeNet epoch; 0: all 60,000.')
flags.DEFINE_bool('quick', False, 'Smoke run: tiny slices, one repeat; timings meaningless.')
flags.DEFINE_string('out', 'benchmarks/results', 'Output path without extension (.md, .json).')


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
  """Median seconds of `repeats` calls of `fn` after one warm-up call, and every time."""
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times[1:]), times[1:]


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
  """The device's float32 matmul rate, measured: the reference for `share of peak`."""
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  seconds, _ = median_time(lambda: matmul(a), repeats)
  return 2 * n**3 / seconds


def benchmark(case: str, num_seeds: int, learning_rates: tuple[float, ...] | None,
              peak: float) -> list[dict]:
  task = tasks.TRAINING[make_config(case).task]
  train_examples = 200 if FLAGS.quick else (FLAGS.lenet_examples if task.NAME == 'lenet' else 0)
  config = make_config(case, num_seeds=num_seeds, train_examples=train_examples,
                       steps=0 if FLAGS.quick else None, learning_rate=learning_rates,
                       **{task.VARIANT_SETTING: tasks.BOTH})
  train_split, test_split = task.load_data(config)
  if FLAGS.quick:
    test_split = data.first(test_split, 200)
  repeats = 1 if FLAGS.quick else FLAGS.repeats
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


def markdown(rows: list[dict]) -> str:
  lines = ['| case | variant | values x seeds | side by side | steps/epoch | compile (s) | '
           'epoch (s) | x one model | run (s) | us/step | images/s | eval images/s | GFLOP/s | '
           'of matmul peak | memory (MiB) |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  one = {(r['case'], r['variant']): r['epoch_s'] for r in rows if r['num_models'] == 1}
  for r in rows:
    base = one.get((r['case'], r['variant']), float('nan'))
    lines.append(
        f'| {r["case"]} | {r["variant"]} | {r["grid"]} x {r["num_seeds"]} | '
        f'{r["models_per_chunk"]} | {r["steps_per_epoch"]} | '
        f'{r["compile_s"]:.2f} | {r["epoch_s"]:.3f} | {r["epoch_s"] / base:.2f}x | '
        f'{r["run_s"]:.2f} | {r["us_per_step"]:,.1f} | {r["images_per_s"]:,.0f} | '
        f'{r["eval_images_per_s"]:,.0f} | {r["flops_per_s"] / 1e9:.1f} | '
        f'{r["share_of_matmul_peak"]:.0%} | {r["memory_bytes"] / 2**20:,.1f} |')
  return '\n'.join(lines)


def variant_ratios(rows: list[dict]) -> str:
  """First variant's epoch time over the second's, per case and models axis (sparse/full)."""
  lines = []
  for case in dict.fromkeys(r['case'] for r in rows):
    for axis in dict.fromkeys((r['grid'], r['num_seeds']) for r in rows if r['case'] == case):
      pair = [r for r in rows if r['case'] == case and (r['grid'], r['num_seeds']) == axis]
      if len(pair) == 2:
        lines.append(f'- {case}, {axis[0]} x {axis[1]} models: {pair[0]["variant"]}/'
                     f'{pair[1]["variant"]} = {pair[0]["epoch_s"] / pair[1]["epoch_s"]:.2f}')
  return '\n'.join(lines)


def main(argv: list[str]) -> int:
  del argv
  logging.set_verbosity(logging.WARNING)  # no INFO lines about absent TPU backends
  unknown = [case for case in FLAGS.cases if case not in CASES]
  if unknown:
    print(f'error: --cases={",".join(unknown)}: accepted: {", ".join(CASES)}', file=sys.stderr)
    return 2
  peak = matmul_flops_per_s(256 if FLAGS.quick else 2048)
  runs = [(case, int(n), None)
          for case in FLAGS.cases for n in (FLAGS.seed_counts or CASES[case][0])]
  if FLAGS.sweep_seeds:
    runs += [(case, FLAGS.sweep_seeds, CASES[case][1]) for case in FLAGS.cases]
  rows = [r for case, seeds, rates in runs for r in benchmark(case, seeds, rates, peak)]
  header = (f'Device: {environment.device_description()}; float32 matmul peak (measured): '
            f'{peak / 1e9:,.0f} GFLOP/s; command: {" ".join(sys.argv)}')
  text = (f'{header}\n\n{markdown(rows)}\n\nTime ratios of the two variants:\n'
          f'{variant_ratios(rows)}\n')
  print(text)
  out = Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  files.write_text(out.with_suffix('.md'), text)
  files.write_json(out.with_suffix('.json'), dict(
      device=environment.device_description(), versions=environment.versions(),
      command=' '.join(sys.argv), quick=FLAGS.quick, matmul_flops_per_s=peak, rows=rows))
  return 0


if __name__ == '__main__':
  app.run(main)
