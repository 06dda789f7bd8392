"""Run an experiment of the course: `python main.py --experiment=lenet --c3=sparse`.

Flags left unset take the experiment's defaults (the course's hyper-parameters, held in
experiments/<name>.py). Bad flag values give one line naming the flag, the value and what
is accepted, and exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from absl import app, flags, logging

from dnn_jax import checkpoints, data, models, train
from dnn_jax.config import Config, ConfigError, resolve
from dnn_jax.run import Interrupted, TrainingDiverged, train_and_evaluate
from experiments import EXPERIMENTS, lenet, linear, theory

FLAGS = flags.FLAGS
_DEFAULT_MNIST_DIR = str(data.DEFAULT_MNIST_DIR)


def _defaults(name: str) -> str:
  """'lenet X, linear Y': the experiments' defaults of flag `name`, for its help."""
  return ', '.join(f'{e.NAME} {e.DEFAULTS[name]}' for e in EXPERIMENTS.values())


flags.DEFINE_enum('experiment', 'lenet', [*EXPERIMENTS, theory.NAME],
                  'Which experiment to run; theory: the course\'s pen-and-paper results, checked.')
flags.DEFINE_enum('c3', None, [*lenet.VARIANTS, 'both'],
                  f'LeNet C3 connections (default {lenet.DEFAULTS["c3"]}); both: side by side.')
flags.DEFINE_enum('loss', None, [*linear.VARIANTS, 'both'],
                  f'Linear model loss (default {linear.DEFAULTS["loss"]}); both: side by side.')
flags.DEFINE_integer('epochs', None, f'Passes over the training set ({_defaults("epochs")}).')
flags.DEFINE_integer('steps', 0, 'Total training steps, overriding --epochs; 0: from --epochs.')
flags.DEFINE_integer('batch_size', None, f'Examples per SGD step ({_defaults("batch_size")}).')
flags.DEFINE_float('learning_rate', None, f'SGD learning rate ({_defaults("learning_rate")}).')
flags.DEFINE_enum('pixel_scale', None, list(train.PIXEL_DIVISORS),
                  f'unit: pixels in [0, 1] as torchvision ToTensor; raw: 0..255 ({_defaults("pixel_scale")}).')
flags.DEFINE_enum('sampling', None, list(train.SAMPLINGS),
                  f'shuffle: a new permutation each epoch; with_replacement: uniform draws '
                  f'({_defaults("sampling")}).')
flags.DEFINE_bool('bias', False, 'Give the linear classifier a bias.')
flags.DEFINE_enum('initializer', 'torch', list(models.INITS),
                  "torch: PyTorch's default uniform init (the course's); flax: lecun_normal.")
flags.DEFINE_integer('seed', 0, 'Random seed; seed i of a multi-seed run is --seed + i.')
flags.DEFINE_integer('num_seeds', 1, 'Independent models trained at once with jax.vmap.')
flags.DEFINE_integer('train_examples', 0, 'Train on the first N training examples; 0: all.')
flags.DEFINE_integer('eval_batch_size', 1000, 'Examples per evaluation batch.')
flags.DEFINE_enum('conv_impl', 'auto', ['auto', *models.CONV_IMPLS],
                  'Convolution: patches + matmul (fast on CPU) or XLA conv; auto picks.')
flags.DEFINE_integer('batch_parts', 0,
                     'Differentiate each batch as N independent slices and sum their gradients '
                     '(the same numbers up to float rounding, faster on CPU); 0: auto (5 on '
                     'CPU, 1 on GPU).')
flags.DEFINE_string('mnist_dir', _DEFAULT_MNIST_DIR,
                    'Folder with the 4 MNIST IDX .gz files (default: the ones shipped in data/mnist); empty: tensorflow-datasets.')
flags.DEFINE_string('tfds_data_dir', None, 'TFDS data_dir (with --mnist_dir empty).')
flags.DEFINE_string('workdir', '', 'Where results and checkpoints go; default: a new folder '
                    'under runs/. Rerunning in the same workdir resumes.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train (resuming from the workdir\'s checkpoints), or eval: restore and test.')
flags.DEFINE_integer('checkpoint_step', None, 'With --mode=eval: this step instead of the latest.')
flags.DEFINE_integer('checkpoint_every_steps', 0,
                     'Also checkpoint every N steps within an epoch; 0: at epoch ends only.')
flags.DEFINE_integer('keep_checkpoints', 3, 'How many of the newest checkpoints to keep.')
flags.DEFINE_bool('overwrite', False, 'Start afresh in a workdir that holds another run.')

for _name in ('epochs', 'batch_size', 'learning_rate', 'num_seeds', 'eval_batch_size',
              'keep_checkpoints'):
  flags.register_validator(_name, lambda v: v is None or v > 0, f'--{_name} must be positive')
for _name in ('steps', 'train_examples', 'checkpoint_every_steps', 'batch_parts'):
  flags.register_validator(_name, lambda v: v >= 0, f'--{_name} must be >= 0')


