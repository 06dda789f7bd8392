"""`train_and_evaluate(config, workdir)` and `evaluate_checkpoints(config, workdir)`: a whole
run, every variant of the config in turn, over the modules that each do one part."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax

from dnn_jax import tasks
from dnn_jax.config import Config
from dnn_jax.core import data, platform
from dnn_jax.errors import (CheckpointError, ConfigError, Interrupted, NothingToEvaluate,
                            WorkdirMoved, WriteError)
from dnn_jax.results import environment, scores, write
from dnn_jax.run import checkpoints, cluster, identity, interrupts, loop, metrics, program
from dnn_jax.run import workdirs


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


COMPILED = 'compiled'  # <workdir>/compiled/: the run's compiled programs, on GPUs (_compile_once)


def _checkpoints(workdir: Path, config: Config, variant: str, read_only: bool = False,
                 guard: Callable[[Path | None], None] | None = None) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir / workdirs.CHECKPOINTS / variant,
                                 config.keep_checkpoints, read_only,
                                 dict(identity.record(config), variant=variant), guard)


def layout(config: Config) -> workdirs.Layout:
  """What a run of `config` writes in its workdir."""
  return workdirs.Layout(
      files=(*write.file_names(tasks.TRAINING[config.task]), metrics.METRICS_FILE),
      folders=(workdirs.CHECKPOINTS, *(f'{workdirs.CHECKPOINTS}/{v}' for v in config.variants),
               metrics.TENSORBOARD_DIR, COMPILED))


def train_and_evaluate(config: Config, workdir: str | Path, log: Callable[[str], None] = print,
                       overwrite: bool = False, restart: bool = False, resume_command: str = '',
                       command: str = '') -> dict[str, Any]:
  """Train every variant (resuming from `workdir`'s checkpoints), evaluate it, and write the
  outputs to `workdir` (metrics.jsonl as it goes; report.md gives `command`, the one that
  reproduces the run); returns what results.json holds.

  Everything is checked (the processes' settings, the data, the workdir, every path the run
  writes and its free space) before anything is written; the workdir is locked for the run,
  and then `resume_command` printed. A variant whose checkpoints were all found damaged is
  refused, unless `restart` (train it from step 0). A first Ctrl-C or SIGTERM stops at the
  next safe point with `Interrupted`, a second one at once. In a multi-process run every
  process loads the data and trains its share of the models; process 0 alone checks, locks
  and writes the workdir (but for the checkpoints).
  """
  workdir = Path(workdir)
  identity.agree(config, 'train')
  with interrupts.stop_requests(log) as stops, contextlib.ExitStack() as held:
    task, train_split, test_split, setups = _start(config, 'train', log)
    need = write.bytes_estimate(config) + sum(
        (config.keep_checkpoints + 1) * checkpoints.size_bytes(ready.untrained())
        + metrics.bytes_estimate(ready.spec, config.num_models) for ready in setups.values())
    claims = []

    def claim():
      workdirs.prepare(workdir, layout(config), need)
      claims.append(held.enter_context(workdirs.lock(workdir)))
      workdirs.check_config(workdir, config, layout(config), overwrite)
      workdirs.remove_temporaries(workdir)

    def still_here(written: Path | None = None):
      claims[0].check(written)

    cluster.on_main(claim, (ConfigError, WriteError))
    _compile_once(config, workdir)
    log(f'workdir: {workdir}' + (f'; to resume after an interruption: {resume_command}'
                                 if resume_command else ''))
    trained = {}
    metrics_log = metrics.MetricsLog(workdir, config) if cluster.is_main() else None
    try:
      for variant, ready in setups.items():
        ckpts = _checkpoints(workdir, config, variant, guard=still_here)
        try:
          if ckpts.lost() and not restart:
            raise CheckpointError(
                f'no intact checkpoint of {variant} in {ckpts.directory}: every one was found '
                f'damaged and set aside in {ckpts.aside}; {checkpoints.RESTART_OR_OVERWRITE}')
          trained[variant] = loop.run_variant(config, task, variant, train_split, test_split,
                                              log, ckpts, stops, metrics_log, ready)
        finally:
          ckpts.close()
    finally:
      if metrics_log:
        metrics_log.close()
    cluster.on_main(still_here, (WorkdirMoved,))
    results = write.write(config, task, trained, train_split, test_split, workdir, log, command,
                          on_disk=cluster.is_main())
    interrupts.abort_if_asked(stops)
    signum = loop.stop_signal(stops)
    if signum:  # asked to stop while the outputs were written: they are complete
      raise Interrupted(f'interrupted by signal {signum} while the outputs were written, '
                        f'which were finished first in {workdir}', signum)
    return results


def evaluate_checkpoints(config: Config, workdir: str | Path, step: int | None = None,
                         log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
  """Restore each variant's latest (or `step`'s) checkpoint in `workdir` and print its test
  results; returns them per variant. Changes nothing in `workdir`."""
  workdir = Path(workdir)
  identity.agree(config, 'eval')
  with workdirs.lock(workdir, shared=True):
    workdirs.check_config(workdir, config, create=False)
    _compile_once(config, workdir)
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


def _compile_once(config: Config, workdir: Path) -> None:
  """On a GPU, with `deterministic`: every compiled program kept in the workdir, for the
  processes that resume or evaluate the run to run the same one."""
  if config.deterministic and jax.default_backend() == 'gpu':
    platform.use_compilation_cache(str((workdir / COMPILED).absolute()))


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
  state = _as_trained(config, variant, restored, ready.placement.per_device, log)
  tested = program.evaluate_models(state,
                                   program.place(test_split, ready.placement.replicated),
                                   config.num_models, config.eval_batch_size)
  for line in scores.test_lines(config, variant, tested):
    log(line)
  return scores.summary(tested)


def _as_trained(config: Config, variant: str, restored: checkpoints.Snapshot, per_device: int,
                log: Callable[[str], None]):
  """The restored state, evaluated with the chunk width training used (unless one is given),
  so that the test lines are training's bit for bit; a warning where other numerics differ."""
  state = restored.state
  if not restored.numerics:
    return state
  trained = {k: v for k, v in restored.numerics[-1].items() if k != 'from_step'}
  width = trained['models_per_chunk']
  if not config.models_per_chunk and width <= per_device:
    state = state.replace(spec=dataclasses.replace(state.spec, models_per_chunk=width))
  now = loop.numerics(config, state.spec)
  changed = {k: v for k, v in now.items() if k != 'micro_batches' and trained.get(k) != v}
  if changed:
    log(f'WARNING: [{variant}] evaluated with ' + ', '.join(
        f'{k} {v} (training: {trained.get(k)})' for k, v in changed.items())
        + ": the test lines match training's to float rounding, not bit for bit")
  return state
