"""A run's folder and its identity: the configuration saved as config.json, which a resumed
or evaluated run must agree with (on the settings that change the numbers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dnn_jax import report
from dnn_jax.checkpoints import NothingToEvaluate
from dnn_jax.config import Config, ConfigError, identity_fields

CONFIG_FILE = 'config.json'
CHECKPOINTS = 'checkpoints'  # <workdir>/checkpoints/<variant>/<step>


def saved_config(workdir: Path) -> dict[str, Any]:
  """The configuration saved in `workdir` by the run that trained there, as JSON values."""
  path = workdir / CONFIG_FILE
  if not path.exists():
    raise NothingToEvaluate(f'{workdir} holds no run ({CONFIG_FILE} not found)')
  try:
    saved = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ConfigError(f'{path} is damaged ({e}); use another --workdir, or --overwrite to '
                      'start afresh there') from None
  if not isinstance(saved, dict):
    raise ConfigError(f'{path} holds a JSON {type(saved).__name__}, not a configuration; use '
                      'another --workdir, or --overwrite to start afresh there')
  return saved


def load_config(workdir: Path) -> Config:
  """The Config saved in `workdir`."""
  try:
    return Config.from_json(saved_config(workdir))
  except TypeError as e:  # a field missing
    raise ConfigError(f'{workdir / CONFIG_FILE} is not a configuration of this version ({e})'
                      ) from None


def check_config(workdir: Path, config: Config, overwrite: bool = False,
                 create: bool = True) -> None:
  """Save the run's config in `workdir` (if `create`), or check that it matches the saved one.

  A mismatch fails naming the differing fields, unless `overwrite`, which deletes the
  workdir's checkpoints and starts afresh.
  """
  path = workdir / CONFIG_FILE
  current = config.to_json()
  if path.exists() and overwrite:
    shutil.rmtree(workdir / CHECKPOINTS, ignore_errors=True)
  elif path.exists() or not create:
    saved = saved_config(workdir)
    differing = [f'{k} (saved {saved.get(k)!r}, now {_as_json(current[k])!r})'
                 for k in identity_fields() if _as_json(current[k]) != saved.get(k)]
    if differing:
      raise ConfigError(f'{workdir} holds a run with another configuration: '
                        f'{"; ".join(differing)}. Use another --workdir, or --overwrite to '
                        'start afresh there')
    return
  report.write_json(path, current)


def saved_steps(workdir: Path) -> list[int]:
  """Steps of the finished checkpoints in `workdir`, any variant."""
  return sorted(int(p.name) for p in workdir.glob(f'{CHECKPOINTS}/*/*') if p.name.isdigit())


def _as_json(value: Any) -> Any:
  return json.loads(json.dumps(value))
