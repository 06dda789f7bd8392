"""The device check: one command that answers, on a machine lent for minutes, every open
question about this project on its accelerator, stage by stage, each within a time cap.

  python -m benchmarks.device_check --out=DIR [--peer=PATH] [--small]

Stages (benchmarks/README.md says how to run it on the GPU machine and how to read it):
  environment  versions, devices, the driver, XLA's flags
  precision    the stock against the CPU kernels, and each experiment's first steps against
               the regression test's numbers, at each precision; the matmul rate at each
  determinism  two fresh processes of one LeNet run, deterministic and not: bit for bit?
  course       the course's two commands, then evaluation of each: accuracy, times, and
               whether evaluation prints training's test lines
  tests        the default test suite (in parallel where pytest-xdist is installed)
  speed        LeNet, 10 epochs, at 1, 32 and 256 models (8 learning rates x 32 seeds), and
               the linear experiments, steady state, compile apart
  peer         the course's PyTorch code (--peer) on the same device: one LeNet epoch
Each stage runs in a process of its own, within its cap; what it finds is written to
DIR/results.json and DIR/report.md as soon as it ends (a run cut short keeps what it found),
its output to DIR/log.txt. `--small`: tiny slices and subsets, on any machine (CI runs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string('out', None, 'The folder the findings go to.', required=True)
flags.DEFINE_string('peer', '', "The course's PyTorch code (course_pytorch.py); empty: skipped.")
flags.DEFINE_bool('small', False, 'Tiny slices and subsets: a check of the check, on any machine.')
flags.DEFINE_string('stage', '', 'Run this one stage, in this process (what the parent does).')

# stage -> (cap in seconds, full; in small mode). The full caps sum to 9 minutes.
CAPS = {'environment': (20, 60), 'precision': (70, 240), 'determinism': (90, 240),
        'course': (100, 240), 'tests': (120, 300), 'speed': (100, 240), 'peer': (40, 120)}
# The GPU targets of one H200 at float32: (figure, at most or at least).
TARGETS = {'lenet 1 model, 10 epochs (s)': (1.5, 'at most'),
           'lenet 32 models, 10 epochs (s)': (6.0, 'at most'),
           'lenet 256 models, 10 epochs (s)': (30.0, 'at most'),
           'x the course PyTorch code': (30.0, 'at least')}
# The course LeNet's test accuracy over 8 seeds on the CPU, min and max (docs/science.md).
CPU_SPREAD = {'sparse': (0.9847, 0.9876), 'full': (0.9846, 0.9885)}


def _run(command: list[str], timeout: float, cwd: Path = ROOT, env: dict | None = None
         ) -> tuple[int, str]:
  """(exit code, output) of `command`; 124 where it ran out of time."""
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE='false', PYTHONUNBUFFERED='1',
             **(env or {}))
  try:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout + done.stderr
  except subprocess.TimeoutExpired as e:
    output = (e.stdout or b'') + (e.stderr or b'')
    return 124, output.decode(errors='replace') if isinstance(output, bytes) else output


def _main_py(*flags_: str, timeout: float, env: dict | None = None) -> tuple[int, str]:
  return _run([sys.executable, str(ROOT / 'main.py'), *flags_], timeout, env=env)


def _test_lines(output: str) -> list[str]:
  return [line for line in output.splitlines() if '[Test set]' in line]


# --- the stages: each returns what it found, as JSON values ---

def environment(out: Path, small: bool) -> dict[str, Any]:
  del out, small
  import jax  # pylint: disable=import-outside-toplevel
  from dnn_jax.results import environment as env  # pylint: disable=import-outside-toplevel
  found = dict(versions=env.versions(), devices=env.device_description(),
               backend=jax.default_backend(), xla_flags=os.environ.get('XLA_FLAGS', ''),
               cpus=os.cpu_count(), python=sys.executable)
  if shutil.which('nvidia-smi'):
    found['nvidia_smi'] = _run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total,'
                                'clocks.max.sm', '--format=csv,noheader'], 20)[1].strip()
  return found


def precision(out: Path, small: bool) -> dict[str, Any]:
  """At each precision: how far the stock kernels are from the CPU ones (which are plain
  matmuls), how far the first steps are from the regression test's numbers, the matmul rate."""
  del out
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from benchmarks import measure  # pylint: disable=import-outside-toplevel
  from dnn_jax.core import kernels, platform  # pylint: disable=import-outside-toplevel
  from tests import test_regression  # pylint: disable=import-outside-toplevel
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], (6, 100, 14, 14))  # S2's maps of a batch, channels first
  kernel = jax.random.normal(keys[1], (5, 5, 6, 16)) / 12
  cases = [('linear', 'logistic')] if small else list(test_regression.EXPECTED)
  found = {}
  for name, value in platform.PRECISIONS.items():
    with jax.default_matmul_precision(value):
      stock = np.asarray(jax.jit(kernels.stock_conv, static_argnums=2)(x, kernel, 0))
      ours = np.asarray(jax.jit(kernels.patches_conv, static_argnums=2)(x, kernel, 0))
    regression = {}
    for case in cases:
      got = test_regression.first_steps(*case, precision=name)
      regression['/'.join(case)] = float(np.max(np.abs(np.subtract(got, test_regression.EXPECTED[
          case])) / np.abs(test_regression.EXPECTED[case])))
    found[name] = dict(
        conv_max_abs_difference=float(np.abs(stock - ours).max()),
        conv_max_abs_value=float(np.abs(stock).max()),
        regression_max_relative_difference=regression,
        regression_within_1e_5=all(v <= 1e-5 for v in regression.values()),
        matmul_gflops=measure.matmul_flops_per_s(name, 512 if small else None) / 1e9)
  return found


