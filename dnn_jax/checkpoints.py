"""Orbax checkpoints of a variant's training: save each chunk, restore the newest intact one.

A checkpoint holds everything the rest of the run depends on: the seeds' TrainState
(params, optimizer state, step), their data keys, and the history so far (per-step losses,
per-epoch times). Orbax writes each step to a temporary folder and renames it when
complete, so an interrupted save never shows up as a checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import orbax.checkpoint as ocp

from dnn_jax import report
from dnn_jax.config import Config, ConfigError

CONFIG_FILE = 'config.json'
# Fields that may differ between the run that saved and the one that restores: where the data
# is, and what changes speed but not the numbers (so a run moves between platforms).
RELOCATABLE_FIELDS = ('mnist_dir', 'tfds_data_dir', 'eval_batch_size', 'checkpoint_every_steps',
                      'keep_checkpoints', 'conv_impl', 'batch_parts')


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

  def restore(self, abstract_item: Any, step: int | None, log: Callable[[str], None]
              ) -> tuple[int, Any] | None:
    """(step, item) of `step`, or of the newest intact checkpoint when `step` is None.

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
        return candidate, self._manager.restore(candidate, args=ocp.args.StandardRestore(abstract_item))
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


def saved_config(workdir: Path) -> dict[str, Any]:
  """The configuration saved in `workdir` by the run that trained there."""
  path = workdir / CONFIG_FILE
  if not path.exists():
    raise NothingToEvaluate(f'{workdir} holds no run ({CONFIG_FILE} not found)')
  return json.loads(path.read_text())


def check_config(workdir: Path, config: Config, overwrite: bool = False,
                 create: bool = True) -> None:
  """Save the run's config in `workdir` (if `create`), or check that it matches the saved one.

  A mismatch fails naming the differing fields, unless `overwrite`, which deletes the
  workdir's checkpoints and starts afresh.
  """
  path = workdir / CONFIG_FILE
  current = config.to_json()
  if path.exists() and overwrite:
    shutil.rmtree(workdir / 'checkpoints', ignore_errors=True)
  elif path.exists() or not create:
    saved = saved_config(workdir)
    differing = [f'{k} (saved {saved.get(k)!r}, now {_as_json(v)!r})' for k, v in current.items()
                 if k not in RELOCATABLE_FIELDS and _as_json(v) != saved.get(k)]
    if differing:
      raise ConfigError(f'{workdir} holds a run with another configuration: '
                        f'{"; ".join(differing)}. Use another --workdir, or --overwrite to '
                        'start afresh there')
    return
  report.write_json(path, current)


def _as_json(value: Any) -> Any:
  return json.loads(json.dumps(value))
