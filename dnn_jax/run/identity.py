"""A run's identity: the settings that make its numbers what they are, and the layout of its
checkpoints, as one sha256 that config.json and every checkpoint carry; checked on resume and
evaluation, and agreed by every process of a multi-process run before anything is written."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from dnn_jax.config import Config, identity_fields
from dnn_jax.errors import ConfigError
from dnn_jax.run import cluster
from dnn_jax.version import __version__

# The layout of what a checkpoint holds (run/checkpoints.py), raised whenever that changes:
# 1, checkpoints before identities were recorded; 2, with the run's identity and numerics;
# 3, the training set's accuracy per epoch in the history.
LAYOUT = 3
_AGREE_BYTES = 16384  # room for every identity setting, as JSON, in the processes' comparison


def settings(config: Config) -> dict[str, Any]:
  """The identity settings of `config`, as JSON values."""
  return json.loads(json.dumps({name: getattr(config, name) for name in identity_fields()}))


def digest(identity_settings: Mapping[str, Any]) -> str:
  """sha256 of the identity settings and the checkpoint layout."""
  text = json.dumps(dict(layout=LAYOUT, settings=identity_settings), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()


def record(config: Config) -> dict[str, Any]:
  """What config.json and each checkpoint's metadata say of the run's identity."""
  values = settings(config)
  return dict(identity=digest(values), layout=LAYOUT, dnn_jax=__version__,
              settings=values)


def differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                saved_as: str = 'saved', current_as: str = 'now') -> list[str]:
  """'learning_rate (saved 0.0255, now 0.1)' for each identity setting that differs."""
  return [f'{name} ({saved_as} {saved.get(name)!r}, {current_as} {current.get(name)!r})'
          for name in identity_fields() if saved.get(name) != current.get(name)]


def agree(config: Config, mode: str) -> None:
  """In a multi-process run, every process compares its mode and identity settings with process
  0's before anything is written: a difference is a ConfigError on every process, naming the
  setting and the process."""
  agree_on(dict(mode=mode, **settings(config)))


def agree_on(values: Mapping[str, Any]) -> None:
  """`agree` for any JSON `values`: the same on every process, or a ConfigError on each."""
  if cluster.count() == 1:
    return
  mine = json.dumps(values, sort_keys=True).encode()
  if len(mine) > _AGREE_BYTES:
    raise ConfigError(f'the run\'s settings take {len(mine)} bytes as JSON, more than the '
                      f'{_AGREE_BYTES} that processes compare')
  every = cluster.gather_bytes(mine, _AGREE_BYTES)
  first = json.loads(every[0])
  for process, text in enumerate(every[1:], 1):
    other = json.loads(text)
    if other != first:
      name = next(k for k in sorted({*first, *other}) if first.get(k) != other.get(k))
      theirs = f'{name}={other[name]!r}' if name in other else f'no {name}'
      ours = f'has {first[name]!r}' if name in first else 'sets none'
      raise ConfigError(f'process {process} was started with {theirs} where process 0 {ours}: '
                        'every process of a run must be given the same settings')
