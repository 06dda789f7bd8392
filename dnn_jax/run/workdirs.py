"""A run's folder: checked usable before anything is written (every path the run writes, its
free space), locked for one training run at a time (or any number of evaluations), watched
for being moved while held, and its identity, config.json, which a resumed or evaluated run
must agree with."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from dnn_jax.config import Config
from dnn_jax.errors import (ConfigError, NothingToEvaluate, WorkdirBusy, WorkdirMoved,
                            WriteError)
from dnn_jax.results import files
from dnn_jax.run import identity

CONFIG_FILE = 'config.json'
CHECKPOINTS = 'checkpoints'  # <workdir>/checkpoints/<variant>/<step>
LOCK_NOTE = '.lock'          # who holds the workdir's lock (the lock itself is on the folder)
TEMPORARY = '.*.tmp'         # what an atomic write killed midway leaves (files.write_atomic)
MARGIN = 1.5                 # the free-space check asks this times the estimated need


class Layout(NamedTuple):
  """What a run writes in its workdir, besides config.json: files (results.json first) and
  folders."""
  files: tuple[str, ...]
  folders: tuple[str, ...]


def default_path(experiment: str) -> str:
  """A new run's workdir when none is given: runs/<experiment>-<time>-<process id> (unique
  even for runs started in the same second)."""
  return f'runs/{experiment}-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}'


def _unusable(workdir: Path, why: str) -> ConfigError:
  return ConfigError(f'--workdir={workdir} {why}; accepted: a writable folder, or a path where '
                     'one can be made')


def check_path(workdir: Path) -> None:
  """A path the filesystem can hold: each name within its limit, the whole within its own."""
  absolute = Path(os.path.abspath(workdir))
  existing = next(p for p in (absolute, *absolute.parents) if _exists(p))
  name_max = os.pathconf(existing, 'PC_NAME_MAX')
  path_max = os.pathconf(existing, 'PC_PATH_MAX')
  long_name = next((part for part in absolute.parts if len(part.encode()) > name_max), None)
  if long_name is not None:
    raise _unusable(workdir, f'has a name of {len(long_name.encode())} bytes, over the '
                    f'filesystem\'s {name_max}')
  if len(str(absolute).encode()) + 64 > path_max:  # room for the run's own files below it
    raise _unusable(workdir, f'is {len(str(absolute).encode())} bytes long, too near the '
                    f'filesystem\'s {path_max} for the files a run writes below it')


def _exists(path: Path) -> bool:
  try:
    os.stat(path)
    return True
  except OSError:
    return False


def prepare(workdir: Path, layout: Layout, need_bytes: int) -> None:
  """Make `workdir` (and its parents) unless it exists, and check that it can hold the run.

  One line, and the disk left as it was, where it is a file or under one, holds a file where
  a folder of the run goes (or a folder where a file goes), cannot be made, or its disk has
  no room for MARGIN x `need_bytes` (less the checkpoints already there, which are replaced).
  """
  check_path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise _unusable(workdir, 'is a file')
  for name in (*layout.folders, *layout.files, CONFIG_FILE):
    path, folder = workdir / name, name in layout.folders
    if path.is_symlink() or (path.exists() and path.is_dir() != folder):
      what = 'a link' if path.is_symlink() else 'a folder' if path.is_dir() else 'a file'
      raise ConfigError(f'{path} is {what} where the run writes its {name} '
                        f'{"folder" if folder else "file"}: move it away, or use another '
                        '--workdir')
  made = [p for p in (workdir.absolute(), *workdir.absolute().parents) if not p.exists()]
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise _unusable(workdir, f'cannot be made ({e.strerror})') from None
  need = int(MARGIN * need_bytes) - _bytes_under(workdir / CHECKPOINTS)
  free = shutil.disk_usage(workdir).free
  if need > free:
    for folder in made:  # the deepest first: leave the disk as it was
      folder.rmdir()
    raise ConfigError(f'--workdir={workdir} has {free / 2**20:.1f} MiB free, and the run needs '
                      f'about {need / 2**20:.1f} MiB (its checkpoints, metrics and outputs, with '
                      'a margin); free some space, lower --keep_checkpoints, or use another '
                      '--workdir')


class Claim:
  """The workdir as this process holds it: locked, and known by its device and inode, so that
  a workdir moved, removed or replaced while held is noticed (`check`)."""

  def __init__(self, workdir: Path, fd: int):
    self.workdir, self._fd = workdir, fd
    status = os.fstat(fd)
    self._identity = (status.st_dev, status.st_ino)

  def check(self, written: Path | None = None) -> None:
    """Raise WorkdirMoved if `workdir` is no longer the folder this process locked. `written`:
    a checkpoint just saved, which, if the workdir moved while it was saved, remade the old
    path: what it holds is then removed, if it holds nothing else."""
    try:
      status = os.stat(self.workdir)
      here = (status.st_dev, status.st_ino) == self._identity
    except OSError:
      here = False
    if not here:
      if written is not None:
        self._remove_remade(written)
      raise WorkdirMoved(f'--workdir={self.workdir} was moved or replaced while this run held it '
                         f'(the folder it locked is now {_where(self._fd)}): nothing more is '
                         'written; move it back')


  def _remove_remade(self, written: Path) -> None:
    try:
      step = written.relative_to(self.workdir.absolute())
    except ValueError:
      return
    def ours(path: Path) -> bool:  # the checkpoint's folders, and what is in its step folder
      parts = path.relative_to(self.workdir).parts
      return (parts == step.parts[:len(parts)] or (len(parts) > 2 and parts[:2] == step.parts[:2]
                                                   and parts[2].startswith(step.parts[2])))
    with contextlib.suppress(OSError):
      if self.workdir.is_dir() and all(ours(p) for p in self.workdir.rglob('*')):
        shutil.rmtree(self.workdir)


def _where(fd: int) -> str:
  try:
    return os.readlink(f'/proc/self/fd/{fd}')
  except OSError:
    return 'elsewhere'


@contextlib.contextmanager
def lock(workdir: Path, shared: bool = False) -> Iterator[Claim]:
  """Hold `workdir` for the block: exclusively for a training run, shared for evaluations.
  The lock is on the folder itself (nothing a user can delete or link away); a training run
  also leaves a note of who holds it in LOCK_NOTE. The OS releases the lock when the process
  ends, however it ends."""
  if shared and not workdir.is_dir():
    raise NothingToEvaluate(f'{workdir} holds no run ({CONFIG_FILE} not found)')
  try:
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
  except OSError as e:
    raise _unusable(workdir, f'cannot be opened ({e.strerror})') from None
  try:
    try:
      fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirBusy(f'--workdir={workdir} is in use by {_holder(workdir, fd)}; wait for it '
                        'to end, or use another --workdir') from None
    if not shared:
      try:
        files.write_json(workdir / LOCK_NOTE, dict(pid=os.getpid(), host=socket.gethostname(),
                                                   doing='training'))
      except WriteError as e:
        raise _unusable(workdir, f'is not writable ({str(e).rsplit(": ", 1)[-1]})') from None
    yield Claim(workdir, fd)
  finally:
    os.close(fd)


def _holder(workdir: Path, fd: int) -> str:
  """Who holds the lock on `workdir`: 'a training run (process 123)' or 'an evaluation (process
  456)', from the kernel's table of locks (Linux) or else the holder's note."""
  status = os.fstat(fd)
  device = f'{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}'
  holders = []
  with contextlib.suppress(OSError):
    for line in Path('/proc/locks').read_text().splitlines():
      fields = line.split()
      if len(fields) > 5 and fields[1] == 'FLOCK' and fields[5] == device:
        holders.append((fields[3], fields[4]))
  if holders:
    kinds = {'WRITE': 'a training run', 'READ': 'an evaluation'}
    access = holders[0][0]
    pids = ', '.join(sorted({pid for a, pid in holders if a == access}, key=int))
    return f'{kinds.get(access, "another run")} (process {pids})'
  with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
    note = json.loads((workdir / LOCK_NOTE).read_text())
    return f'a training run (process {int(note["pid"])} on {note["host"]})'
  return 'another run'


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
  check_path(workdir)
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
  if 'identity' not in saved:
    raise ConfigError(f'{path} was written by an earlier version of dnn_jax (it holds no run '
                      'identity); use another --workdir, or --overwrite to start afresh there')
  names = saved.get('settings') if isinstance(saved.get('settings'), dict) else {}
  if saved['identity'] != identity.digest({k: saved.get(k) for k in names}):
    raise ConfigError(f'{path} was changed after its run wrote it (its settings no longer match '
                      'the identity saved with them): put it back, use another --workdir, or '
                      '--overwrite to start afresh there')
  return saved


