"""Where the models live: the models axis sharded over a 1-D mesh of the devices (of every
process, in a multi-process run), the data replicated; how many models train side by side;
and XLA's memory estimate checked against each process's device before anything runs."""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dnn_jax.config import Config
from dnn_jax.core import platform
from dnn_jax.errors import ConfigError
from dnn_jax.results import environment
from dnn_jax.run import cluster

# On one CPU, models are vmapped side by side only while a chunk's training step stays under
# this many FLOPs: a step larger than that keeps the cores busy alone, and vmapping more of
# them only costs (the measurements are in benchmarks/README.md).
CPU_CHUNK_FLOPS = 10e6


class Placement(NamedTuple):
  padded_models: int         # the model count rounded up to a multiple of the device count
  models: NamedSharding      # the leading models axis, split over the devices
  replicated: NamedSharding  # the data: one copy per device

  @property
  def per_device(self) -> int:
    return self.padded_models // self.models.mesh.size

  @property
  def here(self) -> int:
    """The models on this process's devices."""
    return self.per_device * len(self.models.addressable_devices)


def place(num_models: int) -> Placement:
  devices = jax.devices()
  mesh = Mesh(np.array(devices), ('models',))
  padded = -(-num_models // len(devices)) * len(devices)
  return Placement(padded, NamedSharding(mesh, PartitionSpec('models')),
                   NamedSharding(mesh, PartitionSpec()))


def per_device(fn: Callable, mesh: Mesh) -> Callable:
  """`fn` (a `training.over_models` function) of each device's own models, side by side in
  chunks as on one device (shard_map): so model i meets the same program whatever the number
  of devices and processes. The function itself where there is one device."""
  if mesh.size == 1:
    return fn
  specs = tuple(PartitionSpec('models') if axis == 0 else PartitionSpec() for axis in fn.in_axes)
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec('models'),
                       check_vma=False)


def put(tree, sharding: NamedSharding):
  """Host values, the same in every process, onto `sharding` (each process places its own
  devices' part); random keys as their key data."""
  def one(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(jax.device_put(np.asarray(jax.random.key_data(x)), sharding),
                                      impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)
  return jax.tree.map(one, tree)


def chunk_width(requested: int, num_models: int, step_flops: Callable[[], float]) -> int:
  """Models vmapped side by side on a device that holds `num_models`: `requested` (0: auto).
  Auto: all of them on accelerators; on CPU, as many as keep a chunk's step (`step_flops()`
  per model) under CPU_CHUNK_FLOPS, at least one."""
  if requested:
    return min(requested, num_models)
  if num_models == 1 or platform.on_accelerator():
    return num_models
  return int(np.clip(CPU_CHUNK_FLOPS // step_flops(), 1, num_models))


def available_memory_bytes() -> int:
  """Free memory of one of this process's devices: its allocator's limit, or the host's free
  RAM on CPU."""
  stats = jax.local_devices()[0].memory_stats()
  if stats and 'bytes_limit' in stats:
    return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def check_memory(compiled: jax.stages.Compiled, config: Config, where: Placement) -> int:
  """Bytes one device needs for the compiled epoch (XLA's own analysis); fails early,
  naming the largest number of models that fits, when that is more than the device has."""
  analysis = compiled.memory_analysis()
  need = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)
  models_per_device = where.per_device
  per_model = (analysis.temp_size_in_bytes + analysis.output_size_in_bytes) / models_per_device
  available = int(cluster.every_process(max(available_memory_bytes(), 0)).min())  # one verdict
  if need > available:
    largest = int((available - (need - per_model * models_per_device)) // per_model)
    largest = max(largest * where.models.mesh.size, 0)
    grid = len(config.grid)
    what = (f'--num_seeds={config.num_seeds}' if grid == 1 else
            f'a grid of {grid} values x {config.num_seeds} seeds ({config.num_models} models)')
    raise ConfigError(
        f'{what} needs about {need / 2**30:.1f} GiB per device ({per_model / 2**20:.0f} MiB '
        f'per model), but {available / 2**30:.1f} GiB is free on {environment.device_description()}; '
        f'the largest ' + ('--num_seeds' if grid == 1 else 'number of models')
        + f' that fits is {largest}')
  return need
