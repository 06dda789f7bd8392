"""Files written atomically: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from dnn_jax.errors import WriteError


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


# Files come out as any other file the user writes (a temporary file is made 0600).
_MODE = 0o666 & ~_umask()


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], mode: str = 'w') -> None:
  """Write `path` through a temporary file beside it, renamed over it once complete: a reader
  sees the old file or the whole new one, never half, and a failure (or an interrupt) leaves
  no temporary."""
  path = Path(path)
  temporary = None
  try:
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f'.{path.name}.',
                                     suffix='.tmp', delete=False) as f:
      temporary = f.name
      os.fchmod(f.fileno(), _MODE)
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException as e:
    if temporary:
      with contextlib.suppress(OSError):
        os.unlink(temporary)
    if isinstance(e, OSError):
      raise WriteError(f'cannot write {path}: {e.strerror or e}') from None
    raise


def write_json(path: str | os.PathLike, content: Any) -> None:
  write_atomic(path, lambda f: json.dump(content, f, indent=2))


def write_text(path: str | os.PathLike, text: str) -> None:
  write_atomic(path, lambda f: f.write(text))
