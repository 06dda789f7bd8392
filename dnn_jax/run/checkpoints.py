"""Orbax checkpoints of a variant's training, and what they hold (`Snapshot`): the models'
TrainState (params, optimizer state, step), their data keys, and the `History` so far, so
that a resumed run writes what an uninterrupted one would.

Orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save never shows up as a checkpoint. In a multi-process run every process
writes and reads its own devices' shards, and process 0 alone changes the folder otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from dnn_jax.core import training
from dnn_jax.errors import (CheckpointError, NothingToEvaluate, OtherPlacement, WriteError,
                            first_line)
from dnn_jax.run import cluster
from dnn_jax.run.history import History

SHA256_ROWS = 'sha256_rows'  # the key of the arrays' checksum in a checkpoint's metadata
UNFINISHED = '.orbax-checkpoint-tmp'  # in the name of a save that did not complete


class Checkpoints:
  """The checkpoints of one variant in `directory`, `keep` newest kept; each carries a sha256
  of its arrays, checked on restore. Opened for writing (only under the workdir's lock), it
  first removes the unfinished saves a killed run left; `read_only` changes nothing."""

  def __init__(self, directory: str | Path, keep: int, read_only: bool = False):
    self.directory = Path(directory).absolute()
    if read_only and not self.directory.is_dir():
      raise NothingToEvaluate(f'no checkpoint in {self.directory}')
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                           read_only=read_only, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=ocp.StandardCheckpointHandler())
    if not read_only and cluster.is_main():
      self._remove_unfinished()

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, item: Any) -> None:
    """Save `item` at `step`; on failure (a full disk), remove what was half written and raise
    `WriteError`: the previous checkpoints stay as they were."""
    try:
      self._manager.save(step, args=ocp.args.StandardSave(item), force=True,
                         custom_metadata={SHA256_ROWS: digest(item)})
    except Exception as e:  # orbax/tensorstore raise many types for a failed write
      if cluster.lost_process(e):
        raise
      if cluster.is_main():
        self._remove_unfinished()
      raise WriteError(f'cannot save the checkpoint at step {step} in {self.directory} '
                       f'({_os_error(e) or first_line(e)})') from None

  def restore(self, abstract_item: Any, step: int | None, log: Callable[[str], None],
              set_aside: bool = True) -> Any:
    """The item saved at `step`, or at the newest intact checkpoint when `step` is None.

    An unreadable checkpoint (damaged files, or arrays that fail their sha256) is reported
    and the next older one tried; with `set_aside` it is first moved to
    `<directory>-unreadable/`. None only when there are no checkpoints at all.
    """
    steps = self.steps()
    if step is not None and step not in steps:
      raise CheckpointError(f'no checkpoint at step {step} in {self.directory}; '
                            f'saved steps: {steps or "none"}')
    candidates = [step] if step is not None else steps[::-1]
    for candidate in candidates:
      try:
        return self._restore_verified(candidate, abstract_item)
      except OtherPlacement:
        raise
      except Exception as e:  # orbax/tensorstore raise many types for damaged files
        if cluster.lost_process(e):
          raise
        log(f'WARNING: the checkpoint at step {candidate} in {self.directory} is unreadable '
            f'({first_line(e)}); ' + ('moving it aside and trying the previous one'
                                       if set_aside else 'trying the previous one'))
        if set_aside:
          self._set_aside(candidate)
    if candidates:
      raise CheckpointError(f'no intact checkpoint in {self.directory}; pass --overwrite to '
                            'start afresh')
    return None

  def _restore_verified(self, step: int, abstract_item: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at `step`, restored into `abstract_item` and checked against its
    sha256."""
    saved = self._manager.item_metadata(step)
    saved_models, models = (item['data_keys'].shape[0] if 'data_keys' in item.keys() else None
                            for item in (saved, abstract_item))
    if saved_models != models:
      raise OtherPlacement(
          f'the checkpoints in {self.directory} hold {saved_models} models (the run\'s models '
          f'padded to a multiple of the device count then), where {jax.device_count()} devices '
          f'pad them to {models}: resume on a number of devices that pads them to '
          f'{saved_models}, or pass --overwrite to start afresh')
    try:
      item, error = self._manager.restore(step, args=ocp.args.StandardRestore(abstract_item)), None
    except Exception as e:  # pylint: disable=broad-except
      if cluster.lost_process(e):
        raise
      item, error = None, e
    failed = np.flatnonzero(cluster.every_process(int(error is not None)))  # every process decides
    if failed.size:
      raise error or CheckpointError(f'process {failed[0]} cannot read its part')
    saved_sums = self._manager.metadata(step).custom_metadata or {}
    if SHA256_ROWS in saved_sums and saved_sums[SHA256_ROWS] != digest(item):
      raise CheckpointError('its arrays do not match the sha256 saved with them')
    return item

  def _set_aside(self, step: int) -> None:
    if cluster.is_main():
      aside = self.directory.with_name(self.directory.name + '-unreadable')
      aside.mkdir(parents=True, exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(aside / str(step)))
    cluster.sync(f'set aside {self.directory} {step}')
    self._manager.reload()  # forget the step that was moved away

  def _remove_unfinished(self) -> None:
    for unfinished in self.directory.glob(f'*{UNFINISHED}*'):
      shutil.rmtree(unfinished, ignore_errors=True)

  def close(self) -> None:
    self._manager.close()


def digest(item: Any) -> str:
  """sha256 of every array of `item`, in tree order: of its dtype, shape, and the sha256 of
  each row along its first axis (each model's). Each process hashes the rows on its own
  devices and the processes exchange only those 32 bytes per row (a collective), so the
  digest is the same on any number of processes, and no state crosses the network."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(item):
    h.update(f'{np.dtype(leaf.dtype)}{tuple(leaf.shape)}'.encode())
    h.update(_row_digests(leaf).tobytes())
  return h.hexdigest()


def _row_digests(leaf: Any) -> np.ndarray:
  """(rows, 32) uint8: the sha256 of each row of `leaf` (a scalar is one row)."""
  if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
    return _hash_rows(np.asarray(jax.device_get(leaf)))
  rows = np.zeros((leaf.shape[0], 32), np.uint8)  # zero where another process holds the row
  for shard in leaf.addressable_shards:
    if shard.replica_id == 0:
      rows[shard.index[0]] = _hash_rows(np.asarray(shard.data))
  return cluster.gather(rows).max(axis=0)  # each row's one owner's


def _hash_rows(array: np.ndarray) -> np.ndarray:
  rows = np.ascontiguousarray(array).reshape(max(array.shape[:1], default=1), -1)
  return np.array([np.frombuffer(hashlib.sha256(row.tobytes()).digest(), np.uint8)
                   for row in rows], np.uint8).reshape(len(rows), 32)


def _os_error(error: BaseException) -> str | None:
  """The operating system's reason within `error` (tensorstore writes its code in the text)."""
  while error is not None:
    if isinstance(error, OSError) and error.strerror:
      return error.strerror
    code = re.search(r"os_error_code='(\d+)'", str(error))
    if code:
      return os.strerror(int(code.group(1)))
    error = error.__cause__ or error.__context__
  return None


def abstract(item: Any) -> Any:
  """Shapes, dtypes and shardings of `item`: the target that orbax restores into."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
      item)


class Snapshot(NamedTuple):
  """A variant's training at one step: everything a checkpoint of it holds."""
  state: training.TrainState
  data_keys: jax.Array
  history: History


def save_snapshot(ckpts: Checkpoints, step: int, snapshot: Snapshot) -> None:
  ckpts.save(step, _item(snapshot))


def restore_snapshot(ckpts: Checkpoints, like: Snapshot, step: int | None,
                     log: Callable[[str], None], set_aside: bool = True) -> Snapshot | None:
  """The snapshot saved at `step` (None: the newest intact), shaped `like` (abstract values
  will do); None if nothing is saved. See `Checkpoints.restore` for `set_aside`."""
  item = ckpts.restore(abstract(_item(like)), step, log, set_aside)
  if item is None:
    return None
  history = History(**{name: np.asarray(item[name]) for name in History._fields})
  return Snapshot(item['state'], jax.random.wrap_key_data(item['data_keys']), history)


def size_bytes(snapshot: Snapshot) -> int:
  """Bytes of the arrays a checkpoint of `snapshot` holds (abstract values will do)."""
  return sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
             for x in jax.tree.leaves(abstract(_item(snapshot))))


def _item(snapshot: Snapshot) -> dict[str, Any]:
  return dict(state=snapshot.state, data_keys=jax.random.key_data(snapshot.data_keys),
              **snapshot.history._asdict())
