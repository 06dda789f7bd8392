"""Benchmark suite: training and evaluation speed of every course protocol, for one model, many
seeds, and a learning-rate grid x seeds, all on one models axis.

  python -m benchmarks.speed                 # every case, full epochs (about 30 min on 2 CPU cores)
  python -m benchmarks.speed --cases=lenet/course --seed_counts=1 --sweep_seeds=0 --repeats=5
  python -m benchmarks.speed --quick         # a smoke run (CI): tiny slices, one repeat

Per case (a protocol, both variants) and models axis: compile time; steady-state time per
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

from dnn_jax import data, evaluation, programs, report, training
from dnn_jax.experiments import BOTH, EXPERIMENTS, make_config

FLAGS = flags.FLAGS
CASES = {  # experiment/protocol -> (default seed counts, learning rates of its sweep case)
    'lenet/course': ((1, 8, 32), (0.02, 0.05, 0.1, 0.2, 0.5)),
    'linear/epochs': ((1, 8), (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)),
    'linear/with_replacement': ((1, 8), (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)),
}
flags.DEFINE_list('cases', list(CASES), 'Protocols to run, as experiment/protocol.')
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
  experiment, protocol = case.split('/')
  train_examples = 200 if FLAGS.quick else (FLAGS.lenet_examples if experiment == 'lenet' else 0)
  config = make_config(experiment, protocol, num_seeds=num_seeds, train_examples=train_examples,
                       steps=0 if FLAGS.quick else None, learning_rate=learning_rates,
                       **{EXPERIMENTS[experiment].VARIANT_SETTING: BOTH})
  module = EXPERIMENTS[experiment]
  train_split, test_split = module.load_data(config)
  if FLAGS.quick:
    test_split = data.first(test_split, 200)
  repeats = 1 if FLAGS.quick else FLAGS.repeats
  rows = []
  for variant in config.variants:
    program = programs.compile_program(config, module, variant, train_split)
    keys, state = training.epoch_keys(program.setup.data_keys, 0), [program.state]

    def epoch():  # the epoch donates its input state: carry the output along
      state[0], losses = program.epoch_fn(state[0], keys, program.images, program.labels)
      return losses

    epoch_s, times = median_time(epoch, repeats)
    test_images, test_labels = evaluation.place(test_split, program.setup.placement.replicated)
    eval_s, _ = median_time(lambda: evaluation.evaluate_models(state[0], test_images, test_labels),
                            repeats)
    spec, models = program.setup.spec, config.num_models
    step_flops = programs.step_flops(program.setup) * models
    flops_per_s = step_flops * spec.steps_per_epoch / epoch_s
    rows.append(dict(
        case=case, variant=variant, grid=len(config.grid), num_seeds=num_seeds,
        num_models=models, models_per_chunk=spec.models_per_chunk,
        steps_per_epoch=spec.steps_per_epoch, batch_size=config.batch_size,
        epochs=spec.num_epochs, compile_s=program.compile_time_s,
        epoch_s=epoch_s, epoch_times_s=times, run_s=spec.num_epochs * epoch_s,
        us_per_step=1e6 * epoch_s / spec.steps_per_epoch,
        images_per_s=models * spec.steps_per_epoch * config.batch_size / epoch_s,
        eval_images_per_s=models * len(test_labels) / eval_s,
        step_flops=step_flops, flops_per_s=flops_per_s, share_of_matmul_peak=flops_per_s / peak,
        memory_bytes=program.memory_estimate_bytes))
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
  header = (f'Device: {report.device_description()}; float32 matmul peak (measured): '
            f'{peak / 1e9:,.0f} GFLOP/s; command: {" ".join(sys.argv)}')
  text = (f'{header}\n\n{markdown(rows)}\n\nTime ratios of the two variants:\n'
          f'{variant_ratios(rows)}\n')
  print(text)
  out = Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  report.write_text(out.with_suffix('.md'), text)
  report.write_json(out.with_suffix('.json'), dict(
      device=report.device_description(), versions=report.versions(), command=' '.join(sys.argv),
      quick=FLAGS.quick, matmul_flops_per_s=peak, rows=rows))
  return 0


if __name__ == '__main__':
  app.run(main)
