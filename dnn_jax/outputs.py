"""What a training run leaves in its workdir: results.json (first), then the table (the variance
table, or a sweep's sweep_table.md) and the figures (loss_curve.png, and a sweep's sweep.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dnn_jax import plots, report, seed_stats, sweeps
from dnn_jax.config import Config

LINEAR_SMOOTHING = 500  # steps averaged in the loss figure of batch-1 runs


def write(config: Config, variants: Mapping[str, dict[str, Any]],
          step_losses: Mapping[str, np.ndarray], num_train: int, workdir: Path,
          log: Callable[[str], None]) -> dict[str, Any]:
  """Print the table; write results.json, the table and the figures."""
  title = (f'{config.experiment} ({config.protocol}), {config.num_seeds} seed(s), batch '
           f'{config.batch_size}, lr {_values(config.learning_rate)}, {config.sampling}, '
           f'{config.pixel_scale} pixels, {config.total_steps(num_train)} steps')
  results = dict(experiment=config.experiment, config=config.to_json(),
                 device=report.device_description(), versions=report.versions(),
                 models=[dict(config.model(m)[0], seed=config.model(m)[1])
                         for m in range(config.num_models)],
                 variants=dict(variants))
  figures = {'loss_curve.png': lambda path: plots.loss_curves(
      step_losses, path, title, window=LINEAR_SMOOTHING if config.batch_size == 1 else 1)}
  if len(config.grid) > 1:
    rows = sweeps.summarize(variants, config)
    table, table_file = sweeps.table(rows, config), 'sweep_table.md'
    results.update(sweep=rows, sweep_table=table)
    swept = next(iter(config.grid[0]))
    figures['sweep.png'] = lambda path: plots.sweep_curves(rows, swept, path, title)
  else:
    seeds = list(range(config.seed, config.seed + config.num_seeds))
    table, table_file = seed_stats.variance_table(variants, seeds), 'variance_table.md'
    summaries = {v: {key: seed_stats.summary(r[key]) for key, _, _ in seed_stats.TABLE_METRICS}
                 for v, r in variants.items()}
    if len(variants) == 2:
      summaries['difference'] = seed_stats.welch(*(r['test_accuracy'] for r in variants.values()))
    results.update(statistics=summaries, variance_table=table)
  log(table)
  report.write_json(workdir / 'results.json', results)
  report.write_text(workdir / table_file, table + '\n')
  for name, draw in figures.items():
    draw(workdir / name)
  log('results: ' + ', '.join(str(workdir / name) for name in
                               ('results.json', table_file, *figures)))
  return results


def _values(value: float | tuple[float, ...]) -> str:
  return ','.join(f'{v:g}' for v in value) if isinstance(value, tuple) else f'{value:g}'
