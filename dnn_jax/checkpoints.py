"""Orbax checkpoints of a variant's training, and what they hold: the seeds' TrainState
(params, optimizer state, step), their data keys, and the `History` so far (per-step losses,
per-epoch times), so that a resumed run writes what an uninterrupted one would.

Orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save never shows up as a checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from dnn_jax import train


class CheckpointError(Exception):
  """No usable checkpoint where one was required."""


class NothingToEvaluate(CheckpointError):
  """Evaluation asked of a workdir that holds no run, or no checkpoint yet."""


class Checkpoints:
  """The checkpoints of one variant in `directory`, `keep` newest kept."""

  def __init__(self, directory: str | Path, keep: int):
    self.directory = Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, item: Any) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(item), force=True)

  def restore(self, abstract_item: Any, step: int | None, log: Callable[[str], None]) -> Any:
    """The item saved at `step`, or at the newest intact checkpoint when `step` is None.

    An unreadable checkpoint is reported and moved aside (to `<directory>-unreadable/`),
    and the next older one is tried; None only when there are no checkpoints at all.
    """
    steps = self.steps()
    if step is not None and step not in steps:
      raise CheckpointError(f'no checkpoint at step {step} in {self.directory}; '
                            f'saved steps: {steps or "none"}')
    candidates = [step] if step is not None else steps[::-1]
    for candidate in candidates:
      try:
        return self._manager.restore(candidate, args=ocp.args.StandardRestore(abstract_item))
      except Exception as e:  # orbax/tensorstore raise many types for damaged files
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        log(f'checkpoint at step {candidate} in {self.directory} is unreadable ({reason}); '
            'moving it aside and trying the previous one')
        self._set_aside(candidate)
    if candidates:
      raise CheckpointError(f'no intact checkpoint in {self.directory}; pass --overwrite to '
                            'start afresh')
    return None

  def _set_aside(self, step: int) -> None:
    aside = self.directory.with_name(self.directory.name + '-unreadable')
    aside.mkdir(parents=True, exist_ok=True)
    shutil.move(str(self.directory / str(step)), str(aside / str(step)))
    self._manager.reload()  # forget the step that was moved away

  def close(self) -> None:
    self._manager.close()


def abstract(item: Any) -> Any:
  """Shapes, dtypes and shardings of `item`: the target that orbax restores into."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
      item)


class History(NamedTuple):
  """What a checkpoint keeps besides the state: per-step losses and per-epoch times."""
  step_losses: np.ndarray  # float32 (padded seeds, total steps), filled up to the step
  epoch_times: np.ndarray  # float64 (epochs,)

  @classmethod
  def empty(cls, num_seeds: int, total_steps: int, num_epochs: int) -> History:
    return cls(np.zeros((num_seeds, total_steps), np.float32), np.zeros(num_epochs, np.float64))

  def epoch_losses(self, num_seeds: int, steps_per_epoch: int) -> np.ndarray:
    """(seeds, epochs) mean training loss of each epoch (the last one maybe partial)."""
    losses = self.step_losses[:num_seeds]
    return np.stack([losses[:, start:start + steps_per_epoch].mean(axis=1)
                     for start in range(0, losses.shape[1], steps_per_epoch)], axis=1)


class Training(NamedTuple):
  """Everything a checkpoint of a variant's training holds."""
  state: train.TrainState
  data_keys: jax.Array
  history: History


def save_training(ckpts: Checkpoints, step: int, training: Training) -> None:
  ckpts.save(step, _item(training))


def restore_training(ckpts: Checkpoints, like: Training, step: int | None,
                     log: Callable[[str], None]) -> Training | None:
  """The training saved at `step` (None: the newest intact), shaped `like` (abstract values
  will do); None if nothing is saved."""
  item = ckpts.restore(abstract(_item(like)), step, log)
  if item is None:
    return None
  return Training(item['state'], jax.random.wrap_key_data(item['data_keys']),
                  History(np.asarray(item['step_losses']), np.asarray(item['epoch_times'])))


def _item(training: Training) -> dict[str, Any]:
  return dict(state=training.state, data_keys=jax.random.key_data(training.data_keys),
              step_losses=training.history.step_losses, epoch_times=training.history.epoch_times)
