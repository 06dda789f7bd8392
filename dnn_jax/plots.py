"""The figures of a training run: the training-loss curves over seeds, and a sweep's accuracy
against the swept value."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dnn_jax import report


def figure(**kwargs):
  """A matplotlib Figure, drawn without pyplot (no backend, no global state); matplotlib is
  imported here, when a run draws, so that a run's start and its errors stay quick."""
  from matplotlib.figure import Figure
  return Figure(**kwargs)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
  """Mean over the last `window` steps along the last axis ('valid' part only)."""
  if window <= 1:
    return values
  cumulative = np.cumsum(np.pad(values, [(0, 0)] * (values.ndim - 1) + [(1, 0)]), axis=-1)
  return (cumulative[..., window:] - cumulative[..., :-window]) / window


def loss_curves(step_losses: Mapping[str, np.ndarray], path: str | Path, title: str,
                window: int = 1) -> None:
  """Plot (seeds, steps) training losses per variant, smoothed over `window` steps (at
  most a tenth of the run)."""
  num_steps = min(np.shape(losses)[-1] for losses in step_losses.values())
  window = max(1, min(window, num_steps // 10))
  fig = figure(figsize=(8, 4.5), dpi=120)
  ax = fig.subplots()
  for name, losses in step_losses.items():
    smooth = moving_average(np.asarray(losses, np.float64), window)
    steps = np.arange(smooth.shape[-1]) + window
    line, = ax.plot(steps, smooth.mean(axis=0), lw=1.2, label=f'{name} (mean of {len(losses)})')
    ax.fill_between(steps, smooth.min(axis=0), smooth.max(axis=0), color=line.get_color(),
                    alpha=0.25, lw=0, label=f'{name} min-max over seeds')
  ax.set_xlabel('training step' + (f' (loss averaged over {window} steps)' if window > 1 else ''))
  ax.set_ylabel('training loss')
  ax.set_yscale('log')
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  report.write_atomic(path, lambda f: fig.savefig(f, format='png'), mode='wb')


def sweep_curves(rows: Sequence[Mapping], name: str, path: str | Path, title: str) -> None:
  """Test accuracy against the swept setting `name` (log axis): per variant the mean over
  seeds with its min-max band, and on a second axis the share of seeds that collapsed or
  diverged (dashed)."""
  x = [row['point'][name] for row in rows]
  fig = figure(figsize=(8, 5), dpi=120)
  ax = fig.subplots()
  failed_ax = ax.twinx()
  for variant in rows[0]['variants']:
    stats = [row['variants'][variant] for row in rows]
    acc = {k: 100 * np.array([s['test_accuracy'][k] for s in stats])
           for k in ('mean', 'min', 'max')}
    line, = ax.plot(x, acc['mean'], marker='o', lw=1.5, label=f'{variant}: mean test accuracy')
    ax.fill_between(x, acc['min'], acc['max'], color=line.get_color(), alpha=0.2, lw=0,
                    label=f'{variant}: min-max over seeds')
    failed = [100 * s['failed'] / s['test_accuracy']['n'] for s in stats]
    failed_ax.plot(x, failed, ls='--', marker='x', color=line.get_color(), alpha=0.8,
                   label=f'{variant}: seeds collapsed or diverged')
  ax.set_xscale('log')
  ax.set_xticks(x, [f'{v:g}' for v in x])
  ax.minorticks_off()
  ax.set_xlabel(name)
  ax.set_ylabel('test accuracy (%)')
  failed_ax.set_ylabel('seeds collapsed or diverged (%)')
  failed_ax.set_ylim(-5, 105)
  ax.set_title(textwrap.fill(title, 100), fontsize=8)
  handles = [h for a in (ax, failed_ax) for h in a.get_legend_handles_labels()[0]]
  fig.legend(handles, [h.get_label() for h in handles], fontsize=7, loc='lower center',
             ncol=3, frameon=False)
  ax.grid(alpha=0.3)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  report.write_atomic(path, lambda f: fig.savefig(f, format='png'), mode='wb')
