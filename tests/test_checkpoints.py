"""Orbax checkpoints: round trip, damaged checkpoints, chunked epochs; and through the command
line, eval after restore and resume after SIGKILL, SIGTERM or Ctrl-C with the commands the
run printed, bit-identical to an uninterrupted run."""

import gc
import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dnn_jax.core import data, models, training
from dnn_jax.run import checkpoints
from tests.conftest import (QUICK_RUN_FLAGS, QUICK_RUN_STEPS, ROOT, init_models, make_spec, ours,
                            train_in_calls)


def seeds_state(num_seeds=2):
  spec = make_spec(models.LeNet5(c3='sparse'), 'cross_entropy', 5, experiment='lenet',
                   batch_size=10)
  init_keys, data_keys = training.seed_keys(0, num_seeds)
  return init_models(init_keys, spec), data_keys


def test_round_trip_preserves_structure_and_values(tmp_path):
  state, data_keys = seeds_state()
  state = state.replace(step=state.step + 7)
  item = dict(state=state, data_keys=jax.random.key_data(data_keys), losses=np.arange(6.0))
  ckpts = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=3)
  ckpts.save(7, item)
  restored, numerics = ckpts.restore(checkpoints.abstract(item), None, print)
  assert numerics == []
  assert int(restored['state'].step[0]) == 7
  assert jax.tree.structure(restored) == jax.tree.structure(item)
  assert isinstance(restored['state'], training.TrainState)
  assert restored['state'].spec == state.spec
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(item)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keeps_only_the_newest(tmp_path):
  state, _ = seeds_state(1)
  ckpts = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=2)
  for step in (1, 2, 3):
    ckpts.save(step, dict(state=state))
  assert ckpts.steps() == [2, 3]


def test_a_failed_save_leaves_no_unfinished_folder_even_one_written_into_late(
    tmp_path, monkeypatch):
  """After a failed save, orbax's metadata thread can write into the unfinished folder as it
  is removed (seen once in CI on a full disk): it is removed again."""
  state, _ = seeds_state(1)
  ckpts = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=2)
  unfinished = tmp_path / 'ckpt' / f'3{checkpoints.UNFINISHED}'
  rmtree, removals = checkpoints.shutil.rmtree, []

  def late_write(path, ignore_errors=False):
    rmtree(path, ignore_errors=ignore_errors)
    if not removals:  # the first removal races with a write that remakes the folder
      unfinished.mkdir()
      (unfinished / '_CHECKPOINT_METADATA').write_text('{}')
    removals.append(path)

  def failing_save(*args, **kwargs):
    unfinished.mkdir()
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(checkpoints.shutil, 'rmtree', late_write)
  monkeypatch.setattr(ckpts._manager, 'save', failing_save)
  with pytest.raises(checkpoints.WriteError, match='step 3 .*No space left on device'):
    ckpts.save(3, dict(state=state))
  assert len(removals) == 2 and not unfinished.exists()


@pytest.fixture
def collect_garbage():
  yield
  gc.collect()


def orbax_failed_restore(test):
  """A restore that fails leaves orbax's internal coroutines unfinished, which pytest reports
  when they are collected: collect them within the test, where the report is filtered, not
  in whichever test runs next."""
  test = pytest.mark.usefixtures('collect_garbage')(test)
  return pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')(test)


