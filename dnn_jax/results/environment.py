"""What a run ran on: its devices and the versions of the packages that compute it."""

from __future__ import annotations

import platform
from importlib import metadata

import jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'numpy', 'orbax-checkpoint',
            'tensorflow-datasets', 'absl-py', 'tensorboardX')


def device_description() -> str:
  """'1 x cpu:cpu', or '8 x gpu:NVIDIA H200 in 2 processes'."""
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
