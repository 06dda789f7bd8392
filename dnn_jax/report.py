"""What a run reports: the course's test line, the environment, results.json."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'numpy', 'orbax-checkpoint',
            'tensorflow-datasets', 'absl-py')


def test_line(loss: float, correct: int, total: int) -> str:
  """The course's format: [Test set] Average loss: 0.0875, Accuracy: 1926/1991 (96.74%)."""
  return (f'[Test set] Average loss: {loss:.4f}, '
          f'Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)')


def device_description() -> str:
  devices = jax.devices()
  return f'{len(devices)} x {devices[0].platform}:{devices[0].device_kind}'


def versions() -> dict[str, str]:
  found = {'python': platform.python_version()}
  for name in PACKAGES:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return found


def write_json(path: str | os.PathLike, content: Any) -> None:
  """Write JSON atomically: a reader sees the old file or the whole new one, never half."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile('w', dir=path.parent, suffix='.tmp', delete=False) as f:
    json.dump(content, f, indent=2)
  os.replace(f.name, path)