def determinism(out: Path, small: bool) -> dict[str, Any]:
  """The same run in two fresh processes, with deterministic GPU execution and without; and
  an evaluation of the first against its own test lines."""
  run = (['--experiment=linear', '--num_seeds=2', '--epochs=1', '--train_examples=600'] if small
         else ['--experiment=lenet', '--c3=sparse', '--num_seeds=2', '--epochs=1',
               '--train_examples=12000'])
  found = {}
  for deterministic in (True, False):
    results = []
    for attempt in (1, 2):
      workdir = out / 'work' / f'determinism-{deterministic}-{attempt}'
      code, output = _main_py(*run, f'--deterministic={deterministic}', f'--workdir={workdir}',
                              timeout=CAPS['determinism'][small] / 5)
      numbers = json.loads((workdir / 'results.json').read_text())['variants'] if code == 0 else {}
      results.append((code, output, numbers))
    (code_a, out_a, a), (code_b, _, b) = results
    evaluated = _main_py('--mode=eval', f'--workdir={out / "work" / f"determinism-{deterministic}-1"}',
                         timeout=CAPS['determinism'][small] / 5)
    found[f'deterministic={deterministic}'] = dict(
        exit_codes=[code_a, code_b],
        same_numbers=bool(a) and all(a[v][k] == b[v][k] for v in a for k in
                                     ('test_loss', 'correct', 'train_loss_per_epoch')),
        evaluation_repeats_training=_test_lines(evaluated[1]) == _test_lines(out_a))
  return found


def course(out: Path, small: bool) -> dict[str, Any]:
  """The README's two course commands, each evaluated again afterwards."""
  slice_ = ['--train_examples=1000', '--epochs=1'] if small else []
  found = {}
  for name, run in (('lenet', ['--experiment=lenet', '--c3=sparse' if small else '--c3=both']),
                    ('linear', ['--experiment=linear', '--loss=both'])):
    workdir = out / 'work' / f'course-{name}'
    start = time.perf_counter()
    code, output = _main_py(*run, *slice_, f'--workdir={workdir}',
                            timeout=CAPS['course'][small] / 2.5)
    wall = time.perf_counter() - start
    if code:
      found[name] = dict(exit_code=code, tail=output[-1500:])
      continue
    variants = json.loads((workdir / 'results.json').read_text())['variants']
    evaluated = _main_py('--mode=eval', f'--workdir={workdir}', timeout=60)
    found[name] = dict(
        wall_s=wall, evaluation_repeats_training=_test_lines(evaluated[1]) == _test_lines(output),
        **{v: dict(test_accuracy=r['test_accuracy'], train_time_s=r['train_time_s'],
                   compile_time_s=r['compile_time_s'], numerics=r['numerics'])
           for v, r in variants.items()})
  return found


def tests(out: Path, small: bool) -> dict[str, Any]:
  """The default suite: in parallel where pytest-xdist is there, each test within a time
  limit where pytest-timeout is."""
  del out
  import importlib.util  # pylint: disable=import-outside-toplevel
  command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rfE']
  if importlib.util.find_spec('xdist'):
    command += ['-n', str(min(8, os.cpu_count() or 1))]
  if importlib.util.find_spec('pytest_timeout'):
    command += ['--timeout=120']
  if small:
    command += ['tests/test_config.py', 'tests/test_catalog.py', 'tests/test_losses.py']
  code, output = _run(command, CAPS['tests'][small] - 5)
  summary = re.findall(r'^(?:FAILED|ERROR) .*$|^=* ?\d+ (?:passed|failed).*$', output, re.M)
  return dict(exit_code=code, summary=summary[-40:], tail=output[-3000:])


