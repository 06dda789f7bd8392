"""The command line (`python main.py`, `dnn-jax`, `python -m dnn_jax`): flags derived from
`Config` -> the API; every error -> one line and its exit code (`EXIT_CODES`); every message
that says what to run next prints the exact command.

Unset setting flags take the experiment's value (experiments/). A bad value gives one line
naming the flag, the value and what is accepted, and exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import sys
import traceback
from pathlib import Path

from absl import app, flags, logging

from dnn_jax import api, catalog, limits, tasks
from dnn_jax.config import Config, flag_text
from dnn_jax.core import platform
from dnn_jax.errors import (CheckpointError, ConfigError, DatasetError, Interrupted,
                            NothingToEvaluate, ResourceLimit, TrainingDiverged, WorkdirMoved,
                            WriteError)
from dnn_jax.run import cluster, identity, interrupts, supervisor, workdirs

FLAGS = flags.FLAGS

# An error -> (exit code, what its line adds: the command to run next, {train} or {eval}).
EXIT_CODES: dict[type[Exception], tuple[int, str]] = {
    ConfigError: (2, ''),
    NothingToEvaluate: (1, '; train first: {train}'),
    WriteError: (1, '; what was saved is kept: once that is mended, resume with: {train}'),
    WorkdirMoved: (1, ', then resume with: {train}'),
    CheckpointError: (1, ''),
    DatasetError: (1, ''),
    TrainingDiverged: (1, ''),
    ResourceLimit: (1, ''),
}
# Interrupted (a stop at a safe point) ends with 128 + its signal, KeyboardInterrupt (a second
# Ctrl-C) with 130, each with the command that goes on; a MemoryError with 1, naming the limit.

_DEFINE = {'int': flags.DEFINE_integer, 'float': flags.DEFINE_float, 'str': flags.DEFINE_string,
           'bool': flags.DEFINE_bool}


def _experiment_values(name: str) -> str:
  """'lenet 10, linear 3, ...': the values of setting `name` that the experiments set."""
  return ', '.join(f'{e.name} {flag_text(e.own[name])}'
                   for e in map(catalog.load, catalog.names()) if name in e.own)


class _SweepParser(flags.ArgumentParser):
  """A number, or a comma-separated list of numbers (a sweep); the values are checked with the
  other settings (`Config`)."""

  def parse(self, argument):
    if not isinstance(argument, str):
      return argument
    values = []
    for position, item in enumerate(argument.split(','), 1):
      try:
        values.append(float(item))
      except ValueError:
        raise ValueError(f'item {position} ({item.strip() or "empty"}) is not a number; accepted: '
                         'a number, or numbers separated by commas') from None
    return tuple(values) if len(values) > 1 else values[0]

  def flag_type(self):
    return 'a number, or a comma-separated list of numbers to sweep'


class _SweepSerializer(flags.ArgumentSerializer):
  def serialize(self, value):
    return flag_text(value)


def _define_flags() -> None:
  """--experiment, --protocol and each task's variant flag; one flag per setting of Config,
  with its type and help, whose default is the setting's, or None (the experiment's value)
  where an experiment sets it. Values are checked by `Config`, as for the Python API."""
  help_of = {f.name: f.metadata['help'] for f in dataclasses.fields(Config)}
  flags.DEFINE_string('experiment', catalog.DEFAULT, help_of['experiment'] + ' Shipped: '
                      + ', '.join(catalog.names()) + '.')
  flags.DEFINE_string('protocol', None, "The course's name of an experiment of the same task: "
                      + '; '.join(f'{e.protocol} ({e.name})' for e in map(catalog.load,
                                                                         catalog.names())
                                  if e.protocol) + '.')
  for name, sharing in tasks.by_variant_setting().items():
    task = sharing[0]
    flags.DEFINE_string(name, None,
                        f'Experiments of task {" or ".join(t.NAME for t in sharing)}: '
                        f'{task.VARIANT_HELP} both: side by side (default: '
                        f'{_experiment_values(name)}). Accepted: '
                        f'{", ".join((*task.VARIANTS, tasks.BOTH))}.')
  for field in dataclasses.fields(Config):
    if field.name in catalog.SELECTORS:
      continue
    by_experiment = _experiment_values(field.name)
    default = None if by_experiment or field.default is dataclasses.MISSING else field.default
    if by_experiment and field.default is not dataclasses.MISSING:
      by_experiment = f'{field.default}; {by_experiment}'
    help_text = field.metadata['help'] + (f' (default: {by_experiment})' if by_experiment else '')
    if field.metadata['choices']:
      help_text += f' Accepted: {", ".join(field.metadata["choices"])}.'
    if field.metadata['sweep']:
      flags.DEFINE(_SweepParser(), field.name, default, help_text + ' A list sweeps it.',
                   serializer=_SweepSerializer())
    else:
      _DEFINE[field.type](field.name, default, help_text)
  flags.DEFINE_string('workdir', '', 'Where results and checkpoints go; default: a new folder '
                      'under runs/. Rerunning in the same workdir resumes.')
  flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                    "train (resuming from the workdir's checkpoints), or eval: restore and test.")
  flags.DEFINE_integer('checkpoint_step', None, 'With --mode=eval: this step instead of the '
                       'latest.')
  flags.DEFINE_bool('overwrite', False, 'Start afresh in a workdir that holds another run (its '
                    'files are removed first).')
  flags.DEFINE_bool('restart', False, 'Train from step 0 in a workdir whose checkpoints were '
                    'all found damaged (they stay set aside); without it such a run is refused.')
  flags.DEFINE_bool('distributed', False, 'One process of a multi-process run (jax.distributed): '
                    "the coordinator's address, process count and index from the cluster's "
                    'environment (Slurm, Open MPI, TPU); the three flags below set them by hand.')
  flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0, which every process '
                      'of a multi-process run connects to (also starts one, with the two below).')
  flags.DEFINE_integer('num_processes', None, 'The number of processes of a multi-process run.')
  flags.DEFINE_integer('process_id', None, "This process's index in a multi-process run: 0 to "
                       '--num_processes - 1; process 0 writes the outputs.')
  flags.DEFINE_integer('initialization_timeout', 300, 'Seconds a multi-process run waits for '
                       'all its processes to connect to the coordinator.')


_define_flags()
_BY_HAND = ('coordinator_address', 'num_processes', 'process_id')
_ADDRESS = re.compile(r'^(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):(\d+)$')
# Flags a next command sets itself (and --overwrite and --restart, never to be repeated).
_NOT_REPEATED = ('workdir', 'mode', 'checkpoint_step', 'overwrite', 'restart')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, but a bad flag is one line on stderr and exit code 2."""
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    print(f'{Path(argv[0]).name}: error: {e}', file=sys.stderr)
    sys.exit(2)
  if len(rest) > 1:
    print(f'{Path(argv[0]).name}: error: unexpected arguments {rest[1:]}; '
          'every option is a --flag', file=sys.stderr)
    sys.exit(2)
  return rest


