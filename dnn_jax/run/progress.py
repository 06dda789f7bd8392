"""Progress within a long call of the compiled epoch: where models train in chunks one after
another (many models on one CPU), each model that finishes its share of the call tells the
host (`jax.debug.callback`), and the `Progress` being watched prints a line at most every
`EVERY_S` seconds: models done, images per second, and the time left."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

EVERY_S = 5.0
_watched: list[Progress] = []


class Progress:
  """Counts the models done in one call of `num_models` models x `images_per_model` images."""

  def __init__(self, label: str, num_models: int, images_per_model: int,
               log: Callable[[str], None], every_s: float = EVERY_S):
    self.label, self.num_models, self.images_per_model = label, num_models, images_per_model
    self.log, self.every_s = log, every_s
    self.done = 0
    self.start = self.last = time.perf_counter()

  def advance(self) -> None:
    self.done += 1
    now = time.perf_counter()
    if now - self.last < self.every_s or self.done >= self.num_models:
      return
    self.last, elapsed = now, now - self.start
    left = elapsed * (self.num_models - self.done) / self.done
    self.log(f'{self.label}: {self.done}/{self.num_models} models, '
             f'{self.done * self.images_per_model / elapsed:,.0f} images/s, '
             f'about {_duration(left)} left')


def model_finished(*_) -> None:
  """The host side of the callback in the compiled epoch."""
  if _watched:
    _watched[-1].advance()


@contextlib.contextmanager
def watching(progress: Progress) -> Iterator[Progress]:
  """Report to `progress` the models finished while in the block."""
  _watched.append(progress)
  try:
    yield progress
  finally:
    _watched.remove(progress)


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(round(seconds), 60)
  return f'{minutes}m{seconds:02d}s' if minutes else f'{seconds}s'