def speed(out: Path, small: bool) -> dict[str, Any]:
  """Steady-state epochs (compile apart) of LeNet at 1, 32 and 256 models and of the linear
  experiments: the GPU targets' figures."""
  del out
  from benchmarks import measure  # pylint: disable=import-outside-toplevel
  peak = measure.matmul_flops_per_s('float32', 512 if small else None)
  rates = (0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3)
  runs = ([('lenet', 1, None), ('lenet', 2, None), ('linear', 2, None)] if small else
          [('lenet', 1, None), ('lenet', 32, None), ('lenet', 32, rates), ('linear', 1, None),
           ('linear', 8, None), ('linear_with_replacement', 8, None)])
  rows = []
  for case, seeds, lrs in runs:
    rows += measure.benchmark(case, seeds, lrs, peak, quick=small, repeats=1 if small else 3,
                            variants='full' if case == 'lenet' else 'logistic')
  found = dict(matmul_gflops=peak / 1e9, rows=rows)
  for row in rows:
    if row['case'] == 'lenet':
      found[f'lenet {row["num_models"]} model{"s" * (row["num_models"] > 1)}, 10 epochs (s)'] = (
          10 * row['epoch_s'])
  return found


def peer(out: Path, small: bool) -> dict[str, Any]:
  """The course's PyTorch LeNet (full C3), one epoch, on the same device as dnn_jax."""
  del out
  if not FLAGS.peer or not Path(FLAGS.peer).is_file():
    return dict(skipped=f'no peer code at {FLAGS.peer!r}')
  limit = ['2000'] if small else []
  code, output = _run([sys.executable, FLAGS.peer, '--data', str(ROOT / 'data' / 'mnist'),
                       'lenet', 'full', '1', *limit], CAPS['peer'][small] - 5)
  train_s = re.search(r'train_s ([\d.]+)', output)
  return dict(exit_code=code, train_s_per_epoch=float(train_s.group(1)) if train_s else None,
              tail=output[-800:])


STAGES: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    'environment': environment, 'precision': precision, 'determinism': determinism,
    'course': course, 'tests': tests, 'speed': speed, 'peer': peer}


def _verdicts(results: dict[str, Any]) -> dict[str, Any]:
  """The GPU targets and the course's accuracies, against what the stages found."""
  speed_found, peer_found = results.get('speed', {}), results.get('peer', {})
  measured = {name: speed_found.get(name) for name in TARGETS}
  ours = next((r['epoch_s'] for r in speed_found.get('rows', ())
               if r['case'] == 'lenet' and r['num_models'] == 1), None)
  if ours and peer_found.get('train_s_per_epoch'):
    measured['x the course PyTorch code'] = peer_found['train_s_per_epoch'] / ours
  verdicts = {}
  for name, (target, how) in TARGETS.items():
    value = measured[name]
    met = value is not None and (value <= target if how == 'at most' else value >= target)
    verdicts[name] = dict(target=f'{how} {target}', measured=value, met=met)
  lenet = results.get('course', {}).get('lenet', {})
  for variant, (low, high) in CPU_SPREAD.items():
    if variant in lenet:
      accuracy = lenet[variant]['test_accuracy'][0]
      verdicts[f'course lenet {variant} accuracy'] = dict(
          target=f'{low}-{high} (the CPU runs)', measured=accuracy, met=low <= accuracy <= high)
  return verdicts


def _report(results: dict[str, Any]) -> str:
  lines = ['# Device check', '']
  for stage, found in results.items():
    lines += [f'## {stage}', '', '```', json.dumps(found, indent=1)[:6000], '```', '']
  return '\n'.join(lines)


def main(argv: list[str]) -> int:
  del argv
  out = Path(FLAGS.out).absolute()
  out.mkdir(parents=True, exist_ok=True)
  if FLAGS.stage:  # a child: one stage, its findings as JSON on the last line
    found = STAGES[FLAGS.stage](out, FLAGS.small)
    print('FOUND ' + json.dumps(found))
    return 0
  results: dict[str, Any] = {}
  log = out / 'log.txt'
  for stage in STAGES:
    cap = CAPS[stage][FLAGS.small]
    start = time.perf_counter()
    command = [sys.executable, '-m', 'benchmarks.device_check', f'--stage={stage}',
               f'--out={out}', f'--peer={FLAGS.peer}', f'--small={FLAGS.small}']
    code, output = _run(command, cap, env=dict(PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get('PYTHONPATH', '')]))))
    found_line = next((l for l in reversed(output.splitlines()) if l.startswith('FOUND ')), None)
    results[stage] = dict(json.loads(found_line[6:]) if found_line else {},
                          stage_exit_code=code, stage_s=round(time.perf_counter() - start, 1),
                          **({} if found_line else dict(tail=output[-2000:])))
    results['verdicts'] = 'small: slices, no targets' if FLAGS.small else _verdicts(results)
    with open(log, 'a') as f:
      f.write(f'===== {stage} (exit {code}, {results[stage]["stage_s"]} s)\n{output}\n')
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    (out / 'report.md').write_text(_report(results))
    print(f'{stage}: exit {code} in {results[stage]["stage_s"]} s', flush=True)
  shutil.rmtree(out / 'work', ignore_errors=True)  # the runs' workdirs: not brought back
  return 0


if __name__ == '__main__':
  app.run(main)
