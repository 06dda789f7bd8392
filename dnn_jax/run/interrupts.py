"""Ctrl-C and SIGTERM during a run: a first signal asks for a stop at the next safe point (after
the current chunk, with a checkpoint, or before training starts), a second aborts at once."""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Callable

import jax


class Aborted(KeyboardInterrupt):
  """Ctrl-C or SIGTERM where no stop at a safe point is offered: the run ends at once."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum


def abort_on_signals() -> None:
  """From here on (outside `stop_requests`), SIGINT and SIGTERM raise `Aborted`."""
  def handle(signum, frame):
    del frame
    raise Aborted(signum)
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, handle)


@contextlib.contextmanager
def stop_requests(log: Callable[[str], None]):
  """Within the block, a first SIGINT or SIGTERM is recorded in the yielded list, for the
  training loop to honour at its next safe point; a second one raises `Aborted` (and is
  recorded too: where it lands in code that swallows exceptions, `abort_if_asked` raises it
  again at the next safe point)."""
  requests: list[int] = []

  def handle(signum, frame):
    del frame
    requests.append(signum)
    if len(requests) > 1:
      raise Aborted(signum)
    log(f'signal {signum}: stopping after the current chunk with a checkpoint (or before '
        'training starts); send it again to abort at once')

  signals = (signal.SIGINT, signal.SIGTERM)
  previous = {s: signal.signal(s, handle) for s in signals}
  try:
    yield requests
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def abort_if_asked(requests: list[int]) -> None:
  """Raise `Aborted` if a second signal came (and was swallowed where it landed)."""
  if len(requests) > 1:
    raise Aborted(requests[1])


def wait_until_ready(array: jax.Array) -> None:
  """Block until `array` is computed, in Python, so that signal handlers run meanwhile."""
  while not array.is_ready():
    time.sleep(0.002)
