"""Statistics over seeds: summaries, the t interval of a mean, Welch's t-test and the variance
table."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# Columns of the variance table: (key in a variant's results, heading, format).
TABLE_METRICS = (('test_accuracy', 'test accuracy (%)', lambda v: f'{100 * v:.2f}'),
                 ('test_loss', 'test loss', lambda v: f'{v:.4f}'))


def summary(values: Sequence[float]) -> dict[str, float]:
  """mean, std (ddof=1; 0 for one value), min, max and n."""
  values = np.asarray(values, np.float64)
  std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
  return dict(mean=float(values.mean()), std=std, min=float(values.min()),
              max=float(values.max()), n=len(values))


def _student_t():
  """scipy's Student's t distribution, imported when first needed (it takes about a second,
  which every run's start and every error would otherwise pay)."""
  from scipy import stats
  return stats.t


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
  """Student's t interval of the mean of `values` (the mean twice for a single value)."""
  values = np.asarray(values, np.float64)
  if len(values) < 2:
    return float(values.mean()), float(values.mean())
  t = _student_t().ppf(0.5 + confidence / 2, len(values) - 1)
  half = t * values.std(ddof=1) / np.sqrt(len(values))
  return float(values.mean() - half), float(values.mean() + half)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
  """Difference of means mean(a) - mean(b), its confidence interval, and Welch's t-test.

  With fewer than two values on a side, or no spread at all, nothing can be said: the
  interval and p-value are NaN.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  diff = float(a.mean() - b.mean())
  nan = float('nan')
  if len(a) < 2 or len(b) < 2:
    return dict(diff=diff, ci_low=nan, ci_high=nan, t=nan, df=nan, p=nan)
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  se = np.sqrt(va + vb)
  if se == 0:
    return dict(diff=diff, ci_low=diff, ci_high=diff, t=nan, df=nan, p=nan)
  df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
  t = diff / se
  half_width = _student_t().ppf(0.5 + confidence / 2, df) * se
  p = 2 * _student_t().sf(abs(t), df)
  return dict(diff=diff, ci_low=float(diff - half_width), ci_high=float(diff + half_width),
              t=float(t), df=float(df), p=float(p))


def _kept(r: Mapping[str, Any], key: str, exclude_collapsed: bool) -> list[float]:
  return [v for v, c in zip(r[key], r['collapsed']) if not (exclude_collapsed and c)]


def _stat_rows(variants: Mapping[str, Mapping[str, Any]], exclude_collapsed: bool) -> list[str]:
  label = ' (no collapse)' if exclude_collapsed else ''
  rows = []
  for stat in ('mean', 'std', 'min', 'max'):
    cells = [fmt(summary(values)[stat]) if (values := _kept(r, key, exclude_collapsed)) else '-'
             for key, _, fmt in TABLE_METRICS for r in variants.values()]
    rows.append(f'| **{stat}**{label} | ' + ' | '.join(cells) + ' |')
  return rows


def variance_table(variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int]) -> str:
  """Markdown: one row per seed, then mean/std/min/max over all seeds and over the
  seeds that did not collapse; variants side by side; Welch's test for two variants."""
  names = list(variants)
  heads = [f'{name} {heading}' for _, heading, _ in TABLE_METRICS for name in names]
  lines = ['| seed | ' + ' | '.join(heads) + ' |', '|---|' + '---:|' * len(heads)]
  for i, seed in enumerate(seeds):
    cells = []
    for key, _, fmt in TABLE_METRICS:
      for r in variants.values():
        mark = ' (collapsed)' if r['collapsed'][i] else ''
        cells.append(fmt(r[key][i]) + mark)
    lines.append(f'| {seed} | ' + ' | '.join(cells) + ' |')
  lines += _stat_rows(variants, exclude_collapsed=False)
  if any(any(r['collapsed']) for r in variants.values()):
    lines += _stat_rows(variants, exclude_collapsed=True)
  lines.append('')
  for name, r in variants.items():
    count = sum(r['collapsed'])
    together = f' for all {len(seeds)} seeds together' if len(seeds) > 1 else ''
    lines.append(f'- {name}: {count} of {len(seeds)} seeds collapsed to predicting a '
                 f'single class; training time {r["train_time_s"]:.2f} s{together} '
                 f'(+{r["compile_time_s"]:.2f} s compile)')
  if len(names) == 2:
    lines += ['', comparison_text(variants, names)]
  return '\n'.join(lines)


def comparison_text(variants: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
  """The difference of mean test accuracy of two variants, over all seeds and, where some
  collapsed, over each variant's non-collapsed seeds."""
  parts = []
  for exclude in (False, True):
    a, b = (_kept(variants[n], 'test_accuracy', exclude) for n in names)
    if exclude and (len(a), len(b)) == (len(variants[names[0]]['collapsed']),) * 2:
      break  # nothing collapsed: the second line would repeat the first
    w = welch(a, b) if a and b else None
    scope = 'non-collapsed seeds' if exclude else 'all seeds'
    parts.append(f'Test accuracy {names[0]} - {names[1]} ({scope}, n = {len(a)} and {len(b)}): '
                 + ('no seeds left' if w is None else _difference_text(w)))
  return '\n\n'.join(parts)


def _difference_text(w: Mapping[str, float]) -> str:
  text = f'{100 * w["diff"]:+.2f} points'
  if np.isnan(w['ci_low']):
    return text + ' (no interval or test: needs 2 or more seeds on each side)'
  return (text + f', 95% CI [{100 * w["ci_low"]:+.2f}, {100 * w["ci_high"]:+.2f}], '
          f'Welch t-test p = {w["p"]:.3g}')
