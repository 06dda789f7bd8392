"""Files written atomically: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from dnn_jax.errors import WriteError


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], mode: str = 'w') -> None:
  """Write `path` through a temporary file beside it, renamed over it once complete: a reader
  sees the old file or the whole new one, never half, and a failure leaves no temporary."""
  path = Path(path)
  temporary = None
  try:
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f'.{path.name}.',
                                     suffix='.tmp', delete=False) as f:
      temporary = f.name
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except OSError as e:
    if temporary:
      with contextlib.suppress(OSError):
        os.unlink(temporary)
    raise WriteError(f'cannot write {path}: {e.strerror or e}') from None


def write_json(path: str | os.PathLike, content: Any) -> None:
  write_atomic(path, lambda f: json.dump(content, f, indent=2))


def write_text(path: str | os.PathLike, text: str) -> None:
  write_atomic(path, lambda f: f.write(text))
