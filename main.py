"""Run an experiment of the course: `python main.py --experiment=lenet --c3=sparse`.

The flags are the settings declared in `dnn_jax.config.Config` (plus --mode, --workdir,
--checkpoint_step and --overwrite); unset ones take the protocol's value
(`dnn_jax.experiments`). A bad value gives one line naming the flag, the value and what is
accepted, and exit code 2. Every message that says what to run next prints the exact command.
"""

from __future__ import annotations

import os
import signal
import sys


def _stopped_while_starting(signum, frame):
  """Ctrl-C or SIGTERM before a run has begun (JAX takes seconds to import): one line."""
  del frame
  print(f'interrupted by signal {signum} while starting: nothing was written', file=sys.stderr)
  os._exit(128 + signum)  # pylint: disable=protected-access


for _signal in (signal.SIGINT, signal.SIGTERM):
  signal.signal(_signal, _stopped_while_starting)

# pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
import shlex
import shutil
from pathlib import Path

from absl import app, flags, logging

from dnn_jax import api, workdir as workdirs
from dnn_jax.checkpoints import CheckpointError, NothingToEvaluate
from dnn_jax.config import Config, ConfigError, flag_text
from dnn_jax.data import DatasetError
from dnn_jax.experiments import BOTH, EXPERIMENTS, SELECTORS, settings, theory
from dnn_jax.interrupts import Interrupted
from dnn_jax.loop import TrainingDiverged
from dnn_jax.report import WriteError

FLAGS = flags.FLAGS
_DEFINE = {'int': flags.DEFINE_integer, 'float': flags.DEFINE_float, 'str': flags.DEFINE_string,
           'bool': flags.DEFINE_bool}


def _protocol_values(name: str) -> str:
  """'lenet/course 10, linear/epochs 3, ...': the protocols' values of setting `name`."""
  return ', '.join(f'{e}/{p} {values[name]}' for e, module in EXPERIMENTS.items()
                   for p, values in module.PROTOCOLS.items() if name in values)


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


def _define_setting_flags() -> None:
  """One flag per setting of Config, with its type and help; the default is the setting's, or
  None (the protocol's value) where a protocol sets it. Values are checked by `Config`, as for
  the Python API, so both give the same one-line errors."""
  for field in dataclasses.fields(Config):
    if field.name in SELECTORS:
      continue
    by_protocol = _protocol_values(field.name)
    default = None if by_protocol or field.default is dataclasses.MISSING else field.default
    if by_protocol and field.default is not dataclasses.MISSING:
      by_protocol = f'{field.default}; {by_protocol}'
    help_text = field.metadata['help'] + (f' (default: {by_protocol})' if by_protocol else '')
    if field.metadata['choices']:
      help_text += f' Accepted: {", ".join(field.metadata["choices"])}.'
    if field.metadata['sweep']:
      flags.DEFINE(_SweepParser(), field.name, default, help_text + ' A list sweeps it.',
                   serializer=_SweepSerializer())
    else:
      _DEFINE[field.type](field.name, default, help_text)


def _define_selector_flags() -> None:
  """--experiment, --protocol, and each experiment's variant flag (--c3, --loss)."""
  help_of = {f.name: f.metadata['help'] for f in dataclasses.fields(Config)}
  flags.DEFINE_enum('experiment', 'lenet', [*EXPERIMENTS, theory.NAME],
                    help_of['experiment'] + " theory: the course's pen-and-paper results, checked.")
  flags.DEFINE_string('protocol', None, help_of['protocol'] + ' ' + '; '.join(
      f'{name}: {", ".join(module.PROTOCOLS)}' for name, module in EXPERIMENTS.items()))
  for name, module in EXPERIMENTS.items():
    flags.DEFINE_string(module.VARIANT_SETTING, None,
                        f'--experiment={name}: {module.VARIANT_HELP} both: side by side '
                        f'(default: {_protocol_values(module.VARIANT_SETTING)}). Accepted: '
                        f'{", ".join((*module.VARIANTS, BOTH))}.')


_define_selector_flags()
_define_setting_flags()
flags.DEFINE_string('workdir', '', 'Where results and checkpoints go; default: a new folder '
                    'under runs/. Rerunning in the same workdir resumes.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  "train (resuming from the workdir's checkpoints), or eval: restore and test.")
flags.DEFINE_integer('checkpoint_step', None, 'With --mode=eval: this step instead of the latest.')
flags.DEFINE_bool('overwrite', False, 'Start afresh in a workdir that holds another run.')


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
  return {name: FLAGS[name].value for name in settings() if FLAGS[name].present}


# Flags a next command sets itself (and --overwrite, which must never be repeated).
_NOT_REPEATED = ('workdir', 'mode', 'checkpoint_step', 'overwrite')


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
  return shlex.join([_python_command(), sys.argv[0], *given,
                     *([f'--workdir={workdir}'] if workdir else [])])


def _python_command() -> str:
  """How to call this interpreter: `python` where that is it, else its path."""
  for name in ('python', 'python3'):
    found = shutil.which(name)
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
      return name
  relative = os.path.relpath(sys.executable)
  return sys.executable if relative.startswith('..') else relative


def _quiet_about_closed_event_loops(unraisable) -> None:
  """After a failed save, orbax's pending writes report into its closed event loop as
  'unraisable' errors: that says nothing the run's own one-line error does not."""
  if not (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == 'Event loop is closed'):
    sys.__unraisablehook__(unraisable)


def main(argv: list[str]) -> int:
  del argv
  sys.unraisablehook = _quiet_about_closed_event_loops
  logging.set_verbosity(logging.FATAL)  # the run reports its own errors, in one line each
  sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a pipe or file
  workdir = FLAGS.workdir or workdirs.default_path(FLAGS.experiment)
  try:
    if FLAGS.experiment == theory.NAME:
      try:
        passed = api.check_theory(workdir, FLAGS.seed, FLAGS.mnist_dir, FLAGS.tfds_data_dir)
      except WriteError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
      return 0 if passed else 1
    if FLAGS.mode == 'eval':
      given = settings_given()
      if FLAGS['experiment'].present:
        given['experiment'] = FLAGS.experiment
      api.evaluate(workdir, FLAGS.checkpoint_step, **given, protocol=FLAGS.protocol)
      return 0
    api.train(FLAGS.experiment, FLAGS.protocol, workdir=workdir, overwrite=FLAGS.overwrite,
              resume_command=next_command(workdir, 'train'), command=next_command(None, 'train'),
              **settings_given())
    print(f'to evaluate again: {next_command(workdir, "eval")}')
    return 0
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except NothingToEvaluate as e:
    print(f'error: {e}; train first: {next_command(workdir, "train")}', file=sys.stderr)
    return 1
  except WriteError as e:
    print(f'error: {e}; what was saved is kept: once there is room, resume with: '
          f'{next_command(workdir, "train")}', file=sys.stderr)
    return 1
  except (CheckpointError, DatasetError, TrainingDiverged) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except Interrupted as e:
    print(f'{e}; resume with: {next_command(workdir, "train")}', file=sys.stderr)
    return 128 + e.signum
  except KeyboardInterrupt:
    if FLAGS.mode == 'eval':
      print(f'aborted; nothing was changed; evaluate with: {next_command(workdir, "eval")}',
            file=sys.stderr)
      return 130
    steps = workdirs.saved_steps(Path(workdir))
    print('aborted; ' + (f'the checkpoints in {workdir} are kept (newest: step {steps[-1]})'
                         if steps else 'no checkpoint was written yet')
          + f'; resume with: {next_command(workdir, "train")}', file=sys.stderr)
    return 130


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
