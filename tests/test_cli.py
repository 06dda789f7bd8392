"""The command line: results.json of a small run, every bad input as one line + exit 2, and
the commands it prints."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, ours


def run_main(*args, timeout=300):
  return subprocess.run([sys.executable, str(ROOT / 'main.py'), *args], capture_output=True,
                        text=True, timeout=timeout, cwd=ROOT)


def test_small_linear_run_writes_results(tmp_path):
  result = run_main('--experiment=linear', '--loss=both', '--train_examples=500',
                    f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert 'learning_rate = 0.0255' in out and '784 trainable parameters' in out
  assert out.count('[Test set] Average loss: ') == 2 and 'Accuracy: ' in out
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['experiment'] == 'linear'
  assert results['config']['variants'] == ['logistic', 'sum_of_squares']
  assert results['config']['batch_size'] == 1 and results['config']['epochs'] == 3
  assert {'jax', 'flax', 'optax'} <= set(results['versions']) and results['device']
  for name in ('logistic', 'sum_of_squares'):
    variant = results['variants'][name]
    assert variant['total'] == 1991 and len(variant['correct']) == 1
    assert variant['test_accuracy'][0] == variant['correct'][0] / 1991 > 0.8
    assert len(variant['train_loss_per_epoch'][0]) == 3 == len(variant['epoch_time_s'])
    assert variant['compile_time_s'] > 0 and variant['train_time_s'] > 0
    assert variant['num_params'] == 784


BAD_INPUTS = [
    (['--experiment=resnet'], '--experiment=resnet',
     'accepted: lenet, lenet1998, lenet1998_distorted, lenet_lr_sweep, linear'),
    (['--experiment=linear', '--loss=hinge'], '--loss=hinge', 'accepted: logistic, sum_of_squares, both'),
    (['--c3=half'], '--c3=half', 'accepted: sparse, full, both'),
    (['--sampling=bootstrap'], '--sampling=bootstrap', 'accepted: shuffle, with_replacement'),
    (['--pixel_scale=minus_one'], '--pixel_scale=minus_one', 'accepted: unit, raw'),
    (['--learning_rate=0'], '--learning_rate=0', 'must be positive'),
    (['--learning_rate=-0.1'], '--learning_rate=-0.1', 'must be positive'),
    (['--epochs=0'], '--epochs=0', 'must be positive'),
    (['--batch_size=-5'], '--batch_size=-5', 'must be positive'),
    (['--experiment=lenet', '--loss=logistic'], 'loss=logistic',
     'applies only to --experiment=linear (accepted there: logistic, sum_of_squares, both)'),
    (['--experiment=linear', '--c3=full'], 'c3=full',
     'applies only to --experiment=lenet or lenet1998 (accepted there: sparse, full, both)'),
    (['--experiment=linear', '--train_examples=10', '--batch_size=11'], '--batch_size=11',
     'larger than the training set (10 examples); accepted: 1..10'),
    (['--no_such_flag=1'], 'no_such_flag', 'Unknown command line flag'),
    (['--kernels=gpu'], '--kernels=gpu', 'accepted: auto, cpu, stock'),
    (['--precision=bfloat16'], '--precision=bfloat16', 'accepted: float32, tf32'),
    (['--learning_rate=0.1,,0.2'], '--learning_rate=0.1,,0.2', 'item 2 (empty) is not a number'),
    (['--learning_rate=0.1,-2'], '--learning_rate=0.1,-2', 'item 2 (-2.0) must be positive'),
    (['--learning_rate=0.1,fast'], '--learning_rate=0.1,fast', 'item 2 (fast) is not a number'),
    (['--learning_rate=1e-50'], '--learning_rate=1e-50',
     'must be positive and finite in float32 (the training dtype): 1.4e-45 to 3.4e+38'),
    (['--learning_rate=inf'], '--learning_rate=inf', 'must be positive and finite in float32'),
    (['--learning_rate=1e-5,inf'], '--learning_rate=1e-05,inf', 'item 2 (inf) must be positive'),
    (['--experiment=linear', '--learning_rate=nan'], '--learning_rate=nan',
     'must be positive and finite'),
    (['--experiment=lenet', '--optimizer=sdlm'], '--optimizer=sdlm',
     'accepted for --experiment=lenet: sgd'),
    (['--experiment=lenet1998', '--sdlm_mu=0'], '--sdlm_mu=0', 'must be positive'),
    (['--experiment=lenet', '--sdlm_mu=0.5'], '--sdlm_mu=0.5', 'applies only with --optimizer=sdlm'),
    (['--models_per_chunk=-1'], '--models_per_chunk=-1', 'must be >= 0'),
    (['--experiment=linear', '--protocol=course'], '--protocol=course',
     'accepted for --experiment=linear: epochs, with_replacement'),
    (['--coordinator_address=10.0.0.1:1234'], '--coordinator_address without --num_processes, '
     '--process_id', "give all three, or --distributed to take them from the cluster's"),
    (['--coordinator_address=10.0.0.1', '--num_processes=2', '--process_id=0'],
     '--coordinator_address=10.0.0.1 is not HOST:PORT', 'a port from 1 to 65535'),
    (['--coordinator_address=h:70000', '--num_processes=2', '--process_id=0'],
     '--coordinator_address=h:70000', 'a port from 1 to 65535'),
    (['--coordinator_address=h:1234', '--num_processes=0', '--process_id=0'],
     '--num_processes=0', 'accepted: 1 or more'),
    (['--coordinator_address=h:1234', '--num_processes=2', '--process_id=2'],
     '--process_id=2 is out of range', 'accepted: 0 to 1 (--num_processes - 1)'),
    (['--distributed', '--initialization_timeout=0'], '--initialization_timeout=0',
     'accepted: 1 second or more'),
    (['--distributed', '--experiment=theory'], '--experiment=theory runs in one process',
     'accepted with a multi-process run: the experiments that train'),
]


@pytest.fixture(scope='module')
def bad_input_runs(tmp_path_factory):
  """Each BAD_INPUTS command run in its own workdir, three processes at a time (most of a
  run's time is importing JAX): [(workdir, completed process)]."""
  workdirs = [tmp_path_factory.mktemp('bad_input') for _ in BAD_INPUTS]
  run = lambda case, workdir: run_main(*case[0], f'--workdir={workdir}')
  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    return list(zip(workdirs, pool.map(run, BAD_INPUTS, workdirs)))


@pytest.mark.parametrize('case', range(len(BAD_INPUTS)), ids=[str(c) for c in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(bad_input_runs, case):
  _, names, accepted = BAD_INPUTS[case]
  workdir, result = bad_input_runs[case]
  assert result.returncode == 2, result.stderr
  lines = ours(result.stderr).strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert names in lines[0] and accepted in lines[0]
  assert 'Traceback' not in result.stderr and not list(workdir.iterdir())  # nothing written


def test_missing_dataset_is_one_line(tmp_path):
  result = run_main(f'--mnist_dir={tmp_path}/nowhere', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert ours(result.stderr).strip().count('\n') == 0
  assert 'MNIST folder not found' in result.stderr and '--mnist_dir' in result.stderr


@pytest.mark.slow  # over 8 s on 2 cores
def test_eval_before_training_prints_the_training_command_which_works(tmp_path):
  args = ['--experiment=linear', '--loss=logistic', '--train_examples=300', '--epochs=1']
  result = run_main(*args, '--mode=eval', f'--workdir={tmp_path}/w')
  assert result.returncode == 1 and len(ours(result.stderr).strip().splitlines()) == 1
  command = result.stderr.split('train first: ')[1].strip()
  trained = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
  assert trained.returncode == 0, trained.stderr
  assert '[logistic] seed 0: [Test set]' in trained.stdout
  assert (tmp_path / 'w' / 'results.json').exists()


@pytest.mark.slow
def test_course_lenet_run_reaches_98_2_percent(tmp_path):
  """The course's full run (10 epochs, both C3 variants): about 1 minute on 2 CPU cores.
  (Its speed, sparse against full, is measured by benchmarks/run.py, not asserted here.)"""
  result = run_main('--experiment=lenet', '--c3=both', f'--workdir={tmp_path}', timeout=1800)
  assert result.returncode == 0, result.stderr
  assert '60,806 trainable parameters' in result.stdout
  assert '61,706 trainable parameters' in result.stdout
  variants = json.loads((tmp_path / 'results.json').read_text())['variants']
  assert min(variants['sparse']['test_accuracy'][0], variants['full']['test_accuracy'][0]) >= 0.982


@pytest.mark.slow
def test_course_linear_run_reaches_94_5_percent(tmp_path):
  result = run_main('--experiment=linear', '--loss=both', f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr
  variants = json.loads((tmp_path / 'results.json').read_text())['variants']
  assert all(v['test_accuracy'][0] >= 0.945 for v in variants.values())


def test_ci_runs_exactly_the_readme_test_command():
  readme = (ROOT / 'README.md').read_text().splitlines()
  commands = readme[readme.index('```') + 1:readme.index('```') + 3]
  assert commands[0].endswith('main.py --experiment=lenet --c3=sparse')
  assert commands[1].endswith('-m pytest -q')
  assert commands[1] in (ROOT / '.ci' / 'run').read_text().splitlines()


def test_a_multi_process_run_needs_one_workdir_for_all():
  result = run_main('--distributed', '--experiment=linear')
  assert result.returncode == 2 and ours(result.stderr) == (
      'error: a multi-process run needs --workdir: the same folder for every process, on a '
      'filesystem they share\n')


@pytest.mark.skipif(any(v in os.environ for v in ('SLURM_JOB_ID', 'OMPI_COMM_WORLD_SIZE')),
                    reason='inside a cluster job, --distributed finds the cluster')
def test_distributed_outside_a_cluster_is_one_line(tmp_path):
  result = run_main('--distributed', '--experiment=linear', f'--workdir={tmp_path}')
  assert result.returncode == 2 and ours(result.stderr).startswith(
      'error: cannot join a multi-process run (coordinator_address should be defined.)')
  assert len(ours(result.stderr).splitlines()) == 1 and not list(tmp_path.iterdir())
