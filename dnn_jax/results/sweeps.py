"""A sweep's statistics: for each grid point and variant, its seeds' test accuracy and loss
(mean +- std, min, max), how many collapsed or diverged, the best point per variant with a
95% interval, and for two variants Welch's difference at each point."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from dnn_jax.config import Config, describe_point
from dnn_jax.results import stats
from dnn_jax.results.scores import PER_MODEL


def summarize(variants: Mapping[str, Mapping[str, Any]], config: Config) -> list[dict[str, Any]]:
  """One row per grid point: the point, and per variant the statistics over its seeds."""
  rows = []
  for g, point in enumerate(config.grid):
    seeds = slice(g * config.num_seeds, (g + 1) * config.num_seeds)
    part = {name: {key: r[key][seeds] for key in PER_MODEL} for name, r in variants.items()}
    row = dict(point=point, variants={name: dict(
        test_accuracy=stats.summary(p['test_accuracy']),
        test_loss=stats.summary(p['test_loss']),
        accuracy_interval=tuple(np.clip(stats.mean_interval(p['test_accuracy']), 0, 1)),
        collapsed=int(sum(p['collapsed'])), diverged=int(sum(p['diverged'])),
        failed=int(sum(c or d for c, d in zip(p['collapsed'], p['diverged']))))
        for name, p in part.items()})
    if len(part) == 2:
      row['difference'] = stats.welch(*(p['test_accuracy'] for p in part.values()))
    rows.append(row)
  return rows


def best(rows: Sequence[Mapping[str, Any]], variant: str) -> Mapping[str, Any]:
  """The row of the highest mean test accuracy of `variant`."""
  return max(rows, key=lambda row: row['variants'][variant]['test_accuracy']['mean'])


def table(rows: Sequence[Mapping[str, Any]], config: Config) -> str:
  """Markdown: a row per grid point; per variant the accuracy (mean +- std, min-max), the
  loss, and the collapsed and diverged seeds; Welch's difference for two variants."""
  names = list(rows[0]['variants'])
  n = config.num_seeds
  heads = [h for name in names for h in (f'{name} test accuracy (%)', f'{name} test loss',
                                          f'{name} collapsed / diverged')]
  if len(names) == 2:
    heads.append(f'{names[0]} - {names[1]} (points, 95% CI, Welch p)')
  lines = ['| swept | ' + ' | '.join(heads) + ' |',
           '|---|' + '---:|' * len(heads)]
  for row in rows:
    cells = []
    for name in names:
      v = row['variants'][name]
      acc, loss = v['test_accuracy'], v['test_loss']
      cells += [f'{100 * acc["mean"]:.2f} +- {100 * acc["std"]:.2f} '
                f'({100 * acc["min"]:.2f}-{100 * acc["max"]:.2f})',
                f'{loss["mean"]:.4f}', f'{v["collapsed"]} / {v["diverged"]} of {n}']
    if 'difference' in row:
      d = row['difference']
      cells.append(f'{100 * d["diff"]:+.2f} [{100 * d["ci_low"]:+.2f}, {100 * d["ci_high"]:+.2f}]'
                   f', p = {d["p"]:.3g}')
    lines.append(f'| {describe_point(row["point"])} | ' + ' | '.join(cells) + ' |')
  lines.append('')
  for name in names:
    top = best(rows, name)
    low, high = top['variants'][name]['accuracy_interval']
    lines.append(f'- best for {name}: {describe_point(top["point"])}, '
                 f'{100 * top["variants"][name]["test_accuracy"]["mean"]:.2f}% '
                 f'(95% CI of the mean over {n} seeds: [{100 * low:.2f}, {100 * high:.2f}])')
  return '\n'.join(lines)
