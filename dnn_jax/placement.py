"""Where the models live: the seed axis sharded over a 1-D mesh of the devices, the data
replicated, and XLA's memory estimate checked against the device before anything runs."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnn_jax import report
from dnn_jax.config import ConfigError


class Placement(NamedTuple):
  padded_seeds: int          # the seed count rounded up to a multiple of the device count
  seeds: NamedSharding       # the leading seed axis, split over the devices
  replicated: NamedSharding  # the data: one copy per device


def place(num_seeds: int) -> Placement:
  devices = jax.devices()
  mesh = Mesh(np.array(devices), ('seeds',))
  padded = -(-num_seeds // len(devices)) * len(devices)
  return Placement(padded, NamedSharding(mesh, PartitionSpec('seeds')),
                   NamedSharding(mesh, PartitionSpec()))


def available_memory_bytes() -> int:
  """Free memory of one device: its allocator's limit, or the host's free RAM on CPU."""
  stats = jax.devices()[0].memory_stats()
  if stats and 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def check_memory(compiled: jax.stages.Compiled, num_seeds: int, padded_seeds: int) -> int:
  """Bytes one device needs for the compiled epoch (XLA's own analysis); fails early,
  naming the largest seed count that fits, when that is more than the device has."""
  analysis = compiled.memory_analysis()
  need = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)
  seeds_per_device = padded_seeds // len(jax.devices())
  per_seed = (analysis.temp_size_in_bytes + analysis.output_size_in_bytes) / seeds_per_device
  available = available_memory_bytes()
  if need > available:
    largest = int((available - (need - per_seed * seeds_per_device)) // per_seed) * len(jax.devices())
    raise ConfigError(
        f'--num_seeds={num_seeds} needs about {need / 2**30:.1f} GiB per device '
        f'({per_seed / 2**20:.0f} MiB per seed), but {available / 2**30:.1f} GiB is free on '
        f'{report.device_description()}; the largest --num_seeds that fits is {max(largest, 0)}')
  return need
