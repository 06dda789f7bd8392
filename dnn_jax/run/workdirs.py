"""A run's folder: checked usable before anything is written, locked for one training run at a
time, and its identity, the configuration saved as config.json, which a resumed or evaluated
run must agree with (on the settings that change the numbers)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from dnn_jax.config import Config, identity_fields
from dnn_jax.errors import ConfigError, NothingToEvaluate, WorkdirBusy
from dnn_jax.results import files

CONFIG_FILE = 'config.json'
CHECKPOINTS = 'checkpoints'  # <workdir>/checkpoints/<variant>/<step>
LOCK_FILE = '.lock'          # holds the process id of the training run that locks the workdir
OUTPUTS_BYTES = 4 * 2**20    # results.json, tables, figures, metrics, report (~1 MiB), generously


def default_path(experiment: str) -> str:
  """A new run's workdir when none is given: runs/<experiment>-<time>-<process id> (unique
  even for runs started in the same second)."""
  return f'runs/{experiment}-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}'


def _unusable(workdir: Path, why: str) -> ConfigError:
  return ConfigError(f'--workdir={workdir} {why}; accepted: a writable folder, or a path where '
                     'one can be made')


def prepare(workdir: Path, variants: Sequence[str], checkpoint_bytes: Sequence[int],
            keep: int) -> None:
  """Make `workdir` (and its parents) unless it exists, and check that it can hold the run.

  One line, and the disk left as it was, where it is a file or under one, holds a file where
  a variant's checkpoints go, cannot be made, or its disk has no room for `keep` + 1
  checkpoints of each variant (sizes `checkpoint_bytes`; those already there are replaced)
  and the outputs.
  """
  if workdir.exists() and not workdir.is_dir():
    raise _unusable(workdir, 'is a file')
  for variant in variants:
    path = workdir / CHECKPOINTS / variant
    if path.exists() and not path.is_dir():
      raise ConfigError(f'{path} is a file where the {variant} checkpoints go: move it away, or '
                        'use another --workdir')
  made = [p for p in (workdir.absolute(), *workdir.absolute().parents) if not p.exists()]
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise _unusable(workdir, f'cannot be made ({e.strerror})') from None
  need = (keep + 1) * sum(checkpoint_bytes) + OUTPUTS_BYTES - _bytes_under(workdir / CHECKPOINTS)
  free = shutil.disk_usage(workdir).free
  if need > free:
    for folder in made:  # the deepest first: leave the disk as it was
      folder.rmdir()
    raise ConfigError(f'--workdir={workdir} has {free / 2**20:.1f} MiB free, and the run needs '
                      f'about {need / 2**20:.1f} MiB ({keep + 1} checkpoints of each variant and '
                      'the outputs); free some space, lower --keep_checkpoints, or use another '
                      '--workdir')


@contextlib.contextmanager
def lock(workdir: Path, shared: bool = False) -> Iterator[None]:
  """Hold `workdir`'s lock for the block: exclusive for a training run, shared for evaluations
  (a workdir never trained in by this version has no lock file, and is not locked). The OS
  releases it when the process ends, however it ends."""
  path = workdir / LOCK_FILE
  if shared and not path.exists():
    yield
    return
  try:
    fd = os.open(path, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise _unusable(workdir, f'is not writable ({e.strerror})') from None
  try:
    try:
      fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 20, 0).decode(errors='replace').strip() or 'unknown'
      raise WorkdirBusy(f'--workdir={workdir} is in use by a training run (process {holder}); '
                        'wait for it to end, or use another --workdir') from None
    if not shared:
      try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
      except OSError as e:
        raise _unusable(workdir, f'is not writable ({e.strerror})') from None
    yield
  finally:
    os.close(fd)


def _bytes_under(folder: Path) -> int:
  """Bytes of the files under `folder`; files that vanish meanwhile (another run's) count 0."""
  total = 0
  for root, _, names in os.walk(folder):
    for name in names:
      with contextlib.suppress(FileNotFoundError):
        total += os.stat(os.path.join(root, name)).st_size
  return total


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
  files.write_json(path, current)


def saved_steps(workdir: Path) -> list[int]:
  """Steps of the finished checkpoints in `workdir`, any variant."""
  return sorted(int(p.name) for p in workdir.glob(f'{CHECKPOINTS}/*/*') if p.name.isdigit())


def _as_json(value: Any) -> Any:
  return json.loads(json.dumps(value))