def settings_given() -> dict[str, object]:
  """The settings given on the command line, by name (what the API takes as keywords)."""
  return {name: FLAGS[name].value for name in catalog.settings() if FLAGS[name].present}


def next_command(workdir: str | None, mode: str) -> str:
  """The exact command line that resumes (`mode='train'`) or evaluates (`'eval'`) the run in
  `workdir`, to be pasted in the directory this one started from; with no `workdir`, the
  command that trains the same run again in a new one."""
  if mode == 'eval':
    given = ['--mode=eval']
  else:
    every_flag = {id(f): f for module_flags in FLAGS.flags_by_module_dict().values()
                  for f in module_flags}.values()
    given = [f.serialize() for f in every_flag if f.present and f.name not in _NOT_REPEATED]
  return shlex.join([*_program(), *given, *([f'--workdir={workdir}'] if workdir else [])])


def _program() -> list[str]:
  """How this program was started: `python main.py`, `python -m dnn_jax`, or `dnn-jax`."""
  started = sys.argv[0]
  if Path(started).name == '__main__.py':
    return [_python_command(), '-m', 'dnn_jax']
  if started.endswith('.py'):
    return [_python_command(), started]
  found = shutil.which(Path(started).name)
  return [Path(started).name if found and Path(found).resolve() == Path(started).resolve()
          else started]


