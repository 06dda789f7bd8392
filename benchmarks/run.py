"""Seed-scaling benchmark: N vmapped seeds against 1, per experiment and variant.

  python -m benchmarks.run                 # LeNet on 10,000 images, linear on full epochs
  python -m benchmarks.run --quick         # a smoke run (CI): tiny slices, one repeat

Times are steady-state (after a warm-up epoch, `block_until_ready`, median of repeats);
compile time is reported apart. Takes the same data flags as main.py (--mnist_dir, ...).
Writes a Markdown table and a JSON file (device, versions, command line).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jax
from absl import app, flags

import main as cli  # defines the experiment flags; config_from_flags reads them
from dnn_jax import report, run, train
from experiments import EXPERIMENTS

FLAGS = flags.FLAGS
flags.DEFINE_list('cases', ['lenet', 'linear', 'linear_with_replacement'], 'Cases to run.')
flags.DEFINE_list('seed_counts', ['1', '8'], 'Seed counts; ratios are against the first.')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per case (after one warm-up epoch).')
flags.DEFINE_integer('lenet_examples', 10_000, 'Training images per LeNet epoch.')
flags.DEFINE_bool('quick', False, 'Smoke run: tiny slices, one repeat; timings meaningless.')
flags.DEFINE_string('out', 'benchmarks/results', 'Output path without extension (.md, .json).')

CASES = {  # case -> flag values (unset flags keep main.py's defaults)
    'lenet': dict(experiment='lenet', c3='both'),
    'linear': dict(experiment='linear', loss='both'),
    'linear_with_replacement': dict(experiment='linear', loss='both', sampling='with_replacement',
                                    steps=50_000, pixel_scale='raw', learning_rate=1e-4,
                                    bias=True),
}


def time_epochs(prepared: run.CompiledTraining, repeats: int) -> list[float]:
  state, keys = prepared.state, prepared.setup.data_keys
  times = []
  for epoch in range(repeats + 1):  # epoch 0 warms up
    start = time.perf_counter()
    state, losses = prepared.epoch_fn(state, train.epoch_keys(keys, epoch), prepared.images,
                                      prepared.labels)
    jax.block_until_ready(losses)
    times.append(time.perf_counter() - start)
  return times[1:]


def set_flags(values: dict) -> None:
  """Set `values`, every other flag a case or --quick may set back to its default."""
  for name in {'train_examples', 'steps'}.union(*CASES.values()):
    FLAGS[name].value = FLAGS[name].default
  for name, value in values.items():
    FLAGS[name].value = value


def benchmark(case: str, num_seeds: int) -> list[dict]:
  values = dict(CASES[case], num_seeds=num_seeds)
  if case == 'lenet':
    values['train_examples'] = FLAGS.lenet_examples
  if FLAGS.quick:
    values.update(train_examples=200, steps=0)
  set_flags(values)
  config = cli.config_from_flags()
  experiment = EXPERIMENTS[config.experiment]
  train_split, _ = experiment.load_data(config)
  rows = []
  for variant in config.variants:
    prepared = run.compile_training(config, experiment, variant, train_split)
    times = time_epochs(prepared, 1 if FLAGS.quick else FLAGS.repeats)
    steps = prepared.setup.spec.steps_per_epoch
    epoch = statistics.median(times)
    rows.append(dict(case=case, variant=variant, num_seeds=num_seeds, steps_per_epoch=steps,
                     batch_size=config.batch_size, compile_s=prepared.compile_time_s,
                     epoch_s=epoch, epoch_times_s=times, ms_per_step=1e3 * epoch / steps,
                     seed_steps_per_s=num_seeds * steps / epoch,
                     images_per_s=num_seeds * steps * config.batch_size / epoch))
  return rows


def markdown(rows: list[dict]) -> str:
  lines = ['| case | variant | seeds | steps/epoch | compile (s) | epoch (s) | ms/step | '
           'images/s (all seeds) | time vs first seed count |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|']
  first = {}
  for r in rows:
    base = first.setdefault((r['case'], r['variant']), r['epoch_s'])
    lines.append(f'| {r["case"]} | {r["variant"]} | {r["num_seeds"]} | {r["steps_per_epoch"]} | '
                 f'{r["compile_s"]:.2f} | {r["epoch_s"]:.3f} | {r["ms_per_step"]:.3f} | '
                 f'{r["images_per_s"]:,.0f} | {r["epoch_s"] / base:.2f}x |')
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  del argv
  rows = [r for case in FLAGS.cases for n in FLAGS.seed_counts for r in benchmark(case, int(n))]
  table = markdown(rows)
  header = f'Device: {report.device_description()}; command: {" ".join(sys.argv)}'
  print(header + '\n\n' + table)
  out = Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix('.md').write_text(header + '\n\n' + table + '\n')
  report.write_json(out.with_suffix('.json'), dict(
      device=report.device_description(), versions=report.versions(),
      command=' '.join(sys.argv), quick=FLAGS.quick, rows=rows))


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
