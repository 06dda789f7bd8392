"""What a run reports: the course's test line, the environment, and files written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Callable

import jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'numpy', 'orbax-checkpoint',
            'tensorflow-datasets', 'absl-py', 'tensorboardX')


def test_line(loss: float, correct: int, total: int) -> str:
  """The course's format: [Test set] Average loss: 0.0875, Accuracy: 1926/1991 (96.74%)."""
  return (f'[Test set] Average loss: {loss:.4f}, '
          f'Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)')


def device_description() -> str:
  devices = jax.devices()
  processes = f' in {jax.process_count()} processes' if jax.process_count() > 1 else ''
  return f'{len(devices)} x {devices[0].platform}:{devices[0].device_kind}{processes}'


def versions() -> dict[str, str]:
  found = {'python': platform.python_version()}
  for name in PACKAGES:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return found


class WriteError(Exception):
  """A file could not be written (no space, no permission); the message names it and why."""


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