def _python_command() -> str:
  """How to call this interpreter: `python` where that is it, else its path."""
  for name in ('python', 'python3'):
    found = shutil.which(name)
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
      return name
  relative = os.path.relpath(sys.executable)
  return sys.executable if relative.startswith('..') else relative


def distributed_settings() -> dict[str, object] | None:
  """`cluster.initialize`'s arguments where this is one process of a multi-process run, else
  None; a bad or missing one raises ConfigError naming it."""
  given = [name for name in _BY_HAND if FLAGS[name].present]
  if not FLAGS.distributed and not given:
    return None
  if not FLAGS.distributed and len(given) < len(_BY_HAND):
    missing = ', '.join(f'--{name}' for name in _BY_HAND if name not in given)
    raise ConfigError(f'--{given[0]} without {missing}: give all three, or --distributed to take '
                      "them from the cluster's environment (Slurm, Open MPI, TPU)")
  address, count, index = (FLAGS[name].value for name in _BY_HAND)
  match = _ADDRESS.match(address) if address is not None else None
  if address is not None and not (match and 0 < int(match.group(2)) < 65536):
    raise ConfigError(f'--coordinator_address={address} is not HOST:PORT; accepted: a host name '
                      'or address, a colon and a port from 1 to 65535 (e.g. 10.0.0.1:1234)')
  if count is not None and count < 1:
    raise ConfigError(f'--num_processes={count} is not a process count; accepted: 1 or more')
  if index is not None and (index < 0 or (count is not None and index >= count)):
    upper = f'{count - 1} (--num_processes - 1)' if count else 'the process count - 1'
    raise ConfigError(f'--process_id={index} is out of range; accepted: 0 to {upper}')
  if FLAGS.initialization_timeout < 1:
    raise ConfigError(f'--initialization_timeout={FLAGS.initialization_timeout}; accepted: 1 '
                      'second or more')
  if _checks_results():
    raise ConfigError(f'--experiment={FLAGS.experiment} runs in one process; accepted with a '
                      f'multi-process run: the experiments that train')
  if not FLAGS.workdir:
    raise ConfigError('a multi-process run needs --workdir: the same folder for every process, '
                      'on a filesystem they share')
  return dict(coordinator_address=address, num_processes=count, process_id=index,
              initialization_timeout=FLAGS.initialization_timeout)


def _checks_results() -> bool:
  """Whether --experiment checks results (the theory) instead of training."""
  return catalog.load(FLAGS.experiment).task not in tasks.TRAINING


def _quiet_unraisables(unraisable) -> None:
  """Errors Python cannot raise (in a finalizer, say) that say nothing the run's own line does
  not: after a failed save, orbax's pending writes reporting into its closed event loop; a
  Ctrl-C landing in a finalizer (the run honours it at its next safe point)."""
  error = unraisable.exc_value
  if not ((isinstance(error, RuntimeError) and str(error) == 'Event loop is closed')
          or isinstance(error, KeyboardInterrupt)):
    sys.__unraisablehook__(unraisable)


