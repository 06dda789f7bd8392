"""`train_and_evaluate(config, workdir)` and `evaluate(config, workdir)`: a whole run, every
variant of the config in turn, over the modules that each do one part."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from dnn_jax import checkpoints, cluster, evaluation, interrupts, loop, metrics, outputs
from dnn_jax import programs, report
from dnn_jax import workdir as workdirs
from dnn_jax.config import Config, ConfigError
from dnn_jax.experiments import EXPERIMENTS


def _start(config: Config, mode: str, log: Callable[[str], None]):
  """Print the configuration, load the data and check the config against it: (experiment
  module, train split, test split)."""
  log(f'experiment: {config.experiment} ({mode})')
  for key, value in config.to_json().items():
    log(f'  {key} = {value}')
  experiment = EXPERIMENTS[config.experiment]
  train_split, test_split = experiment.load_data(config)
  config.steps_per_epoch(len(train_split.labels))  # a batch larger than the training set fails
  log(f'data: {len(train_split.labels)} training, {len(test_split.labels)} test examples; '
      f'device: {report.device_description()}')
  return experiment, train_split, test_split


def _checkpoints(workdir: Path, config: Config, variant: str,
                 read_only: bool = False) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir / workdirs.CHECKPOINTS / variant,
                                 config.keep_checkpoints, read_only)


def _checkpoint_bytes(config: Config, experiment: ModuleType, num_train: int) -> list[int]:
  """The size of one checkpoint of each variant, from shapes alone (nothing is computed)."""
  sizes = []
  for variant in config.variants:
    ready = programs.setup(config, experiment, variant, num_train)
    sizes.append(checkpoints.size_bytes(ready.untrained()))
  return sizes


def train_and_evaluate(config: Config, workdir: str | Path, log: Callable[[str], None] = print,
                       overwrite: bool = False, resume_command: str = '',
                       command: str = '') -> dict[str, Any]:
  """Train every variant (resuming from `workdir`'s checkpoints), test it, and write the
  outputs to `workdir` (metrics.jsonl as it goes; report.md gives `command`, the one that
  reproduces the run); returns what results.json holds.

  Everything is checked (settings, data, the workdir and its free space) before anything is
  written; the workdir is locked for the run, and then `resume_command` printed. A first
  Ctrl-C or SIGTERM stops at the next safe point with `interrupts.Interrupted`, a second one
  at once. In a multi-process run every process loads the data and trains its share of the
  models; process 0 alone checks, locks and writes the workdir (but for the checkpoints).
  """
  workdir = Path(workdir)
  with interrupts.stop_requests(log) as stops, contextlib.ExitStack() as claimed:
    experiment, train_split, test_split = _start(config, 'train', log)
    num_train = len(train_split.labels)
    sizes = _checkpoint_bytes(config, experiment, num_train)

    def claim():
      workdirs.prepare(workdir, config.variants, sizes, config.keep_checkpoints)
      claimed.enter_context(workdirs.lock(workdir))
      workdirs.check_config(workdir, config, overwrite)

    cluster.on_main(claim, (ConfigError, report.WriteError))
    log(f'workdir: {workdir}' + (f'; to resume after an interruption: {resume_command}'
                                 if resume_command else ''))
    trained = {}
    metrics_log = metrics.MetricsLog(workdir, config) if cluster.is_main() else None
    try:
      for variant in config.variants:
        ckpts = _checkpoints(workdir, config, variant)
        try:
          trained[variant] = loop.train_variant(config, experiment, variant, train_split,
                                                test_split, log, ckpts, stops, metrics_log)
        finally:
          ckpts.close()
    finally:
      if metrics_log:
        metrics_log.close()
    return outputs.write(config, experiment, trained, train_split, test_split, workdir, log,
                         command, files=cluster.is_main())


def evaluate(config: Config, workdir: str | Path, step: int | None = None,
             log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
  """Restore each variant's latest (or `step`'s) checkpoint in `workdir` and print its test
  results; returns them per variant. Changes nothing in `workdir`."""
  workdir = Path(workdir)
  with workdirs.lock(workdir, shared=True):
    workdirs.check_config(workdir, config, create=False)
    experiment, train_split, test_split = _start(config, 'eval', log)
    results = {}
    for variant in config.variants:
      ckpts = _checkpoints(workdir, config, variant, read_only=True)
      try:
        results[variant] = evaluation.evaluate_checkpoint(
            config, experiment, variant, len(train_split.labels), test_split, ckpts, step, log)
      finally:
        ckpts.close()
    return results
