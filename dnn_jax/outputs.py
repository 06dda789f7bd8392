"""What a training run leaves in its workdir: results.json (first), the variance table and the
training-loss figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dnn_jax import plots, report, seed_stats
from dnn_jax.config import Config

LINEAR_SMOOTHING = 500  # steps averaged in the loss figure of batch-1 runs


def write(config: Config, variants: Mapping[str, dict[str, Any]],
          step_losses: Mapping[str, np.ndarray], num_train: int, workdir: Path,
          log: Callable[[str], None]) -> dict[str, Any]:
  """Print the variance table; write results.json, variance_table.md and loss_curve.png."""
  seeds = list(range(config.seed, config.seed + config.num_seeds))
  table = seed_stats.variance_table(variants, seeds)
  log(table)
  summaries = {v: {key: seed_stats.summary(r[key]) for key, _, _ in seed_stats.TABLE_METRICS}
               for v, r in variants.items()}
  if len(variants) == 2:
    summaries['difference'] = seed_stats.welch(*(r['test_accuracy'] for r in variants.values()))
  results = dict(experiment=config.experiment, config=config.to_json(),
                 device=report.device_description(), versions=report.versions(),
                 variants=dict(variants), statistics=summaries, variance_table=table)
  report.write_json(workdir / 'results.json', results)
  report.write_text(workdir / 'variance_table.md', table + '\n')
  plots.loss_curves(step_losses, workdir / 'loss_curve.png',
                    window=LINEAR_SMOOTHING if config.batch_size == 1 else 1,
                    title=f'{config.experiment} ({config.protocol}), {config.num_seeds} seed(s), '
                          f'batch {config.batch_size}, lr {config.learning_rate}, '
                          f'{config.sampling}, {config.pixel_scale} pixels, '
                          f'{config.total_steps(num_train)} steps')
  log(f'results: {workdir / "results.json"}, {workdir / "variance_table.md"}, '
      f'{workdir / "loss_curve.png"}')
  return results
