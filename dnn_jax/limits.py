"""The process limits a run needs, checked before JAX starts: under a smaller address-space
limit (`ulimit -v`) JAX's runtime aborts with a C++ stack trace, and under a smaller open-files
limit (`ulimit -n`) a checkpoint save fails midway."""

from __future__ import annotations

import resource

# The least a small run needs, with a margin on the open files (docs/runs.md: measured).
MIN_ADDRESS_SPACE = 2 * 2**30
MIN_OPEN_FILES = 64
WANTED_OPEN_FILES = 4096  # the soft limit is raised to this, where the hard limit allows


def check() -> str | None:
  """Raise the soft open-files limit toward the hard one; a line naming the limit that is too
  low for a run, or None."""
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft != resource.RLIM_INFINITY and soft < WANTED_OPEN_FILES:
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_OPEN_FILES)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    soft = max(soft, wanted)
  if soft != resource.RLIM_INFINITY and soft < MIN_OPEN_FILES:
    return (f'the open-files limit (ulimit -n) is {soft}, and a run needs at least '
            f'{MIN_OPEN_FILES}: raise it (ulimit -n 1024) and run again')
  space = address_space()
  if space is not None and space < MIN_ADDRESS_SPACE:
    return (f'the address-space limit (ulimit -v) is {space // 2**20} MiB, and a run needs at '
            f'least {MIN_ADDRESS_SPACE // 2**20} MiB: raise it (ulimit -v unlimited) and run again')
  return None


def address_space() -> int | None:
  """The address-space limit in bytes (`ulimit -v`), None where there is none."""
  soft, _ = resource.getrlimit(resource.RLIMIT_AS)
  return None if soft == resource.RLIM_INFINITY else soft


def out_of_memory(error: MemoryError) -> str:
  """One line for a MemoryError, naming the limit where one is set."""
  space = address_space()
  limit = (f' within the address-space limit (ulimit -v) of {space // 2**20} MiB: raise it'
           if space is not None else ': fewer models (--num_seeds) or a smaller batch need less')
  return f'out of memory ({error or "MemoryError"}){limit}'