def load_config(workdir: Path) -> Config:
  """The Config saved in `workdir`."""
  try:
    return Config.from_json(saved_config(workdir))
  except TypeError as e:  # a field missing
    raise ConfigError(f'{workdir / CONFIG_FILE} is not a configuration of this version ({e})'
                      ) from None


def check_config(workdir: Path, config: Config, layout: Layout | None = None,
                 overwrite: bool = False, create: bool = True) -> None:
  """Save the run's config in `workdir` (if `create`), or check that it matches the saved one.

  A mismatch fails naming the differing settings, unless `overwrite`, which first removes
  everything an earlier run wrote there (`layout`, results.json first: a reader never sees the
  old results with the new config) and starts afresh.
  """
  path = workdir / CONFIG_FILE
  if path.exists() and overwrite:
    remove_run(workdir, layout)
  elif path.exists() or not create:
    saved = saved_config(workdir)
    differing = identity.differences(saved, identity.settings(config))
    if differing:
      raise ConfigError(f'{workdir} holds a run with another configuration: '
                        f'{"; ".join(differing)}. Use another --workdir, or --overwrite to '
                        'start afresh there')
    return
  files.write_json(path, dict(config.to_json(), **identity.record(config)))


def remove_run(workdir: Path, layout: Layout) -> None:
  """Remove what a run wrote in `workdir`, in the order `layout` gives, config.json last."""
  for name in layout.files:
    with contextlib.suppress(FileNotFoundError):
      (workdir / name).unlink()
  for name in layout.folders:
    shutil.rmtree(workdir / name, ignore_errors=True)
  remove_temporaries(workdir)
  with contextlib.suppress(FileNotFoundError):
    (workdir / CONFIG_FILE).unlink()


def remove_temporaries(workdir: Path) -> None:
  """The temporary files of atomic writes that a killed run left behind."""
  for left in workdir.glob(TEMPORARY):
    with contextlib.suppress(OSError):
      left.unlink()


def saved_steps(workdir: Path) -> list[int]:
  """Steps of the finished checkpoints in `workdir`, any variant."""
  return sorted(int(p.name) for p in workdir.glob(f'{CHECKPOINTS}/*/*') if p.name.isdigit())

