"""`train_and_evaluate(config, workdir)` and `evaluate(config, workdir)`: a whole run, every
variant of the config in turn, over the modules that each do one part."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from dnn_jax import checkpoints, evaluate as evaluation, interrupts, loop, outputs, report
from dnn_jax import workdir as workdirs
from dnn_jax.config import Config
from dnn_jax.experiments import EXPERIMENTS


def _start(config: Config, mode: str, log: Callable[[str], None]):
  """Print the configuration, load the data: (experiment module, train split, test split)."""
  log(f'experiment: {config.experiment} ({mode})')
  for key, value in config.to_json().items():
    log(f'  {key} = {value}')
  experiment = EXPERIMENTS[config.experiment]
  train_split, test_split = experiment.load_data(config)
  log(f'data: {len(train_split.labels)} training, {len(test_split.labels)} test examples; '
      f'device: {report.device_description()}')
  return experiment, train_split, test_split


def _checkpoints(workdir: Path, config: Config, variant: str) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir / workdirs.CHECKPOINTS / variant, config.keep_checkpoints)


def train_and_evaluate(config: Config, workdir: str | Path, log: Callable[[str], None] = print,
                       overwrite: bool = False) -> dict[str, Any]:
  """Train every variant (resuming from `workdir`'s checkpoints), test it, and write the
  outputs to `workdir`; returns what results.json holds. A first Ctrl-C or SIGTERM stops at
  the next safe point with `interrupts.Interrupted`, a second one at once."""
  workdir = Path(workdir)
  with interrupts.stop_requests(log) as stops:
    workdirs.check_config(workdir, config, overwrite)
    experiment, train_split, test_split = _start(config, 'train', log)
    variants = {}
    for variant in config.variants:
      ckpts = _checkpoints(workdir, config, variant)
      try:
        variants[variant] = loop.train_variant(config, experiment, variant, train_split,
                                               test_split, log, ckpts, stops)
      finally:
        ckpts.close()
  step_losses = {v: r.pop('step_losses') for v, r in variants.items()}
  return outputs.write(config, variants, step_losses, len(train_split.labels), workdir, log)


def evaluate(config: Config, workdir: str | Path, step: int | None = None,
             log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
  """Restore each variant's latest (or `step`'s) checkpoint in `workdir` and print its test
  results; returns them per variant."""
  workdir = Path(workdir)
  workdirs.check_config(workdir, config, create=False)
  experiment, train_split, test_split = _start(config, 'eval', log)
  results = {}
  for variant in config.variants:
    ckpts = _checkpoints(workdir, config, variant)
    try:
      results[variant] = evaluation.evaluate_checkpoint(
          config, experiment, variant, len(train_split.labels), test_split, ckpts, step, log)
    finally:
      ckpts.close()
  return results
