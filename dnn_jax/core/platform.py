"""What depends on the platform: whether the auto settings take their accelerator values, the
matmul precision of each `precision` setting, and XLA's deterministic GPU execution (an
environment flag, read once, when JAX starts its backends)."""

from __future__ import annotations

import os

import jax

# On the CPU, set to 1 to give the auto settings their accelerator values (to test them).
ACCELERATOR_DEFAULTS = 'DNN_JAX_ACCELERATOR_DEFAULTS'
# The `precision` setting -> `jax.default_matmul_precision` (float32 matmuls and convolutions).
# (XLA's precision levels, HIGHEST and HIGH, which convolutions take too: dot algorithms like
# BF16_BF16_F32 do not reach them, so no bfloat16 choice is offered.)
PRECISIONS = {'float32': 'float32',       # full float32: every claim of bit-identity is made here
              'tf32': 'tensorfloat32'}    # NVIDIA's TF32 tensor cores: 10-bit mantissa operands
DETERMINISTIC_FLAG = '--xla_gpu_exclude_nondeterministic_ops=true'  # XLA's docs/determinism.md


def on_accelerator() -> bool:
  """Whether the auto settings take their accelerator values: on a GPU or TPU, or on the CPU
  when ACCELERATOR_DEFAULTS=1 asks for them."""
  return jax.default_backend() != 'cpu' or os.environ.get(ACCELERATOR_DEFAULTS) == '1'


def _backends_started() -> bool:
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  return xla_bridge.backends_are_initialized()


def deterministic() -> bool:
  """Whether XLA runs GPU programs deterministically in this process (its flag is set)."""
  return DETERMINISTIC_FLAG in os.environ.get('XLA_FLAGS', '').split()


def use_compilation_cache(folder: str) -> None:
  """Keep every compiled program in `folder` (JAX's persistent compilation cache), so that
  another process (a resume, an evaluation) runs the very program training ran: the same
  autotuned GPU algorithms, the same numbers."""
  jax.config.update('jax_compilation_cache_dir', folder)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def set_deterministic(wanted: bool) -> bool:
  """Ask XLA for deterministic GPU execution (or not) before JAX starts its backends; False
  where they have started with the other choice (it can no longer change in this process)."""
  if deterministic() == wanted:
    return True
  if _backends_started():
    return False
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split() if f != DETERMINISTIC_FLAG]
  os.environ['XLA_FLAGS'] = ' '.join([*flags, *([DETERMINISTIC_FLAG] if wanted else [])])
  return True