def _variant_flag_applies(flag: str, experiment_name: str):
  def check(values) -> bool:
    return values[flag] is None or values['experiment'] == experiment_name
  accepted = ', '.join([*EXPERIMENTS[experiment_name].VARIANTS, 'both'])
  flags.register_multi_flags_validator(
      ['experiment', flag], check,
      f'--{flag} applies only to --experiment={experiment_name} (accepted there: {accepted})')


_variant_flag_applies('c3', 'lenet')
_variant_flag_applies('loss', 'linear')


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


def config_from_flags(experiment_name: str) -> Config:
  """The Config of the parsed flags, unset ones taking the experiment's defaults."""
  experiment = EXPERIMENTS[experiment_name]
  names = [f.name for f in dataclasses.fields(Config) if f.name not in ('experiment', 'variants')]
  values = {name: FLAGS[name].value for name in [*names, experiment.VARIANT_FLAG]}
  values['experiment'] = experiment_name
  if values['conv_impl'] == 'auto':
    values['conv_impl'] = models.default_conv_impl()
  if values['batch_parts'] == 0:
    values['batch_parts'] = train.default_batch_parts()
  return resolve(values, experiment.DEFAULTS, experiment.VARIANT_FLAG, experiment.VARIANTS)


def config_to_evaluate(workdir: Path) -> Config:
  """The configuration saved in `workdir`; flags given on the command line must agree with
  it (checked later), except those that do not change the numbers, which replace it."""
  saved = Config.from_json(checkpoints.saved_config(workdir))
  current = config_from_flags(FLAGS.experiment if FLAGS['experiment'].present else saved.experiment)
  given = {f.name for f in dataclasses.fields(Config) if f.name in FLAGS and FLAGS[f.name].present}
  if FLAGS[EXPERIMENTS[saved.experiment].VARIANT_FLAG].present:
    given.add('variants')
  return dataclasses.replace(saved, **{
      name: getattr(current, name) for name in given | set(checkpoints.RELOCATABLE_FIELDS)})


# Flags a next command sets itself (and --overwrite, which must never be repeated).
_NOT_REPEATED = ('workdir', 'mode', 'checkpoint_step', 'overwrite')


def next_command(workdir: str, mode: str) -> str:
  """The exact command line that resumes (`mode='train'`) or evaluates (`'eval'`) the run in
  `workdir`, to be pasted in the directory this one started from."""
  if mode == 'eval':
    given = ['--mode=eval']
  else:
    every_flag = {id(f): f for module_flags in FLAGS.flags_by_module_dict().values()
                  for f in module_flags}.values()
    given = [f.serialize() for f in every_flag if f.present and f.name not in _NOT_REPEATED]
  return shlex.join([_python_command(), sys.argv[0], *given, f'--workdir={workdir}'])


def _python_command() -> str:
  """How to call this interpreter: `python` where that is it, else its path."""
  for name in ('python', 'python3'):
    found = shutil.which(name)
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
      return name
  relative = os.path.relpath(sys.executable)
  return sys.executable if relative.startswith('..') else relative


def _saved_steps(workdir: str) -> list[int]:
  """Steps of the checkpoints in `workdir`, any variant (finished saves only)."""
  return sorted(int(p.name) for p in Path(workdir).glob('checkpoints/*/*') if p.name.isdigit())


def main(argv: list[str]) -> int:
  del argv
  logging.set_verbosity(logging.WARNING)  # no INFO lines about absent TPU backends
  workdir = FLAGS.workdir or f'runs/{FLAGS.experiment}-{time.strftime("%Y%m%d-%H%M%S")}'
  try:
    if FLAGS.experiment == theory.NAME:
      return 0 if theory.run(FLAGS.mnist_dir, FLAGS.tfds_data_dir, workdir, FLAGS.seed) else 1
    if FLAGS.mode == 'eval':
      config = config_to_evaluate(Path(workdir))
    else:
      config = config_from_flags(FLAGS.experiment)
      print(f'workdir: {workdir}; to resume after an interruption: '
            f'{next_command(workdir, "train")}')
    train_and_evaluate(config, EXPERIMENTS[config.experiment], workdir, mode=FLAGS.mode,
                       checkpoint_step=FLAGS.checkpoint_step, overwrite=FLAGS.overwrite)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except checkpoints.NothingToEvaluate as e:
    print(f'error: {e}; train first: {next_command(workdir, "train")}', file=sys.stderr)
    return 1
  except (data.DatasetError, TrainingDiverged, checkpoints.CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except Interrupted as e:
    print(f'{e}; resume with: {next_command(workdir, "train")}', file=sys.stderr)
    return 128 + e.signum
  except KeyboardInterrupt:
    steps = _saved_steps(workdir)
    print('aborted; ' + (f'the checkpoints in {workdir} are kept (newest: step {steps[-1]})'
                         if steps else 'no checkpoint was written yet')
          + f'; resume with: {next_command(workdir, "train")}', file=sys.stderr)
    return 130
  if FLAGS.mode == 'train':
    print(f'to evaluate again: {next_command(workdir, "eval")}')
  return 0


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
