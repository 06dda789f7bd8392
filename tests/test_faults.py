"""Faults in the environment, each ending with one line, the right exit code, and nothing lost:
concurrent runs, a full disk, damaged or unusable workdirs, flipped bytes in a checkpoint,
divergence, evaluation of a damaged run, and interrupts at start-up."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dnn_jax.errors import WriteError
from dnn_jax.results import files
from tests.conftest import QUICK_RUN, QUICK_RUN_FLAGS, ROOT, ours

MAIN = str(ROOT / 'main.py')
RUN = QUICK_RUN_FLAGS


def main(*args, cwd=ROOT, timeout=300):
  return subprocess.run([sys.executable, MAIN, *args], cwd=cwd, capture_output=True, text=True,
                        timeout=timeout)


def one_error_line(result, code, *phrases):
  """The run ended with `code` and a single line on stderr holding every phrase."""
  assert result.returncode == code, result.stderr
  lines = ours(result.stderr).strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
  for phrase in phrases:
    assert phrase in lines[0], lines[0]
  return lines[0]


def finished(process):
  """A started run, once it has ended, as a CompletedProcess."""
  stdout, stderr = process.communicate(timeout=300)
  return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def numbers(workdir):
  """results.json's per-seed numbers, without the timings."""
  variant = json.loads((workdir / 'results.json').read_text())['variants']['logistic']
  return {k: variant[k] for k in ('test_accuracy', 'test_loss', 'correct', 'train_loss_per_epoch')}


@pytest.fixture(scope='module')
def reference(quick_run):
  """The numbers every faulted run must end with: those of the uninterrupted quick run."""
  return numbers(quick_run[0])


def resume(workdir, *extra):
  result = main(*RUN, f'--workdir={workdir}', *extra)
  assert result.returncode == 0, result.stderr
  return result


# --- two runs at once ---

