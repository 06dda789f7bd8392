"""A run's metrics as it goes: `metrics.jsonl` in the workdir, one line per call of the epoch
function (an epoch, or a checkpoint's share of it) with every model's training loss so far in
the epoch and, at an evaluated epoch's end, its test accuracy and loss; and the same as
TensorBoard scalars (tensorboardX), one TensorBoard run per variant under `tensorboard/`.

Every line is a function of the checkpointed `History`, so a resumed run rewrites the lines
its checkpoint holds and appends from there: no epoch is missing or written twice, whenever
the run was killed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dnn_jax.config import Config
from dnn_jax.core import training
from dnn_jax.errors import WriteError
from dnn_jax.results import files
from dnn_jax.run.history import History

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'  # <workdir>/tensorboard/<variant>/: TensorBoard's runs
SCALARS = ('train_loss', 'test_accuracy', 'test_loss', 'train_accuracy')


def call_ends(spec: training.TrainSpec) -> list[int]:
  """The steps at which a call of the epoch function ends: each `steps_per_call` into an
  epoch, and each epoch's end."""
  ends = set()
  for start in range(0, spec.total_steps, spec.steps_per_epoch):
    end = min(start + spec.steps_per_epoch, spec.total_steps)
    ends.update(range(start + spec.steps_per_call, end, spec.steps_per_call), [end])
  return sorted(ends)


def bytes_estimate(spec: training.TrainSpec, num_models: int) -> int:
  """A generous bound on the bytes of metrics.jsonl and TensorBoard events of a variant (a
  line and its events per call: about 0.6 kB and 0.1 kB per model measured, doubled)."""
  return len(call_ends(spec)) * (1600 + 320 * num_models)


def record(variant: str, spec: training.TrainSpec, history: History, step: int,
           num_models: int) -> dict[str, Any]:
  """The line of `variant` at `step` (a call's end): the epoch so far, from `history`."""
  epoch = -(-step // spec.steps_per_epoch)  # 1-based: the epoch `step` ends or lies in
  start = (epoch - 1) * spec.steps_per_epoch
  line = dict(variant=variant, step=step, epoch=epoch,
              epoch_end=step == min(epoch * spec.steps_per_epoch, spec.total_steps),
              train_time_s=round(float(history.epoch_times[:epoch].sum()), 4),
              train_loss=history.step_losses[:num_models, start:step].mean(axis=1))
  tested = history.test_accuracy[:num_models, epoch - 1]
  if line['epoch_end'] and not np.isnan(tested).all():
    line.update(test_accuracy=tested, test_loss=history.test_loss[:num_models, epoch - 1],
                eval_time_s=round(float(history.eval_times[:epoch].sum()), 4))
    trained = history.train_accuracy[:num_models, epoch - 1]  # where the task evaluates it
    if not np.isnan(trained).all():
      line.update(train_accuracy=trained)
  for name in SCALARS:
    if name in line:
      values = np.asarray(line[name], np.float64)
      finite = values[np.isfinite(values)]
      line[name] = [float(v) if np.isfinite(v) else None for v in values]
      line[f'{name}_mean'] = float(finite.mean()) if finite.size else None
  return line


class MetricsLog:
  """metrics.jsonl and the TensorBoard runs of the workdir of `config`'s run."""

  def __init__(self, workdir: str | os.PathLike, config: Config):
    self.path = Path(workdir) / METRICS_FILE
    self.tensorboard = Path(workdir) / TENSORBOARD_DIR
    self.config = config
    self._writer = None
    self._labels: list[str] = []

  def start(self, variant: str, spec: training.TrainSpec, history: History,
            step: int, num_models: int) -> None:
    """Begin (or resume at `step`) `variant`: metrics.jsonl keeps the lines of the variants
    before it, and gets this one's lines up to `step` from `history` (keeping the times of
    those already there); TensorBoard forgets this variant's events from `step` on."""
    earlier = self.config.variants[:self.config.variants.index(variant)]
    lines = _read_lines(self.path)
    written_at = {(l['variant'], l['step']): l.get('time') for l in lines}
    kept = [l for l in lines if l['variant'] in earlier]
    redone = [dict(record(variant, spec, history, end, num_models),
                   time=written_at.get((variant, end))) for end in call_ends(spec) if end <= step]
    files.write_text(self.path, ''.join(json.dumps(l) + '\n' for l in kept + redone))
    self._open_tensorboard(variant, step, num_models)
    if redone and redone[-1]['step'] == step:
      self._scalars(redone[-1])  # the events at `step` itself were purged

  def append(self, line: dict[str, Any]) -> None:
    """Append a `record` line, flushed to the disk, and its scalars."""
    line = dict(line, time=round(time.time(), 3))
    try:
      with open(self.path, 'a') as f:
        f.write(json.dumps(line) + '\n')
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      raise WriteError(f'cannot write {self.path}: {e.strerror or e}') from None
    self._scalars(line)

  def close(self) -> None:
    if self._writer:
      self._writer.close()
      self._writer = None

  def _open_tensorboard(self, variant: str, step: int, num_models: int) -> None:
    from tensorboardX import SummaryWriter  # imported when a run trains: starts stay quick
    from tensorboardX.summary import hparams
    self.close()
    self._writer = SummaryWriter(str(self.tensorboard / variant), purge_step=step or None,
                                 flush_secs=10)
    self._labels = [self.config.describe_model(m).replace(', ', '/').replace(' ', '_')
                    for m in range(num_models)]
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
              for k, v in self.config.to_json().items()}
    values['variant'] = variant
    for summary in hparams(values, {f'{name}/mean': 0.0 for name in SCALARS}):
      self._writer.file_writer.add_summary(summary)

  def _scalars(self, line: dict[str, Any]) -> None:
    for name in SCALARS:
      if line.get(f'{name}_mean') is None:
        continue
      self._writer.add_scalar(f'{name}/mean', line[f'{name}_mean'], line['step'])
      for label, value in zip(self._labels, line[name]):
        if value is not None:
          self._writer.add_scalar(f'{name}/{label}', value, line['step'])
    self._writer.flush()


def _read_lines(path: Path) -> Sequence[dict[str, Any]]:
  """The complete lines of a metrics.jsonl (a line cut short by a kill is dropped)."""
  if not path.exists():
    return []
  lines = []
  for text in path.read_text().splitlines():
    try:
      lines.append(json.loads(text))
    except json.JSONDecodeError:
      continue
  return lines
