"""Benchmark suite: training and evaluation speed of every course experiment, for one model,
many seeds, and a learning-rate grid x seeds, all on one models axis.

  python -m benchmarks.speed                 # every case, full epochs (about 30 min on 2 CPU cores)
  python -m benchmarks.speed --cases=lenet --seed_counts=1 --sweep_seeds=0 --repeats=5
  python -m benchmarks.speed --quick         # a smoke run (CI): tiny slices, one repeat

Per case (an experiment, both variants) and models axis: compile time; steady-state time per
epoch (the median of --repeats epochs after a warm-up epoch, each ended by
`block_until_ready`) and its ratio to one model's; the whole run (epochs x epoch time);
images/s (all models); evaluation images/s on the test split; FLOP/s achieved, from XLA's own
cost analysis of the training step, and its share of the device's matmul rate at the
training's precision (random matrices, after a warm-up); and the memory XLA plans for the
epoch. Writes a Markdown table and a JSON file (device, versions, command).
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging

from benchmarks.measure import benchmark, matmul_flops_per_s
from dnn_jax.core import platform
from dnn_jax.results import environment, files

FLAGS = flags.FLAGS
CASES = {  # experiment -> (default seed counts, learning rates of its sweep case)
    'lenet': ((1, 8, 32), (0.02, 0.05, 0.1, 0.2, 0.5)),
    'lenet1998': ((1, 8), (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)),
    'linear': ((1, 8), (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)),
    'linear_with_replacement': ((1, 8), (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)),
}
flags.DEFINE_list('cases', list(CASES), 'Experiments to run.')
flags.DEFINE_list('seed_counts', [], 'Seed counts for every case; default: 1, 8, 32 for '
                  'LeNet and 1, 8 for linear. Ratios are against one model.')
flags.DEFINE_integer('sweep_seeds', 8, "Seeds of each case's 5-value learning-rate sweep; 0: no "
                     'sweep.')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per case (after one warm-up epoch).')
flags.DEFINE_integer('lenet_examples', 0, 'Images per epoch of either LeNet; 0: all 60,000.')
flags.DEFINE_bool('quick', False, 'Smoke run: tiny slices, one repeat; timings meaningless.')
flags.DEFINE_string('out', 'benchmarks/results', 'Output path without extension (.md, .json).')
flags.DEFINE_enum('precision', 'float32', list(platform.PRECISIONS), "The training's matmul "
                  'precision, and the peak matmul rate it is measured against.')


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
  peak = matmul_flops_per_s(FLAGS.precision, 256 if FLAGS.quick else None)
  runs = [(case, int(n), None)
          for case in FLAGS.cases for n in (FLAGS.seed_counts or CASES[case][0])]
  if FLAGS.sweep_seeds:
    runs += [(case, FLAGS.sweep_seeds, CASES[case][1]) for case in FLAGS.cases]
  rows = [r for case, seeds, rates in runs
          for r in benchmark(case, seeds, rates, peak, quick=FLAGS.quick, repeats=FLAGS.repeats,
                             lenet_examples=FLAGS.lenet_examples, precision=FLAGS.precision)]
  header = (f'Device: {environment.device_description()}; matmul peak at {FLAGS.precision} '
            f'(measured): {peak / 1e9:,.0f} GFLOP/s; command: {" ".join(sys.argv)}')
  text = (f'{header}\n\n{markdown(rows)}\n\nTime ratios of the two variants:\n'
          f'{variant_ratios(rows)}\n')
  print(text)
  out = Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  files.write_text(out.with_suffix('.md'), text)
  files.write_json(out.with_suffix('.json'), dict(
      device=environment.device_description(), versions=environment.versions(),
      command=' '.join(sys.argv), quick=FLAGS.quick, precision=FLAGS.precision,
      matmul_flops_per_s=peak, rows=rows))
  return 0


if __name__ == '__main__':
  app.run(main)