@orbax_failed_restore
@pytest.mark.parametrize('damage', ['truncate', 'remove_metadata'])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
  state, _ = seeds_state(1)
  ckpts = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=3)
  for step in (1, 2):
    ckpts.save(step, dict(state=state.replace(step=state.step + step)))
  latest = tmp_path / 'ckpt' / '2'
  files = sorted((p.stat().st_size, p) for p in latest.rglob('*') if p.is_file())
  if damage == 'truncate':
    size, path = files[-1]
    path.write_bytes(path.read_bytes()[:size // 2])
  else:
    next(p for _, p in files if p.name == '_METADATA').unlink()
  messages = []
  item, _ = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=3).restore(
      checkpoints.abstract(dict(state=state)), None, messages.append)
  assert int(item['state'].step[0]) == 1
  assert 'step 2' in messages[0] and 'unreadable' in messages[0]
  assert (tmp_path / 'ckpt-unreadable' / '2').is_dir()  # set aside, not deleted
  assert (tmp_path / 'ckpt' / '1').is_dir()


@orbax_failed_restore
def test_only_damaged_checkpoints_is_an_error_not_a_fresh_start(tmp_path):
  state, _ = seeds_state(1)
  ckpts = checkpoints.Checkpoints(tmp_path / 'ckpt', keep=3)
  ckpts.save(1, dict(state=state))
  for path in (tmp_path / 'ckpt' / '1').rglob('_METADATA'):
    path.unlink()
  with pytest.raises(checkpoints.CheckpointError, match='no intact checkpoint.*--overwrite'):
    ckpts.restore(checkpoints.abstract(dict(state=state)), None, print)


def test_chunked_epochs_equal_whole_epochs(mnist_train):
  images, labels = mnist_train.images[:60], mnist_train.labels[:60]
  results = []
  for chunk in (0, 7):
    spec = make_spec(models.LinearClassifier(), 'logistic', 30, 75, batch_size=2,
                     learning_rate=0.01, checkpoint_every_steps=chunk)
    state, _ = train_in_calls(spec, images, labels)
    results.append(np.asarray(state.params['linear']['kernel']))
  assert int(state.step) == 75
  np.testing.assert_array_equal(results[0], results[1])


def main_process(*args, cwd=ROOT):
  return subprocess.Popen([sys.executable, str(ROOT / 'main.py'), *QUICK_RUN_FLAGS, *args],
                          cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def printed_command(output, after):
  """The command a run printed after `after` (to the end of its line)."""
  return output.split(after, 1)[1].splitlines()[0]


def run_printed(command, cwd):
  """Run a printed command verbatim through the shell, as a user pasting it would."""
  result = subprocess.run(command, shell=True, cwd=cwd, text=True, capture_output=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  return result.stdout


def final_arrays(workdir):
  """The last checkpoint's step and arrays, but for the wall-clock times."""
  ckpt_dir = workdir / 'checkpoints' / 'logistic'
  last = max(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  tree = ocp.StandardCheckpointer().restore(ckpt_dir / str(last) / 'default')
  del tree['epoch_times'], tree['eval_times']
  return last, jax.tree.leaves(tree)


def result_numbers(workdir):
  """results.json's per-seed test numbers and training losses (not the timings)."""
  variant = json.loads((workdir / 'results.json').read_text())['variants']['logistic']
  return {k: variant[k] for k in ('test_accuracy', 'test_loss', 'correct', 'train_loss_per_epoch',
                                  'test_accuracy_per_epoch', 'test_loss_per_epoch', 'confusion')}


def metric_lines(workdir):
  """metrics.jsonl's lines, without their times."""
  return [{k: v for k, v in json.loads(line).items()
           if k not in ('time', 'train_time_s', 'eval_time_s')}
          for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def assert_same_metric_lines(workdir, expected_workdir):
  """A line per checkpoint (each 100 steps, and each epoch's end), none twice, none missing."""
  lines = metric_lines(workdir)
  assert lines == metric_lines(expected_workdir)
  assert [l['epoch'] for l in lines if l['epoch_end']] == [1, 2, 3]
  assert len(lines) == QUICK_RUN_STEPS // 100


def interrupt(sig, cwd, *args, at_start=False):
  """Start a run in `cwd`, wait for its first checkpoint (or, `at_start`, only for the line
  naming its workdir, before training starts), send `sig`: (return code, stdout, stderr, the
  workdir it printed)."""
  process = main_process(*args, cwd=cwd)
  first_lines = ''
  while 'to resume after an interruption: ' not in first_lines:
    line = process.stdout.readline()
    assert line, process.communicate()  # the run ended before naming its workdir
    first_lines += line
  workdir = cwd / printed_command(first_lines, '--workdir=')
  deadline = time.time() + 240
  while not at_start and not (workdir / 'checkpoints' / 'logistic' / '100').is_dir():
    assert process.poll() is None and time.time() < deadline, process.communicate()
    time.sleep(0.05)
  process.send_signal(sig)
  stdout, stderr = process.communicate(timeout=240)
  return process.returncode, first_lines + stdout, stderr, workdir


def test_printed_eval_command_prints_the_training_numbers(quick_run):
  workdir, train_stdout = quick_run
  command = printed_command(train_stdout, 'to evaluate again: ')
  assert command.endswith(f'--mode=eval --workdir={workdir}')  # nothing else needed
  eval_stdout = run_printed(command, ROOT)
  test_lines = lambda out: [l for l in out.splitlines() if '[Test set]' in l]
  assert len(test_lines(train_stdout)) == 2  # one per seed
  assert test_lines(eval_stdout) == test_lines(train_stdout)
  assert f'restored checkpoint at step {QUICK_RUN_STEPS}' in eval_stdout


@pytest.mark.slow  # over 8 s on 2 cores
def test_sigkill_mid_run_then_the_printed_resume_command_is_bit_identical(quick_run, tmp_path):
  code, stdout, _, workdir = interrupt(signal.SIGKILL, tmp_path, f'--workdir={tmp_path / "w"}')
  assert code == -signal.SIGKILL
  resumed = run_printed(printed_command(stdout, 'to resume after an interruption: '), tmp_path)
  assert 'Resuming from checkpoint at epoch' in resumed
  expected_step, expected = final_arrays(quick_run[0])
  step, got = final_arrays(workdir)
  assert step == expected_step == QUICK_RUN_STEPS
  for a, b in zip(got, expected):
    np.testing.assert_array_equal(a, b)
  assert_same_metric_lines(workdir, quick_run[0])


@pytest.mark.parametrize('sig, at_start, message', [
    (signal.SIGTERM, False, 'interrupted by signal 15 at epoch '),
    pytest.param(signal.SIGINT, True, 'interrupted by signal 2 before training on from step 0: '
                 'no checkpoint', marks=pytest.mark.slow),
], ids=['sigterm', 'ctrl_c_at_start'])
def test_a_stopped_run_without_workdir_resumes_with_the_command_it_printed(
    quick_run, tmp_path, sig, at_start, message):
  """A newcomer's run (no --workdir, so a fresh timestamped folder): stopped (mid-run, or as
  it starts), then resumed with the command it printed, it ends with the uninterrupted run's
  results. (Ctrl-C and SIGTERM share one handler.)"""
  returncode, _, stderr, workdir = interrupt(sig, tmp_path, at_start=at_start)
  assert returncode == 128 + sig and workdir.parent == tmp_path / 'runs'
  assert len(ours(stderr).strip().splitlines()) == 1 and message in stderr  # what is saved; what next
  command = printed_command(stderr, 'resume with: ')
  assert '--workdir=runs/linear-' in command
  resumed = run_printed(command, tmp_path)
  if not at_start:
    step = int(resumed.split('Resuming from checkpoint at epoch ')[1].split('step ')[1].split()[0])
    assert 100 <= step < QUICK_RUN_STEPS and step % 100 == 0
  for a, b in zip(final_arrays(workdir)[1], final_arrays(quick_run[0])[1]):
    np.testing.assert_array_equal(a, b)
  assert result_numbers(workdir) == result_numbers(quick_run[0])
  assert_same_metric_lines(workdir, quick_run[0])


def test_a_run_moves_between_platforms(quick_run):
  """Settings that change speed but not the numbers are not part of a run's identity."""
  workdir, train_stdout = quick_run
  result = subprocess.run(
      [sys.executable, str(ROOT / 'main.py'), '--mode=eval', f'--workdir={workdir}',
       '--kernels=stock', '--micro_batches=3', '--eval_batch_size=7',
       f'--mnist_dir={data.DEFAULT_MNIST_DIR}'], cwd=ROOT, text=True, capture_output=True,
      timeout=300)
  assert result.returncode == 0, result.stderr
  test_lines = lambda out: [l for l in out.splitlines() if '[Test set]' in l]
  assert test_lines(result.stdout) == test_lines(train_stdout)


def test_the_digest_is_of_each_model_s_rows():
  item = dict(a=np.arange(12, dtype=np.float32).reshape(3, 4), b=np.float32(2))
  changed = dict(a=item['a'].copy(), b=item['b'])
  changed['a'][2, 3] += 1
  assert checkpoints.digest(item) == checkpoints.digest(jax.tree.map(jax.numpy.asarray, item))
  assert checkpoints.digest(item) != checkpoints.digest(changed)
  assert checkpoints.digest(item) != checkpoints.digest(dict(a=item['a'].reshape(4, 3),
                                                             b=item['b']))