@pytest.mark.slow
def start_paused_run(workdir, *args):
  """A run of 12 epochs in `workdir`, paused (SIGSTOP) once it has written its first checkpoint:
  it holds the workdir however slow the machine is, until `os.kill(pid, SIGCONT)`."""
  run = subprocess.Popen([sys.executable, MAIN, *RUN, '--epochs=12', f'--workdir={workdir}',
                          *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
  deadline = time.time() + 240
  while not (workdir / 'checkpoints' / 'logistic' / '100').is_dir():
    assert run.poll() is None and time.time() < deadline, run.communicate()
    time.sleep(0.01)
  run.send_signal(signal.SIGSTOP)
  return run


@pytest.mark.slow
def test_a_second_run_in_a_busy_workdir_is_refused_and_the_first_is_unharmed(tmp_path, reference):
  workdir = tmp_path / 'w'
  first = start_paused_run(workdir)
  second, evaluation = (subprocess.Popen([sys.executable, MAIN, *args, f'--workdir={workdir}'],
                                          cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
                         for args in ([*RUN, '--epochs=12'], ['--mode=eval']))
  second, evaluation = (finished(p) for p in (second, evaluation))
  first.send_signal(signal.SIGCONT)
  assert first.wait(timeout=300) == 0, first.communicate()
  for result in (second, evaluation):
    one_error_line(result, 2, f'--workdir={workdir} is in use by a training run (process '
                   f'{first.pid})')
  assert not list(workdir.rglob('*-unreadable'))
  assert json.loads((workdir / 'results.json').read_text())['config']['epochs'] == 12


@pytest.mark.slow
def test_runs_started_in_the_same_second_get_their_own_workdirs(tmp_path):
  runs = [subprocess.Popen([sys.executable, MAIN, '--experiment=linear', '--train_examples=300',
                            '--epochs=1'], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE) for _ in range(2)]
  for run in runs:
    assert run.wait(timeout=120) == 0, run.communicate()
  assert len(list((tmp_path / 'runs').glob('*/results.json'))) == 2


# --- a full disk ---

@pytest.mark.slow  # over 8 s on 2 cores
def test_a_checkpoint_that_cannot_be_written_loses_nothing(tmp_path, reference, monkeypatch):
  """A full disk at a save (simulated in-process: ENOSPC from orbax): one error, no temporary
  folder left, the previous checkpoints intact; the run resumes once there is room."""
  import orbax.checkpoint as ocp
  from dnn_jax.run import driver
  from dnn_jax.catalog import make_config

  config = make_config(**QUICK_RUN)
  save = ocp.CheckpointManager.save

  def full_disk_at_step_1000(self, step, *args, **kwargs):
    if step == 1000:
      (self.directory / '1000.orbax-checkpoint-tmp-7').mkdir()  # what a failed save leaves
      raise OSError(errno.ENOSPC, 'No space left on device')
    return save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full_disk_at_step_1000)
  with pytest.raises(WriteError, match=r'cannot save the checkpoint at step 1000 in '
                     r'.*logistic \(No space left on device\)'):
    driver.train_and_evaluate(config, tmp_path, log=lambda line: None)
  steps = sorted(p.name for p in (tmp_path / 'checkpoints' / 'logistic').iterdir())
  assert steps == ['700', '800', '900']  # the newest three, nothing unfinished
  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  resume(tmp_path)
  assert numbers(tmp_path) == reference


@pytest.mark.slow
def test_results_that_cannot_be_written_lose_nothing(tmp_path, reference, monkeypatch):
  from dnn_jax.run import driver
  from dnn_jax.catalog import make_config

  write_atomic = files.write_atomic

  def full_disk_for_results(path, *args, **kwargs):
    if path.name == 'results.json':
      raise WriteError(f'cannot write {path}: No space left on device')
    return write_atomic(path, *args, **kwargs)

  monkeypatch.setattr(files, 'write_atomic', full_disk_for_results)
  config = make_config(**QUICK_RUN)
  with pytest.raises(WriteError, match='results.json: No space left on device'):
    driver.train_and_evaluate(config, tmp_path, log=lambda line: None)
  assert not list(tmp_path.glob('*.tmp')) and not (tmp_path / 'results.json').exists()
  monkeypatch.setattr(files, 'write_atomic', write_atomic)
  assert 'Resuming from checkpoint at epoch 3, step 4500' in resume(tmp_path).stdout
  assert numbers(tmp_path) == reference


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / 'results.json'
  files.write_json(path, {'old': 1})

  def fill_then_fail(f):
    f.write('{"new": ')
    raise OSError(errno.ENOSPC, 'No space left on device')

  with pytest.raises(WriteError, match=r'cannot write .*results.json: No space left'):
    files.write_atomic(path, fill_then_fail)
  assert json.loads(path.read_text()) == {'old': 1} and os.listdir(tmp_path) == ['results.json']


UNSHARE = shutil.which('unshare') and subprocess.run(
    ['unshare', '-rm', 'true'], capture_output=True).returncode == 0
FULL_DISK = """
set -u
mount -t tmpfs -o size=12m tmpfs {mnt} && mount -t tmpfs -o size=2m tmpfs {small}
{python} {main} {run} --workdir={mnt}/w > {out}/first.out 2> {out}/first.err &
while [ ! -d {mnt}/w/checkpoints/logistic/200 ] && kill -0 $! 2> /dev/null; do sleep 0.005; done
dd if=/dev/zero of={mnt}/filler bs=64k 2> /dev/null
wait $!; echo $? > {out}/first.code
ls -a {mnt}/w/checkpoints/logistic > {out}/left
rm {mnt}/filler
{python} {main} {run} --workdir={mnt}/w > {out}/second.out 2> {out}/second.err
echo $? > {out}/second.code; cp {mnt}/w/results.json {out}/
{python} {main} {run} --workdir={small}/w > /dev/null 2> {out}/small.err
echo $? > {out}/small.code; ls -A {small} > {out}/small.left
"""


@pytest.mark.slow
@pytest.mark.skipif(not UNSHARE, reason='needs unshare -rm to mount small tmpfs filesystems')
def test_a_real_full_disk_mid_run_and_before_it(tmp_path, reference):
  """On a 12 MB tmpfs filled during a run: one line, exit 1, no unfinished save left; once
  space is freed the run resumes and ends as an uninterrupted run. On a 2 MB tmpfs: the run is
  refused before anything is written."""
  mnt, small, out = tmp_path / 'mnt', tmp_path / 'small', tmp_path / 'out'
  for folder in (mnt, small, out):
    folder.mkdir()
  script = FULL_DISK.format(mnt=mnt, small=small, out=out, python=sys.executable, main=MAIN,
                            run=' '.join(RUN))
  subprocess.run(['unshare', '-rm', 'sh', '-c', script], cwd=ROOT, timeout=600, check=True)
  first = subprocess.CompletedProcess([], int((out / 'first.code').read_text()), '',
                                      (out / 'first.err').read_text())
  one_error_line(first, 1, 'No space left on device', 'what was saved is kept', 'resume with: ')
  assert 'orbax-checkpoint-tmp' not in (out / 'left').read_text()
  assert (out / 'second.code').read_text().strip() == '0', (out / 'second.err').read_text()
  assert 'Resuming from checkpoint' in (out / 'second.out').read_text()
  assert numbers(out) == reference
  small_run = subprocess.CompletedProcess([], int((out / 'small.code').read_text()), '',
                                          (out / 'small.err').read_text())
  one_error_line(small_run, 2, 'MiB free, and the run needs about')
  assert (out / 'small.left').read_text() == ''


READ_ONLY = """
set -u
mount -t tmpfs tmpfs {mnt} && cp -r {run} {mnt}/w && mount -o remount,ro {mnt}
{python} {main} --mode=eval --workdir={mnt}/w > {out}/eval.out 2> {out}/eval.err
echo $? > {out}/eval.code
{python} {main} {flags} --workdir={mnt}/w > /dev/null 2> {out}/train.err
echo $? > {out}/train.code
{python} {main} {flags} --workdir={mnt}/new > /dev/null 2> {out}/new.err
echo $? > {out}/new.code
"""


@pytest.mark.slow
@pytest.mark.skipif(not UNSHARE, reason='needs unshare -rm to mount a read-only tmpfs')
def test_a_read_only_workdir_is_evaluated_but_not_trained_in(tmp_path, quick_run):
  mnt, out = tmp_path / 'mnt', tmp_path / 'out'
  mnt.mkdir(), out.mkdir()
  script = READ_ONLY.format(mnt=mnt, out=out, run=quick_run[0], python=sys.executable,
                            main=MAIN, flags=' '.join(RUN))
  subprocess.run(['unshare', '-rm', 'sh', '-c', script], cwd=ROOT, timeout=300, check=True)
  ended = lambda name: subprocess.CompletedProcess(
      [], int((out / f'{name}.code').read_text()), '', (out / f'{name}.err').read_text())
  assert ended('eval').returncode == 0, ended('eval').stderr
  test_lines = lambda text: [l for l in text.splitlines() if '[Test set]' in l]
  assert test_lines((out / 'eval.out').read_text()) == test_lines(quick_run[1])
  one_error_line(ended('train'), 2, 'is not writable (Read-only file system)')
  one_error_line(ended('new'), 2, 'cannot be made (Read-only file system)')


# --- damaged or unusable workdirs ---

@pytest.mark.parametrize('contents, problem', [('{"experiment": "lin', 'is damaged'),
                                               ('[1, 2, 3]', 'holds a JSON list')])
def test_a_damaged_config_is_one_line_naming_the_way_out(tmp_path, contents, problem):
  (tmp_path / 'config.json').write_text(contents)
  one_error_line(main(*RUN, f'--workdir={tmp_path}'), 2, problem, '--overwrite')
  assert (tmp_path / 'config.json').read_text() == contents


@pytest.mark.slow
def test_overwrite_mends_a_damaged_config(tmp_path, reference):
  (tmp_path / 'config.json').write_text('{"experiment": "lin')
  resume(tmp_path, '--overwrite')
  assert numbers(tmp_path) == reference


def a_file(workdir):
  workdir.write_text('a file')
  return workdir


def under_a_file(workdir):
  (workdir.parent / 'file').write_text('x')
  return workdir.parent / 'file' / 'w'


def checkpoints_a_file(workdir):
  (workdir / 'checkpoints').mkdir(parents=True)
  (workdir / 'checkpoints' / 'logistic').write_text('x')
  return workdir


def tensorboard_a_file(workdir):
  workdir.mkdir()
  (workdir / 'tensorboard').write_text('x')
  return workdir


def metrics_a_folder(workdir):
  (workdir / 'metrics.jsonl').mkdir(parents=True)
  return workdir


def a_long_name(workdir):
  return workdir.parent / ('w' * 300)


@pytest.mark.parametrize('make, problem', [
    (a_file, 'is a file'),
    (under_a_file, 'cannot be made'),
    (lambda workdir: '/proc/dnn_jax_w', 'cannot be made'),
    (checkpoints_a_file, 'is a file where the run writes its checkpoints/logistic folder'),
    (tensorboard_a_file, 'tensorboard is a file where the run writes its tensorboard folder'),
    (metrics_a_folder, 'metrics.jsonl is a folder where the run writes its metrics.jsonl file'),
    (a_long_name, "has a name of 300 bytes, over the filesystem's 255"),
], ids=['file', 'under_a_file', 'proc', 'checkpoints_a_file', 'tensorboard_a_file',
        'metrics_a_folder', 'a_long_name'])
def test_an_unusable_workdir_is_refused_before_anything_is_written(tmp_path, make, problem):
  workdir = make(tmp_path / 'w')
  before = sorted((str(p), p.stat().st_size) for p in tmp_path.rglob('*'))
  one_error_line(main(*RUN, f'--workdir={workdir}'), 2, problem)
  assert sorted((str(p), p.stat().st_size) for p in tmp_path.rglob('*')) == before


# --- silent wrong results ---

@pytest.mark.slow  # over 8 s on 2 cores
def test_flipped_bytes_in_a_checkpoint_are_detected_and_the_previous_one_used(
    tmp_path, quick_run, reference):
  shutil.copytree(quick_run[0], tmp_path, dirs_exist_ok=True)
  newest = tmp_path / 'checkpoints' / 'logistic' / '4500'
  data = max((p for p in newest.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  flipped = bytearray(data.read_bytes())
  middle = len(flipped) // 2
  flipped[middle:middle + 64] = bytes(b ^ 0xFF for b in flipped[middle:middle + 64])
  data.write_bytes(bytes(flipped))
  evaluation = main('--mode=eval', f'--workdir={tmp_path}')  # read-only: moves nothing
  assert evaluation.returncode == 0, evaluation.stderr
  assert 'do not match the sha256 saved with them); trying the previous one' in evaluation.stdout
  assert 'step 4400 is not the run\'s final step (4500)' in evaluation.stdout
  assert newest.is_dir() and not list(tmp_path.rglob('*-unreadable'))
  resumed = resume(tmp_path)
  assert 'Resuming from checkpoint at epoch 2, step 4400' in resumed.stdout
  assert (tmp_path / 'checkpoints' / 'logistic-unreadable' / '4500').is_dir()
  assert numbers(tmp_path) == reference


def test_a_seed_beyond_int32_is_refused():
  one_error_line(main(*RUN, '--seed=1099511627776'), 2, '--seed=1099511627776',
                 'accepted: -2147483648..2147483646')  # two seeds


def test_a_loss_far_above_its_start_is_divergence_with_a_rate_to_try(tmp_path):
  line = one_error_line(main(*RUN, '--learning_rate=1e30', f'--workdir={tmp_path}'), 1,
                        '[logistic] training diverged: the mean loss of epoch 1 is')
  assert 'try --learning_rate=1e+29' in line
  assert not (tmp_path / 'checkpoints' / 'logistic' / '1500').exists()  # never saved


@pytest.mark.slow
def test_the_raw_pixel_protocol_is_not_divergence(tmp_path):
  """Its losses are far above a uniform prediction's, but below where they started."""
  from dnn_jax.run import driver
  from dnn_jax.catalog import make_config
  config = make_config('linear', 'with_replacement', loss='both', num_seeds=3,
                       train_examples=3000)
  results = driver.train_and_evaluate(config, tmp_path, log=lambda line: None)
  assert min(min(v['test_accuracy']) for v in results['variants'].values()) < 0.6  # a collapse
  assert min(results['variants']['logistic']['test_accuracy']) > 0.9


# --- interrupts at start-up ---

def test_ctrl_c_while_importing_is_one_line_and_writes_nothing(tmp_path):
  process = subprocess.Popen([sys.executable, MAIN, *RUN, f'--workdir={tmp_path / "w"}'],
                             cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  time.sleep(0.4)  # within the imports (main.py --help takes about 1.2 s in all)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == 130 and ours(stderr).strip().splitlines() == [
      'interrupted by signal 2 while starting, before anything was read or written']
  assert not (tmp_path / 'w').exists()


# --- the process's limits ---

@pytest.mark.parametrize('limit, phrase', [
    ('ulimit -v 1200000', 'the address-space limit (ulimit -v) is 1171 MiB, and a run needs at '
     'least 2048 MiB'),
    ('ulimit -n 16', 'the open-files limit (ulimit -n) is 16, and a run needs at least 64'),
], ids=['address_space', 'open_files'])
def test_too_low_a_process_limit_is_one_line_before_anything_starts(tmp_path, limit, phrase):
  command = f'{limit} && exec {sys.executable} {MAIN} {" ".join(RUN)} --workdir={tmp_path}/w'
  result = subprocess.run(['bash', '-c', command], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  one_error_line(result, 1, phrase)
  assert not (tmp_path / 'w').exists()


def test_the_free_space_check_counts_the_metrics(quick_run):
  """The estimate of metrics.jsonl and the TensorBoard events covers what a run wrote."""
  from dnn_jax.core import models
  from dnn_jax.run import metrics
  from tests.conftest import QUICK_RUN_STEPS, make_spec
  spec = make_spec(models.LinearClassifier(), 'logistic', QUICK_RUN_STEPS // 3, QUICK_RUN_STEPS,
                   checkpoint_every_steps=100)
  written = sum(p.stat().st_size for p in quick_run[0].rglob('*') if p.is_file()
                and (p.name == 'metrics.jsonl' or 'tensorboard' in p.parts))
  assert written < metrics.bytes_estimate(spec, 2) < 10 * written


# --- Ctrl-C, interrupted writes, file modes ---

SECOND_CTRL_C_IN_A_FIGURE = """
import os, signal, sys
from dnn_jax.results import plots
class Finalized:  # an exception raised in a finalizer is swallowed
  def __del__(self):
    os.kill(os.getpid(), signal.SIGINT)
save = plots._save
def save_then_ctrl_c_twice(fig, path):
  if path.name == 'confusion.png':
    os.kill(os.getpid(), signal.SIGINT)
    {second}
  return save(fig, path)
plots._save = save_then_ctrl_c_twice
sys.argv = [{main!r}, *{flags!r}]
from dnn_jax.__main__ import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize('second', ['os.kill(os.getpid(), signal.SIGINT)', 'Finalized()'],
                         ids=['in_the_figure', 'in_a_finalizer'])
def test_a_second_ctrl_c_while_figures_are_drawn_aborts_with_one_line(tmp_path, second):
  script = SECOND_CTRL_C_IN_A_FIGURE.format(main=MAIN, flags=[*RUN, f'--workdir={tmp_path}'],
                                            second=second)
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
  one_error_line(result, 130, 'aborted; the checkpoints in', '(newest: step 4500)',
                 'resume with: ')
  assert not list(tmp_path.glob('.*.tmp'))


@pytest.mark.slow
def test_a_killed_write_leaves_no_temporary_behind_the_next_run(tmp_path, quick_run):
  shutil.copytree(quick_run[0], tmp_path, dirs_exist_ok=True)
  left = tmp_path / '.results.json.x7k2.tmp'  # what a kill during an atomic write leaves
  left.write_text('{"half": ')
  resume(tmp_path)
  assert not left.exists()


@pytest.mark.slow
def test_outputs_are_written_with_the_user_s_umask(tmp_path):
  command = f'umask 002 && exec {sys.executable} {MAIN} {" ".join(RUN)} --workdir={tmp_path}/w'
  result = subprocess.run(['bash', '-c', command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  for name in ('results.json', 'report.md', 'config.json', 'weights.png', 'metrics.jsonl'):
    assert (tmp_path / 'w' / name).stat().st_mode & 0o777 == 0o664, name
