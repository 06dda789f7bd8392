"""The course's experiments, one module each, and their named protocols.

Each experiment module defines NAME, VARIANT_SETTING (the flag choosing variants), VARIANTS,
PROTOCOLS (name -> the setting values of one course protocol; the first is the default),
CLASS_NAMES (what each class index is), `load_data(config)`, `make_model(config, variant)`,
`objective(variant)`, and `figures(shown, train_split, title)`: the pictures of what its
models learned ({file name: draw(path)}), from each variant's `Shown` models.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, NamedTuple

from dnn_jax import kernels, training
from dnn_jax.config import AUTO, Config, ConfigError, sweep_fields
from dnn_jax.experiments import lenet, linear


class Shown(NamedTuple):
  """The models of a variant that its figures show: the seeds of one grid point."""
  params: Any                 # their parameters, numpy, with the models axis
  captions: tuple[str, ...]   # each model's description, e.g. 'seed 0'


EXPERIMENTS: dict[str, ModuleType] = {module.NAME: module for module in (lenet, linear)}
BOTH = 'both'  # the variant choice that trains every variant
SELECTORS = ('experiment', 'protocol', 'variants')  # set by make_config's own arguments


def make_config(experiment: str, protocol: str | None = None, **overrides: Any) -> Config:
  """The Config of `protocol` (default: the experiment's first) with `overrides` (None: keep
  the protocol's value); the variant setting may be `both`, a sweepable setting a list;
  `auto` settings resolved. A bad name or value raises ConfigError with the line the command
  line prints."""
  if experiment not in EXPERIMENTS:
    raise ConfigError(f'--experiment={experiment}: accepted: {", ".join(EXPERIMENTS)}')
  module = EXPERIMENTS[experiment]
  protocol = protocol or next(iter(module.PROTOCOLS))
  if protocol not in module.PROTOCOLS:
    raise ConfigError(f'--protocol={protocol}: accepted for --experiment={experiment}: '
                      f'{", ".join(module.PROTOCOLS)}')
  overrides = {k: v for k, v in overrides.items() if v is not None}
  _check_names(module, overrides)
  values = {**module.PROTOCOLS[protocol], **overrides}
  for name in sweep_fields():  # a list sweeps; a list of one is that value
    if isinstance(values.get(name), (list, tuple)):
      values[name] = tuple(values[name]) if len(values[name]) > 1 else values[name][0]
  choice = values.pop(module.VARIANT_SETTING)
  if choice not in (*module.VARIANTS, BOTH):
    raise ConfigError(f'--{module.VARIANT_SETTING}={choice}: accepted: '
                      f'{", ".join((*module.VARIANTS, BOTH))}')
  if values.get('kernels', AUTO) == AUTO:
    values['kernels'] = kernels.default_kernels()
  if not values.get('micro_batches'):
    values['micro_batches'] = training.default_micro_batches()
  return Config(experiment=experiment, protocol=protocol,
                variants=module.VARIANTS if choice == BOTH else (choice,), **values)


def settings() -> tuple[str, ...]:
  """The names `make_config` takes as overrides: every setting, and each variant setting."""
  return (*(f.name for f in dataclasses.fields(Config) if f.name not in SELECTORS),
          *(module.VARIANT_SETTING for module in EXPERIMENTS.values()))


def _check_names(module: ModuleType, overrides: dict[str, Any]) -> None:
  for name, value in overrides.items():
    other = next((m for m in EXPERIMENTS.values()
                  if m is not module and m.VARIANT_SETTING == name), None)
    if other:
      raise ConfigError(f'--{name}={value} applies only to --experiment={other.NAME} (accepted '
                        f'there: {", ".join((*other.VARIANTS, BOTH))})')
    if name not in settings():
      raise ConfigError(f'--{name}: no such setting; accepted: {", ".join(settings())}')
