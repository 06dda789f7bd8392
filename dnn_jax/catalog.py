"""The experiments: one plain-Python file each in experiments/ (or any file of that form, given
by its path), holding a docstring (its command, run time and expected result) and

    TASK = 'lenet'          # what it trains (dnn_jax/tasks/), or, instead,
    BASE = 'lenet'          # the experiment whose task and settings it starts from
    PROTOCOL = 'course'     # optional: the course's name for it (--protocol, within its task)
    SETTINGS = dict(...)    # setting values by name; a list sweeps a setting

`make_config` turns an experiment and the user's settings into a run's `Config`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from pathlib import Path
from typing import Any

from dnn_jax import shipped, tasks
from dnn_jax.config import AUTO, Config, flag_text, sweep_fields
from dnn_jax.core import kernels, training
from dnn_jax.errors import ConfigError

FOLDER = shipped.folder('experiments')
DEFAULT = 'lenet'
SELECTORS = ('experiment', 'task', 'variants')  # set by make_config itself


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str                 # the file's name without .py, or the path it was given by
  doc: str
  task: str
  protocol: str | None
  settings: dict[str, Any]  # its BASE's settings, then its own
  own: dict[str, Any]       # the settings its file sets


def names() -> tuple[str, ...]:
  """The experiments shipped in experiments/."""
  return tuple(sorted(p.stem for p in FOLDER.glob('*.py') if not p.stem.startswith('_')))


def _is_path(name: str) -> bool:
  return name.endswith('.py') or '/' in name


@functools.cache
def load(name: str) -> Experiment:
  """The experiment `name` (a file of experiments/, or the path of a file of that form)."""
  path = Path(name) if _is_path(name) else FOLDER / f'{name}.py'
  if not path.is_file():
    raise ConfigError(f'--experiment={name}: accepted: {", ".join(names())}, or the path of '
                      'an experiment file (see experiments/)')
  spec = importlib.util.spec_from_file_location(f'dnn_jax_experiment_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'--experiment={name}: {path} cannot be read ({type(e).__name__}: {e})'
                      ) from None
  own = getattr(module, 'SETTINGS', None)
  task, base = getattr(module, 'TASK', None), getattr(module, 'BASE', None)
  if not isinstance(own, dict) or (task is None) == (base is None):
    raise ConfigError(f'--experiment={name}: {path} must define SETTINGS (a dict) and one of '
                      'TASK (a task name) or BASE (an experiment name)')
  settings = dict(own)
  if base is not None:
    parent = load(base)
    task, settings = parent.task, {**parent.settings, **own}
  if task not in tasks.TASKS:
    raise ConfigError(f'--experiment={name}: TASK = {task!r}; accepted: '
                      f'{", ".join(tasks.TASKS)}')
  return Experiment(name, module.__doc__ or '', task, getattr(module, 'PROTOCOL', None),
                    settings, dict(own))


def resolve(name: str, protocol: str | None = None) -> Experiment:
  """`name`, or with `protocol` the experiment of the same task that the course calls so
  (`--experiment=linear --protocol=with_replacement` is `linear_with_replacement`)."""
  experiment = load(name)
  if protocol is None or protocol == experiment.protocol:
    return experiment
  same_task = [load(n) for n in names() if load(n).task == experiment.task and load(n).protocol]
  for candidate in same_task:
    if candidate.protocol == protocol:
      return candidate
  raise ConfigError(f'--protocol={protocol}: accepted for --experiment={name}: '
                    f'{", ".join(e.protocol for e in same_task) or "none"}')


def settings() -> tuple[str, ...]:
  """The names `make_config` takes as overrides: every setting, and each variant setting."""
  variant_settings = dict.fromkeys(m.VARIANT_SETTING for m in tasks.TRAINING.values())
  return (*(f.name for f in dataclasses.fields(Config) if f.name not in SELECTORS),
          *variant_settings)


def make_config(experiment: str = DEFAULT, protocol: str | None = None,
                **overrides: Any) -> Config:
  """The Config of `experiment` (with `protocol`, see `resolve`) and `overrides` (None: keep
  the experiment's value); the variant setting may be `both`, a sweepable setting a list;
  `auto` settings resolved. A bad name or value raises ConfigError with the line the command
  line prints."""
  found = resolve(experiment, protocol)
  if found.task not in tasks.TRAINING:
    raise ConfigError(f'--experiment={found.name} trains nothing: it checks results '
                      '(dnn_jax.check_theory(), or main.py --experiment=theory)')
  task = tasks.TRAINING[found.task]
  overrides = {k: v for k, v in overrides.items() if v is not None}
  _check_names(task, overrides)
  values = {**found.settings, **overrides}
  for name in sweep_fields():  # a list sweeps; a list of one is that value
    if isinstance(values.get(name), (list, tuple)):
      if not values[name]:
        raise ConfigError(f'--{name}=[]: accepted: a number, or a list of them to sweep')
      values[name] = tuple(values[name]) if len(values[name]) > 1 else values[name][0]
  choice = values.pop(task.VARIANT_SETTING)
  if choice not in (*task.VARIANTS, tasks.BOTH):
    raise ConfigError(f'--{task.VARIANT_SETTING}={choice}: accepted: '
                      f'{", ".join((*task.VARIANTS, tasks.BOTH))}')
  if values.get('optimizer', 'sgd') not in task.OPTIMIZERS:
    raise ConfigError(f'--optimizer={values["optimizer"]}: accepted for --experiment='
                      f'{found.name}: {", ".join(task.OPTIMIZERS)}')
  mu, default_mu = overrides.get('sdlm_mu'), _default('sdlm_mu')
  mu = tuple(mu) if isinstance(mu, list) else mu
  if values.get('optimizer', 'sgd') != 'sdlm' and mu not in (None, default_mu, (default_mu,)):
    raise ConfigError(f'--sdlm_mu={flag_text(mu)} applies only with --optimizer=sdlm '
                      f'(here: {values.get("optimizer", "sgd")}); accepted: leave it out')
  if values.get('kernels', AUTO) == AUTO:
    values['kernels'] = kernels.default_kernels()
  if not values.get('micro_batches'):
    values['micro_batches'] = training.default_micro_batches()
  return Config(experiment=found.name, task=found.task,
                variants=task.VARIANTS if choice == tasks.BOTH else (choice,), **values)


def _default(name: str) -> Any:
  return Config.__dataclass_fields__[name].default


def _check_names(task, overrides: dict[str, Any]) -> None:
  for name, value in overrides.items():
    sharing = tasks.by_variant_setting().get(name)
    if sharing and name != task.VARIANT_SETTING:
      where = ' or '.join(t.NAME for t in sharing)  # each task has an experiment of its name
      raise ConfigError(f'--{name}={value} applies only to --experiment={where} (accepted '
                        f'there: {", ".join((*sharing[0].VARIANTS, tasks.BOTH))})')
    if name not in settings():
      raise ConfigError(f'--{name}: no such setting; accepted: {", ".join(settings())}')
