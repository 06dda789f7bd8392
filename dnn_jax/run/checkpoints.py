"""Orbax checkpoints of a variant's training, and what they hold (`Snapshot`): the models'
TrainState (params, optimizer state, step), their data keys, and the `History` so far, so
that a resumed run writes what an uninterrupted one would.

Orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save never shows up as a checkpoint. In a multi-process run every process
writes and reads its own devices' shards, and process 0 alone changes the folder otherwise.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from dnn_jax.core import training
from dnn_jax.errors import (CheckpointError, NothingToEvaluate, OtherPlacement, OtherRun,
                            WorkdirMoved, WriteError, first_line)
from dnn_jax.run import cluster
from dnn_jax.run.history import History
from dnn_jax.run.identity import LAYOUT
from dnn_jax.run.identity import differences as identity_differences

# What a refusal for want of an intact checkpoint offers.
RESTART_OR_OVERWRITE = ('--restart trains from step 0 (the damaged checkpoints stay where they '
                        'are), --overwrite starts afresh')

SHA256_ROWS = 'sha256_rows'  # the key of the arrays' checksum in a checkpoint's metadata
UNFINISHED = '.orbax-checkpoint-tmp'  # in the name of a save that did not complete
SET_ASIDE = '-unreadable'  # <directory>-unreadable/<step>: the damaged checkpoints


class Unverified(CheckpointError):
  """A checkpoint without the sha256 of its arrays: it cannot be told from a damaged one."""


class Checkpoints:
  """The checkpoints of one variant in `directory`, `keep` newest kept; each carries a sha256
  of its arrays, checked on restore, and `record` (the run's identity and the variant): a
  checkpoint of another run, or of another layout, is refused and left where it is. Opened
  for writing (only under the workdir's lock), it first removes the unfinished saves a killed
  run left, and before and after each save calls `guard` (on process 0; it raises to stop the
  run; after, it is given the step's folder); `read_only` changes nothing."""

  def __init__(self, directory: str | Path, keep: int, read_only: bool = False,
               record: dict[str, Any] | None = None,
               guard: Callable[[Path | None], None] | None = None):
    self.directory = Path(directory).absolute()
    self.record, self._guard = record, guard
    if read_only and not self.directory.is_dir():
      raise NothingToEvaluate(f'no checkpoint in {self.directory}')
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                           read_only=read_only, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=ocp.StandardCheckpointHandler())
    if not read_only and cluster.is_main():
      self._remove_unfinished()

  @property
  def aside(self) -> Path:
    return self.directory.with_name(self.directory.name + SET_ASIDE)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def lost(self) -> bool:
    """Whether every checkpoint this variant had was found damaged and set aside."""
    return not self.steps() and self.aside.is_dir() and any(self.aside.iterdir())

  def save(self, step: int, item: Any, numerics: Sequence[dict[str, Any]] = ()) -> None:
    """Save `item` at `step` with its sha256, the record and `numerics`; on failure (a full
    disk), remove what was half written and raise `WriteError`: the previous checkpoints stay
    as they were."""
    if self._guard:
      cluster.on_main(lambda: self._guard(None), (WorkdirMoved,))
    metadata = {SHA256_ROWS: digest(item), 'layout': LAYOUT, **(self.record or {}),
                'numerics': list(numerics)}
    try:
      self._manager.save(step, args=ocp.args.StandardSave(item), force=True,
                         custom_metadata=metadata)
    except Exception as e:  # orbax/tensorstore raise many types for a failed write
      if cluster.lost_process(e):
        raise
      if cluster.is_main():
        self._remove_unfinished()
      raise WriteError(f'cannot save the checkpoint at step {step} in {self.directory} '
                       f'({_os_error(e) or first_line(e)})') from None
    if self._guard:  # moved while this one was saved?
      cluster.on_main(lambda: self._guard(self.directory / str(step)), (WorkdirMoved,))

  def restore(self, abstract_item: Any, step: int | None, log: Callable[[str], None],
              set_aside: bool = True) -> tuple[Any, list[dict[str, Any]]] | None:
    """(the item, the numerics it was trained with) saved at `step`, or at the newest intact
    checkpoint when `step` is None.

    An unreadable checkpoint (damaged files, arrays that fail their sha256, or no sha256) is
    reported and the next older one tried; with `set_aside` it is first moved to
    `<directory>-unreadable/`. One of another run or layout stops the restore, moving nothing.
    None only when there are no checkpoints at all.
    """
    steps = self.steps()
    if step is not None and step not in steps:
      raise CheckpointError(f'no checkpoint at step {step} in {self.directory}; '
                            f'saved steps: {steps or "none"}')
    candidates = [step] if step is not None else steps[::-1]
    for candidate in candidates:
      try:
        return self._restore_verified(candidate, abstract_item)
      except (OtherPlacement, OtherRun):
        raise
      except Exception as e:  # orbax/tensorstore raise many types for damaged files
        if cluster.lost_process(e):
          raise
        what = 'unverified' if isinstance(e, Unverified) else 'unreadable'
        log(f'WARNING: the checkpoint at step {candidate} in {self.directory} is {what} '
            f'({first_line(e)}); ' + ('moving it aside and trying the previous one'
                                       if set_aside else 'trying the previous one'))
        if set_aside:
          self._set_aside(candidate)
    if candidates:
      raise CheckpointError(f'no intact checkpoint in {self.directory}; {RESTART_OR_OVERWRITE}')
    return None

  def _check_record(self, step: int) -> dict[str, Any]:
    """The checkpoint's metadata, once it is known to be of this run and this layout."""
    saved = self._manager.metadata(step).custom_metadata or {}
    if SHA256_ROWS not in saved:
      raise Unverified('no sha256 of its arrays was saved with it')
    layout = saved.get('layout', 1)
    where = f'the checkpoint at step {step} in {self.directory}'
    if layout != LAYOUT:
      raise OtherRun(f'{where} was written by dnn_jax {saved.get("dnn_jax", "before 0.1.0")} '
                     f'in checkpoint layout {layout}, and this version reads layout {LAYOUT}: '
                     'resume it with the version that wrote it, or pass --overwrite to start '
                     'afresh (it is left where it is)')
    if self.record and (saved.get('identity'), saved.get('variant')) != (
        self.record['identity'], self.record['variant']):
      differing = identity_differences(saved.get('settings', {}), self.record['settings'],
                                       'checkpoint', 'this run')
      if saved.get('variant') != self.record['variant']:
        differing.insert(0, f'variant (checkpoint {saved.get("variant")!r}, this run '
                            f'{self.record["variant"]!r})')
      raise OtherRun(f'{where} is of another run: {"; ".join(differing) or "another identity"}; '
                     'it is left where it is: use the workdir it came from, or --overwrite to '
                     'start afresh here')
    return saved

  def _restore_verified(self, step: int, abstract_item: dict[str, Any]
                        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The checkpoint at `step`, restored into `abstract_item` and checked against its
    record and sha256; and its numerics."""
    saved_record = self._check_record(step)
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
    if saved_record[SHA256_ROWS] != digest(item):
      raise CheckpointError('its arrays do not match the sha256 saved with them')
    return item, list(saved_record.get('numerics', []))

  def _set_aside(self, step: int) -> None:
    if cluster.is_main():
      self.aside.mkdir(parents=True, exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(self.aside / str(step)))
    cluster.sync(f'set aside {self.directory} {step}')
    self._manager.reload()  # forget the step that was moved away

  def _remove_unfinished(self) -> None:
    """Remove the unfinished saves, again while one is still there: after a failed save,
    orbax's metadata thread can write a file into the folder as it is removed."""
    for pause in (0, 0.05, 0.2, 0.5, 1):
      time.sleep(pause)
      unfinished = list(self.directory.glob(f'*{UNFINISHED}*'))
      if not unfinished:
        return
      for folder in unfinished:
        shutil.rmtree(folder, ignore_errors=True)

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
  """The operating system's reason within `error` (tensorstore writes its code in the text),
  with the limit where it is the open-files one."""
  while error is not None:
    code = error.errno if isinstance(error, OSError) and error.strerror else None
    found = re.search(r"os_error_code='(\d+)'", str(error))
    code = code or (int(found.group(1)) if found else None)
    if code == errno.EMFILE:
      limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
      return f'{os.strerror(code)}: the open-files limit, ulimit -n, is {limit}'
    if code:
      return os.strerror(code)
    error = error.__cause__ or error.__context__
  return None


def abstract(item: Any) -> Any:
  """Shapes, dtypes and shardings of `item`: the target that orbax restores into."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
      item)


class Snapshot(NamedTuple):
  """A variant's training at one step: everything a checkpoint of it holds. `numerics`: how
  the steps so far were computed, a record per stretch of them (`loop.numerics`)."""
  state: training.TrainState
  data_keys: jax.Array
  history: History
  numerics: tuple[dict[str, Any], ...] = ()


def save_snapshot(ckpts: Checkpoints, step: int, snapshot: Snapshot) -> None:
  ckpts.save(step, _item(snapshot), snapshot.numerics)


def restore_snapshot(ckpts: Checkpoints, like: Snapshot, step: int | None,
                     log: Callable[[str], None], set_aside: bool = True) -> Snapshot | None:
  """The snapshot saved at `step` (None: the newest intact), shaped `like` (abstract values
  will do); None if nothing is saved. See `Checkpoints.restore` for `set_aside`."""
  restored = ckpts.restore(abstract(_item(like)), step, log, set_aside)
  if restored is None:
    return None
  item, numerics = restored
  history = History(**{name: np.asarray(item[name]) for name in History._fields})
  return Snapshot(item['state'], jax.random.wrap_key_data(item['data_keys']), history,
                  tuple(numerics))


def size_bytes(snapshot: Snapshot) -> int:
  """Bytes of the arrays a checkpoint of `snapshot` holds (abstract values will do)."""
  return sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
             for x in jax.tree.leaves(abstract(_item(snapshot))))


def _item(snapshot: Snapshot) -> dict[str, Any]:
  return dict(state=snapshot.state, data_keys=jax.random.key_data(snapshot.data_keys),
              **snapshot.history._asdict())
