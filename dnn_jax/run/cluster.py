"""The multi-controller runtime (`jax.distributed`): one process per host, each running the
same program over a global mesh of every process's devices. Joining the run, reading global
arrays on the host, deciding things together, and telling a lost process from other errors.
In a single process each function here is the plain local operation."""

from __future__ import annotations

import socket
import threading
from typing import Callable, Sequence, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from dnn_jax.errors import first_line
from dnn_jax.run.supervisor import process_label

# A process that has sent no heartbeat for this long is dead to the coordinator, which then
# stops the others: the bound on how long a run outlives one of its processes.
HEARTBEAT_TIMEOUT_S = 30
_MESSAGE_BYTES = 4096  # the longest error text that process 0 passes on to the others

T = TypeVar('T')


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, initialization_timeout: int = 300) -> None:
  """Join the run: by hand with all three arguments, or from the cluster's environment (Slurm,
  Open MPI, TPU) with none. Must come before any other JAX call."""
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             initialization_timeout=initialization_timeout,
                             heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)


def joined() -> str:
  """What this process brings to the run: '[process 1/4] joined on host-2: 8 of 32 gpu
  devices'."""
  return (f'{prefix()}joined on {socket.gethostname()}: {jax.local_device_count()} of '
          f'{jax.device_count()} {jax.default_backend()} devices')


def count() -> int:
  return jax.process_count()


def is_main() -> bool:
  """Whether this is process 0, the one that writes the run's files and prints its log."""
  return jax.process_index() == 0


def prefix() -> str:
  """'[process 1/4] ' before every line a process prints in a multi-process run, else ''."""
  return process_label(jax.process_index(), count()) if count() > 1 else ''


def host(tree: T) -> T:
  """`tree` with every array as numpy; an array spread over several processes is gathered
  from all of them (a collective: every process must call it at the same point)."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))
  return jax.tree.map(one, tree)


def gather(array: np.ndarray) -> np.ndarray:
  """Each process's `array` (32 bits or less), stacked by process index (a collective)."""
  if count() == 1:
    return array[None]
  return np.asarray(multihost_utils.process_allgather(array))


def gather_bytes(data: bytes, size: int) -> list[bytes]:
  """Each process's `data` (at most `size` bytes), by process index (a collective)."""
  row = np.zeros(size + 4, np.uint8)
  row[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
  row[4:4 + len(data)] = np.frombuffer(data, np.uint8)
  return [bytes(r[4:4 + int(np.frombuffer(r[:4].tobytes(), np.uint32)[0])]) for r in gather(row)]


def every_process(value: int) -> np.ndarray:
  """Each process's `value` (0 to 2**64 - 1), by process index (a collective; in one
  process, `[value]`). Sent as two 32-bit halves: JAX computes in 32 bits by default."""
  halves = gather(np.array([value >> 32, value & 0xFFFFFFFF], np.uint32)).astype(np.uint64)
  return (halves[:, 0] << np.uint64(32)) | halves[:, 1]


def on_main(fn: Callable[[], None], errors: Sequence[type[Exception]]) -> None:
  """Run `fn` on process 0 only (the workdir's checks and writes); if it raises one of
  `errors`, every process raises it, with process 0's message."""
  if count() == 1:
    fn()
    return
  failure = None
  if is_main():
    try:
      fn()
    except tuple(errors) as e:
      failure = e
  text = np.zeros(_MESSAGE_BYTES + 1, np.uint8)
  if failure is not None:
    encoded = str(failure).encode()[:_MESSAGE_BYTES]
    text[0] = 1 + [isinstance(failure, kind) for kind in errors].index(True)
    text[1:1 + len(encoded)] = np.frombuffer(encoded, np.uint8)
  text = np.asarray(multihost_utils.broadcast_one_to_all(text))
  if failure is not None:
    raise failure
  if text[0]:
    raise errors[text[0] - 1](bytes(text[1:]).rstrip(b'\0').decode(errors='replace'))


def sync(name: str) -> None:
  """Wait until every process gets here (after process 0 wrote what the others read)."""
  if count() > 1:
    multihost_utils.sync_global_devices(name)


def lost_process(error: BaseException) -> bool:
  """Whether `error` (or its cause) is a collective that failed because a process is gone."""
  while error is not None:
    text = str(error)
    if 'Gloo' in text or (isinstance(error, jax.errors.JaxRuntimeError) and any(
        sign in text for sign in ('Connection closed', 'UNAVAILABLE', 'Socket closed'))):
      return True
    error = error.__cause__ or error.__context__
  return False


def lost_process_line(error: BaseException) -> str:
  """One line on a run that lost a process: which ones, where the coordinator can still
  tell within its heartbeat timeout."""
  found: list[int] = []

  def ask():  # every surviving process asks together; the coordinator answers
    try:
      with multihost_utils.live_devices(jax.devices()) as live:
        alive = {d.process_index for d in live}
      found.extend(p for p in range(count()) if p not in alive)
    except Exception:  # pylint: disable=broad-except
      pass

  thread = threading.Thread(target=ask, daemon=True)
  thread.start()
  thread.join(HEARTBEAT_TIMEOUT_S + 5)
  who = (f'process {", ".join(map(str, found))} of the run stopped' if found else
         'another process of the run stopped')
  return f'{who} ({first_line(error, 160)}); every process stops'
