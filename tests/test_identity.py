"""One run, one identity: a checkpoint of another run, seed or layout is refused and left in
place; a config.json changed by hand is refused; a checkpoint without its sha256 is damaged; a
run that lost every checkpoint refuses until told; the lock cannot be fooled by links, deletion
or a moved workdir; --overwrite never shows old results with a new config; a model's numerics
are recorded with it. Each through the command line, as an operator meets it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import dnn_jax
from dnn_jax.run import identity, workdirs
from tests.conftest import QUICK_RUN_FLAGS, ROOT, ours
from tests.test_faults import (MAIN, finished, main, numbers, one_error_line, resume,
                               start_paused_run)

RUN = QUICK_RUN_FLAGS


@pytest.fixture(scope='module')
def reference(quick_run):
  return numbers(quick_run[0])


@pytest.fixture
def copied(quick_run, tmp_path):
  """A copy of the finished quick run, to damage."""
  workdir = tmp_path / 'w'
  shutil.copytree(quick_run[0], workdir)
  return workdir


def checkpoint_dir(workdir, step=None):
  folder = workdir / 'checkpoints' / 'logistic'
  return folder if step is None else folder / str(step)


def flip_array_bytes(step_dir):
  data = max((p for p in step_dir.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  flipped = bytearray(data.read_bytes())
  middle = len(flipped) // 2
  flipped[middle:middle + 64] = bytes(b ^ 0xFF for b in flipped[middle:middle + 64])
  data.write_bytes(bytes(flipped))


def edit_metadata(step_dir, edit):
  path = step_dir / '_CHECKPOINT_METADATA'
  metadata = json.loads(path.read_text())
  edit(metadata['custom_metadata'])
  path.write_text(json.dumps(metadata))


def listing(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))


# --- a checkpoint is tied to its run ---

@pytest.mark.slow
def test_a_checkpoint_of_another_seed_is_refused_and_left_in_place(copied, tmp_path):
  other = tmp_path / 'other'
  assert main(*RUN, '--seed=1', '--epochs=1', f'--workdir={other}').returncode == 0
  shutil.rmtree(checkpoint_dir(copied))
  shutil.copytree(checkpoint_dir(other), checkpoint_dir(copied))
  before = listing(copied / 'checkpoints')
  for args in (RUN, ['--mode=eval']):
    line = one_error_line(main(*args, f'--workdir={copied}'), 1, 'is of another run: ',
                          'epochs (checkpoint 1, this run 3)', 'seed (checkpoint 1, this run 0)',
                          'it is left where it is')
    assert 'step 1500' in line
  assert listing(copied / 'checkpoints') == before  # nothing moved aside, nothing trained


def test_a_config_json_changed_by_hand_is_refused(copied):
  path = copied / 'config.json'
  path.write_text(path.read_text().replace('"learning_rate": 0.0255', '"learning_rate": 0.05'))
  for args in ([*RUN, '--learning_rate=0.05'], ['--mode=eval']):
    one_error_line(main(*args, f'--workdir={copied}'), 2, 'config.json was changed after its run '
                   'wrote it', '--overwrite')


@pytest.mark.slow
def test_a_checkpoint_without_its_sha256_is_damaged(copied, reference):
  newest = checkpoint_dir(copied, 4500)
  edit_metadata(newest, lambda custom: custom.clear())  # its metadata gone...
  flip_array_bytes(newest)  # ...and its arrays damaged: nothing could tell
  evaluation = main('--mode=eval', f'--workdir={copied}')
  assert evaluation.returncode == 0, evaluation.stderr
  assert ('checkpoint at step 4500' in evaluation.stdout
          and 'is unverified (no sha256 of its arrays was saved with it); trying the previous'
          in evaluation.stdout)
  assert 'Resuming from checkpoint at epoch 2, step 4400' in resume(copied).stdout
  assert (checkpoint_dir(copied).parent / 'logistic-unreadable' / '4500').is_dir()
  assert numbers(copied) == reference


@pytest.mark.slow
def test_an_intact_checkpoint_of_an_earlier_layout_is_refused_and_kept(copied):
  def as_earlier_versions_wrote(custom):
    for key in ('layout', 'identity', 'settings', 'variant', 'numerics', 'dnn_jax'):
      custom.pop(key)
  for step in (4300, 4400, 4500):
    edit_metadata(checkpoint_dir(copied, step), as_earlier_versions_wrote)
  for _ in range(2):  # and again: nothing was moved or trained
    one_error_line(main(*RUN, f'--workdir={copied}'), 1, 'checkpoint at step 4500',
                   'was written by dnn_jax before 0.1.0 in checkpoint layout 1, and this version '
                   f'reads layout {identity.LAYOUT}', 'it is left where it is')
  assert sorted(p.name for p in checkpoint_dir(copied).parent.iterdir()) == ['logistic']


@pytest.mark.slow
def test_a_run_that_lost_every_checkpoint_refuses_until_told(copied, reference):
  for step in (4300, 4400, 4500):
    flip_array_bytes(checkpoint_dir(copied, step))
  first = main(*RUN, f'--workdir={copied}')
  assert ours(first.stderr).count('\n') == 1 and first.returncode == 1, first.stderr
  assert 'no intact checkpoint in' in first.stderr and '--restart trains from step 0' in first.stderr
  for _ in range(2):  # a rerun (a requeued job) refuses as well, and trains nothing
    one_error_line(main(*RUN, f'--workdir={copied}'), 1, 'no intact checkpoint of logistic',
                   'every one was found damaged and set aside', '--restart', '--overwrite')
  assert not list(checkpoint_dir(copied).iterdir())
  restarted = resume(copied, '--restart')
  assert 'Resuming' not in restarted.stdout and numbers(copied) == reference
  assert '--restart' not in restarted.stdout  # not repeated in the commands it prints


# --- the lock ---

def test_a_lock_note_that_is_a_link_is_replaced_not_written_through(copied, tmp_path, reference):
  target = tmp_path / 'precious.txt'
  target.write_text('keep me')
  (copied / '.lock').unlink()
  (copied / '.lock').symlink_to(target)
  resume(copied)
  assert target.read_text() == 'keep me' and not (copied / '.lock').is_symlink()
  assert json.loads((copied / '.lock').read_text())['doing'] == 'training'


@pytest.mark.slow
def test_a_deleted_lock_note_lets_no_second_writer_in(tmp_path):
  workdir = tmp_path / 'w'
  first = start_paused_run(workdir)
  (workdir / '.lock').unlink()
  second = main(*RUN, '--epochs=12', f'--workdir={workdir}')
  first.send_signal(signal.SIGCONT)
  assert first.wait(timeout=300) == 0, first.communicate()
  one_error_line(second, 2, f'is in use by a training run (process {first.pid})')


@pytest.mark.slow
def test_a_workdir_moved_during_training_stops_the_run_and_resumes_once_back(tmp_path):
  workdir, moved = tmp_path / 'w', tmp_path / 'moved'
  run = start_paused_run(workdir)
  workdir.rename(moved)
  run.send_signal(signal.SIGCONT)
  ended = finished(run)
  line = one_error_line(ended, 1, f'--workdir={workdir} was moved or replaced while this run '
                        f'held it (the folder it locked is now {moved})',
                        'nothing more is written; move it back, then resume with: ')
  assert not workdir.exists()  # the old path is not made again: the run is not split
  moved.rename(workdir)
  resumed = subprocess.run(line.split('resume with: ')[1], shell=True, cwd=ROOT, text=True,
                           capture_output=True, timeout=300)
  assert resumed.returncode == 0 and 'Resuming from checkpoint' in resumed.stdout, resumed.stderr


def test_a_refusal_names_the_evaluation_that_holds_the_workdir(copied):
  with workdirs.lock(copied, shared=True):
    one_error_line(main(*RUN, f'--workdir={copied}'), 2,
                   f'is in use by an evaluation (process {os.getpid()})')


# --- --overwrite ---

@pytest.mark.slow
def test_overwrite_never_shows_the_old_results_with_the_new_config(copied):
  run = subprocess.Popen([sys.executable, MAIN, *RUN, '--epochs=12', '--overwrite',
                          f'--workdir={copied}'], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
  deadline = time.time() + 240
  while '"epochs": 12' not in _text(copied / 'config.json'):
    assert run.poll() is None and time.time() < deadline, run.communicate()
    time.sleep(0.005)
  run.send_signal(signal.SIGKILL)
  run.communicate()
  assert not [p.name for p in copied.iterdir() if p.suffix in ('.png', '.md')
              or p.name in ('results.json', 'metrics.jsonl')]
  with pytest.raises(dnn_jax.ConfigError, match='holds no finished run'):
    dnn_jax.Results.load(copied)


def _text(path):
  try:
    return path.read_text()
  except OSError:
    return ''


# --- numerics ---

def test_a_resume_with_other_numerics_says_so_and_records_them(copied, reference):
  shutil.rmtree(checkpoint_dir(copied, 4500))
  resumed = resume(copied, '--models_per_chunk=1')
  assert ('WARNING: [logistic] resuming at step 4400 with models_per_chunk 1 (was 2): from here '
          "the numbers match an uninterrupted run's to float rounding, not bit for bit"
          in resumed.stdout)
  stretches = json.loads((copied / 'results.json').read_text())['variants']['logistic']['numerics']
  assert [(s['from_step'], s['models_per_chunk']) for s in stretches] == [(0, 2), (4400, 1)]
  got = numbers(copied)
  np.testing.assert_allclose(got['test_loss'], reference['test_loss'], rtol=1e-4)


def test_evaluation_takes_the_training_s_chunk_width(quick_run):
  evaluated = main('--mode=eval', f'--workdir={quick_run[0]}')
  assert evaluated.returncode == 0 and 'WARNING' not in evaluated.stdout, evaluated.stdout
  narrower = main('--mode=eval', '--models_per_chunk=1', f'--workdir={quick_run[0]}')
  assert ('evaluated with models_per_chunk 1 (training: 2): the test lines match training\'s to '
          'float rounding' in narrower.stdout)