def main(argv: list[str]) -> int:
  del argv
  if not platform.set_deterministic(FLAGS.deterministic):  # before JAX starts its backends
    print('error: --deterministic cannot be changed: JAX has started', file=sys.stderr)
    return 2
  interrupts.abort_on_signals()  # the start-up's handler said that nothing was read yet
  sys.unraisablehook = _quiet_unraisables
  logging.set_verbosity(logging.FATAL)  # the run reports its own errors, in one line each
  sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a pipe or file
  try:
    distributed = distributed_settings()
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if distributed is None:
    return run('')
  if not supervisor.is_worker():  # this process watches the one that runs
    return supervisor.run([sys.executable, *sys.argv],
                          supervisor.label(distributed['process_id'], distributed['num_processes']),
                          distributed['coordinator_address'], FLAGS.initialization_timeout)
  try:
    cluster.initialize(**distributed)
  except (ValueError, TypeError, RuntimeError) as e:  # what jax.distributed raises for settings
    print(f'error: cannot join a multi-process run ({e}): run under Slurm, Open MPI or on a TPU '
          'pod, or give --coordinator_address, --num_processes and --process_id',
          file=sys.stderr)
    return 2
  print(cluster.joined())
  try:
    code = run(cluster.prefix())
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc()  # a bug: its traceback, and then the same quick exit
    code = 1
  if code:  # at once, not through the runtime's shutdown, which would wait for the others
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access
  return code


def run(prefix: str) -> int:
  """The run the flags ask for; its exit code. `prefix` goes before each line (a process of a
  multi-process run: '[process 1/4] '), and only process 0 prints the log, whose warnings
  every process prints."""
  def log(line: str) -> None:
    if not prefix or cluster.is_main() or 'WARNING' in line:
      print('\n'.join(prefix + part for part in line.split('\n')))

  def error(line: str) -> None:
    print(prefix + line, file=sys.stderr)

  workdir = FLAGS.workdir or workdirs.default_path(Path(FLAGS.experiment).stem)
  commands = dict(train=next_command(workdir, 'train'), eval=next_command(workdir, 'eval'))
  try:
    identity.agree_on(dict(mode=FLAGS.mode, experiment=FLAGS.experiment, protocol=FLAGS.protocol,
                           workdir=FLAGS.workdir, **settings_given()))
    if _checks_results():
      return 0 if api.check_theory(workdir, FLAGS.seed, FLAGS.mnist_dir, FLAGS.tfds_data_dir,
                                   log) else 1
    if FLAGS.mode == 'eval':
      given = settings_given()
      if FLAGS['experiment'].present:
        given['experiment'] = FLAGS.experiment
      api.evaluate(workdir, FLAGS.checkpoint_step, log, **given, protocol=FLAGS.protocol)
      return 0
    api.train(FLAGS.experiment, FLAGS.protocol, workdir=workdir, overwrite=FLAGS.overwrite,
              restart=FLAGS.restart, log=log, resume_command=commands['train'], command=next_command(None, 'train'),
              **settings_given())
    log(f'to evaluate again: {commands["eval"]}')
    if prefix and not cluster.is_main():
      print(f'{prefix}done: process 0 wrote the results to {workdir}')
    return 0
  except tuple(EXIT_CODES) as e:
    code, then = next(EXIT_CODES[kind] for kind in type(e).__mro__ if kind in EXIT_CODES)
    error(f'error: {e}' + then.format(**commands))
    return code
  except Interrupted as e:
    error(f'{e}; resume with: {commands["train"]}')
    return 128 + e.signum
  except MemoryError as e:
    error(f'error: {limits.out_of_memory(e)}')
    return 1
  except KeyboardInterrupt as e:
    code = 128 + getattr(e, 'signum', 2)
    if FLAGS.mode == 'eval' or _checks_results():
      error(f'aborted; nothing was changed; run again with: {commands[FLAGS.mode]}')
      return code
    steps = workdirs.saved_steps(Path(workdir))
    error('aborted; ' + (f'the checkpoints in {workdir} are kept (newest: step {steps[-1]})'
                         if steps else 'no checkpoint was written yet')
          + f'; resume with: {commands["train"]}')
    return code
  except Exception as e:  # pylint: disable=broad-except
    if prefix and cluster.lost_process(e):
      error(f'error: {cluster.lost_process_line(e)}; rerun the same command on every process '
            'to resume from the last checkpoint')
      return 1
    raise


def run_command_line() -> None:
  for flag in FLAGS.flags_by_module_dict()[__name__]:  # --help lists them, whatever started us
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main, flags_parser=parse_flags)
