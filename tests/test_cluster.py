"""The multi-process runtime: its functions in one process, and real runs of 2 and 4 local
processes (gloo CPU collectives, one CPU device each) against the same run in one process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.errors import ConfigError, WriteError
from dnn_jax.run import cluster
from tests.conftest import CPU_ONLY, ROOT, ours


def test_host_gives_numpy_of_every_leaf():
  tree = {'a': jnp.arange(3), 'b': (np.ones(2), jnp.float32(2.5))}
  got = cluster.host(tree)
  assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(got))
  np.testing.assert_array_equal(got['a'], [0, 1, 2])
  assert got['b'][1] == 2.5


def test_every_process_keeps_values_past_32_bits():
  assert cluster.every_process(2**40 + 5).tolist() == [2**40 + 5]
  assert cluster.every_process(0).tolist() == [0]


def test_on_main_runs_the_function_and_passes_its_errors_on():
  ran = []
  cluster.on_main(lambda: ran.append(1), (ConfigError,))
  assert ran == [1]

  def refuse():
    raise ConfigError('--workdir=x is a file')

  with pytest.raises(ConfigError, match='is a file'):
    cluster.on_main(refuse, (ConfigError, WriteError))


def test_a_failed_collective_is_a_lost_process_and_nothing_else_is():
  assert cluster.lost_process(ValueError('UNKNOWN: Gloo AllGather failed: ... Connection '
                                         'reset by peer'))
  assert cluster.lost_process(jax.errors.JaxRuntimeError('UNAVAILABLE: Socket closed'))
  try:
    try:
      raise jax.errors.JaxRuntimeError('UNAVAILABLE: Connection closed by peer')
    except jax.errors.JaxRuntimeError as e:
      raise RuntimeError('while saving') from e
  except RuntimeError as wrapped:
    assert cluster.lost_process(wrapped)
  assert not cluster.lost_process(ValueError('UNAVAILABLE'))  # not the runtime's
  assert not cluster.lost_process(jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: out of memory'))


def test_one_process_has_no_prefix():
  assert cluster.prefix() == '' and cluster.count() == 1 and cluster.is_main()


# --- real multi-process runs (slow) ---------------------------------------------------------

# A small sweep: 2 learning rates x 4 seeds = 8 models of the linear classifier, 2 epochs of
# 1,500 batch-1 steps, a checkpoint every 500 steps; 2 models side by side on every device, so
# that each model meets the same compiled program in 1, 2 or 4 processes (XLA rounds a model's
# sums differently in programs of another width: a last-digit difference of the test loss).
SWEEP = ['--experiment=linear', '--loss=logistic', '--learning_rate=0.005,0.02', '--num_seeds=4',
         '--epochs=2', '--train_examples=1500', '--checkpoint_every_steps=500',
         '--models_per_chunk=2']
TIMINGS = ('compile_time_s', 'train_time_s', 'eval_time_s', 'epoch_time_s',
           'eval_time_per_epoch_s', 'xla_memory_estimate_bytes', 'peak_device_memory_bytes',
           'models_per_chunk', 'numerics')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(num_processes, workdir, *flags, port=None, own_flags=None):
  """`num_processes` processes of main.py on this machine, one CPU device each; `own_flags`:
  each process's flags beside `flags`."""
  port = port or free_port()
  env = dict(os.environ, JAX_NUM_CPU_DEVICES='1', **CPU_ONLY)  # not 2-4 processes on one GPU
  env.pop('XLA_FLAGS', None)
  return [subprocess.Popen(
      [sys.executable, str(ROOT / 'main.py'), *flags, *(own_flags or {}).get(index, ()),
       f'--workdir={workdir}', f'--coordinator_address=127.0.0.1:{port}',
       f'--num_processes={num_processes}', f'--process_id={index}'], cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for index in range(num_processes)]


def finish(processes, timeout=300):
  """(exit code, stdout, stderr but the runtime's own lines) of each process."""
  return [(p.wait(timeout), *(lambda out, err: (out, ours(err)))(*p.communicate()))
          for p in processes]


def numbers(workdir):
  """Every variant's per-model results, but for times and placement."""
  results = json.loads((workdir / 'results.json').read_text())
  return {variant: {k: v for k, v in r.items() if k not in TIMINGS}
          for variant, r in results['variants'].items()}


@pytest.fixture(scope='module')
def one_process(tmp_path_factory):
  """The sweep in one process: its workdir."""
  workdir = tmp_path_factory.mktemp('one_process')
  result = subprocess.run([sys.executable, str(ROOT / 'main.py'), *SWEEP, f'--workdir={workdir}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **CPU_ONLY))
  assert result.returncode == 0, result.stderr
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('num_processes', [2, 4])
def test_each_model_is_the_same_over_several_processes(tmp_path, one_process, num_processes):
  ended = finish(start(num_processes, tmp_path, *SWEEP))
  assert [code for code, _, _ in ended] == [0] * num_processes, [err for *_, err in ended]
  assert numbers(tmp_path) == numbers(one_process)
  (_, main_out, _), *others = ended
  assert all(line.startswith(f'[process 0/{num_processes}] ') for line in main_out.splitlines())
  assert 'test accuracy' in main_out and 'results: ' in main_out
  for index, (_, out, err) in enumerate(others, 1):
    lines = out.splitlines()
    assert lines[0].startswith(f'[process {index}/{num_processes}] joined on ')
    assert lines[-1] == (f'[process {index}/{num_processes}] done: process 0 wrote the results '
                         f'to {tmp_path}')
    assert len(lines) == 2 and not err  # process 0 alone prints the log
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['device'] == f'{num_processes} x cpu:cpu in {num_processes} processes'
  assert len((tmp_path / 'metrics.jsonl').read_text().splitlines()) == 6  # one writer


@pytest.mark.slow
def test_a_killed_process_ends_the_run_in_bounded_time_and_a_rerun_resumes(tmp_path, one_process):
  port = free_port()
  processes = start(4, tmp_path, *SWEEP, port=port)
  checkpoints = tmp_path / 'checkpoints' / 'logistic'
  deadline = time.time() + 240
  while not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
    assert time.time() < deadline and all(p.poll() is None for p in processes)
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.time()
  survivors = finish([processes[0], *processes[2:]], timeout=cluster.HEARTBEAT_TIMEOUT_S + 60)
  assert time.time() - killed_at < cluster.HEARTBEAT_TIMEOUT_S + 30
  for index, (code, _, err) in zip((0, 2, 3), survivors):
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f'[process {index}/4] error: process 1 of the run stopped')
    assert 'rerun the same command on every process' in err and 'Traceback' not in err
  processes[1].communicate()

  ended = finish(start(2, tmp_path, *SWEEP))  # on 2 processes: the checkpoint's sha256 holds
  assert [code for code, _, _ in ended] == [0] * 2, [err for *_, err in ended]
  assert 'Resuming from checkpoint at epoch' in ended[0][1]
  assert numbers(tmp_path) == numbers(one_process)


@pytest.mark.slow
@pytest.mark.parametrize('differing, named', [
    ('--pixel_scale=raw', "pixel_scale='raw' where process 0 sets none"),
    ('--epochs=3', 'epochs=3 where process 0 has 2'),
    ('--seed=5', 'seed=5 where process 0 sets none'),
    ('--mode=eval', "mode='eval' where process 0 has 'train'"),
], ids=['pixel_scale', 'epochs', 'seed', 'mode'])
def test_processes_started_differently_are_refused_on_every_process(tmp_path, differing, named):
  ended = finish(start(2, tmp_path, *SWEEP, own_flags={1: [differing]}), timeout=120)
  for index, (code, _, err) in enumerate(ended):
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f'[process {index}/2] error: process 1 was started with {named}: '
                          'every process of a run must be given the same settings'), err
  assert not (tmp_path / 'config.json').exists() and not (tmp_path / 'checkpoints').exists()


@pytest.mark.slow
def test_a_coordinator_out_of_reach_is_one_line_in_bounded_time(tmp_path):
  port = free_port()
  start_time = time.time()
  result = subprocess.run(
      [sys.executable, str(ROOT / 'main.py'), *SWEEP, f'--workdir={tmp_path}',
       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2', '--process_id=1',
       '--initialization_timeout=3'], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env=dict(os.environ, **CPU_ONLY))
  assert time.time() - start_time < 60
  assert result.returncode == 1 and ours(result.stderr) == (
      f'[process 1/2] error: cannot reach the coordinator at 127.0.0.1:{port} within 3s; start '
      'process 0 first, check --coordinator_address, or raise --initialization_timeout\n')
  assert not list(tmp_path.iterdir())
