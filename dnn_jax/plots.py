"""The training-loss figure: each variant's mean curve over seeds, with a min-max band."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib.figure import Figure  # drawn without pyplot: no backend, no global state

from dnn_jax import report


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
  fig = Figure(figsize=(8, 4.5), dpi=120)
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
