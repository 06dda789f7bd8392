"""`train_and_evaluate(config, workdir)` and `evaluate_checkpoints(config, workdir)`: a whole
run, every variant of the config in turn, over the modules that each do one part."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

from dnn_jax import tasks
from dnn_jax.config import Config
from dnn_jax.core import data
from dnn_jax.errors import ConfigError, NothingToEvaluate, WriteError
from dnn_jax.results import environment, scores, write
from dnn_jax.run import checkpoints, cluster, interrupts, loop, metrics, program, workdirs


def _start(config: Config, mode: str, log: Callable[[str], None]):
  """Print the configuration, load the data and check the config against it: (the task,
  train split, test split, each variant's `program.Setup`)."""
  log(f'experiment: {config.experiment} ({mode})')
  for key, value in config.to_json().items():
    log(f'  {key} = {value}')
  task = tasks.TRAINING[config.task]
  train_split, test_split = task.load_data(config)
  num_train = len(train_split.labels)
  config.steps_per_epoch(num_train)  # a batch larger than the training set fails here
  log(f'data: {num_train} training, {len(test_split.labels)} test examples; '
      f'device: {environment.device_description()}')
  setups = {v: program.setup(config, task, v, num_train) for v in config.variants}
  return task, train_split, test_split, setups


def _checkpoints(workdir: Path, config: Config, variant: str,
                 read_only: bool = False) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir / workdirs.CHECKPOINTS / variant,
                                 config.keep_checkpoints, read_only)


def train_and_evaluate(config: Config, workdir: str | Path, log: Callable[[str], None] = print,
                       overwrite: bool = False, resume_command: str = '',
                       command: str = '') -> dict[str, Any]:
  """Train every variant (resuming from `workdir`'s checkpoints), evaluate it, and write the
  outputs to `workdir` (metrics.jsonl as it goes; report.md gives `command`, the one that
  reproduces the run); returns what results.json holds.

  Everything is checked (settings, data, the workdir and its free space) before anything is
  written; the workdir is locked for the run, and then `resume_command` printed. A first
  Ctrl-C or SIGTERM stops at the next safe point with `Interrupted`, a second one at once.
  In a multi-process run every process loads the data and trains its share of the models;
  process 0 alone checks, locks and writes the workdir (but for the checkpoints).
  """
  workdir = Path(workdir)
  with interrupts.stop_requests(log) as stops, contextlib.ExitStack() as claimed:
    task, train_split, test_split, setups = _start(config, 'train', log)
    sizes = [checkpoints.size_bytes(ready.untrained()) for ready in setups.values()]

    def claim():
      workdirs.prepare(workdir, config.variants, sizes, config.keep_checkpoints)
      claimed.enter_context(workdirs.lock(workdir))
      workdirs.check_config(workdir, config, overwrite)

    cluster.on_main(claim, (ConfigError, WriteError))
    log(f'workdir: {workdir}' + (f'; to resume after an interruption: {resume_command}'
                                 if resume_command else ''))
    trained = {}
    metrics_log = metrics.MetricsLog(workdir, config) if cluster.is_main() else None
    try:
      for variant, ready in setups.items():
        ckpts = _checkpoints(workdir, config, variant)
        try:
          trained[variant] = loop.run_variant(config, task, variant, train_split, test_split,
                                              log, ckpts, stops, metrics_log, ready)
        finally:
          ckpts.close()
    finally:
      if metrics_log:
        metrics_log.close()
    return write.write(config, task, trained, train_split, test_split, workdir, log, command,
                       on_disk=cluster.is_main())


def evaluate_checkpoints(config: Config, workdir: str | Path, step: int | None = None,
                         log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
  """Restore each variant's latest (or `step`'s) checkpoint in `workdir` and print its test
  results; returns them per variant. Changes nothing in `workdir`."""
  workdir = Path(workdir)
  with workdirs.lock(workdir, shared=True):
    workdirs.check_config(workdir, config, create=False)
    _, _, test_split, setups = _start(config, 'eval', log)
    results = {}
    for variant, ready in setups.items():
      ckpts = _checkpoints(workdir, config, variant, read_only=True)
      try:
        results[variant] = _evaluate_checkpoint(config, variant, ready, test_split, ckpts, step,
                                                log)
      finally:
        ckpts.close()
    return results


def _evaluate_checkpoint(config: Config, variant: str, ready: program.Setup,
                         test_split: data.Split, ckpts: checkpoints.Checkpoints,
                         step: int | None, log: Callable[[str], None]) -> dict[str, Any]:
  """Restore the latest intact (or `step`'s) checkpoint, moving nothing, and evaluate it as
  training did; warn where that is not the run's final step."""
  restored = checkpoints.restore_snapshot(ckpts, ready.untrained(), step, log, set_aside=False)
  if restored is None:
    raise NothingToEvaluate(f'no checkpoint in {ckpts.directory}')
  restored_step, final = int(cluster.host(restored.state.step)[0]), ready.spec.total_steps
  log(f'[{variant}] restored checkpoint at step {restored_step} from {ckpts.directory}')
  if restored_step != final:
    log(f'WARNING: [{variant}] step {restored_step} is not the run\'s final step ({final}): the '
        'test lines below are of a model trained part of the way')
  tested = program.evaluate_models(restored.state,
                                   program.place(test_split, ready.placement.replicated),
                                   config.num_models, config.eval_batch_size)
  for line in scores.test_lines(config, variant, tested):
    log(line)
  return scores.summary(tested)
