"""The figures of a training run: curves over its models (training loss per step, test
accuracy per epoch, a sweep's accuracy against the swept value) and pictures of what was
learned (images and kernels, C3's connections, confusion matrices). Each function saves the
figure and returns it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from dnn_jax.results import files


class Shown(NamedTuple):
  """The models of a variant that its figures show: the seeds of one grid point."""
  params: Any                 # their parameters, numpy, with the models axis
  captions: tuple[str, ...]   # each model's description, e.g. 'seed 0'
  test_accuracy: np.ndarray   # (models, epochs), NaN where not evaluated
  train_accuracy: np.ndarray  # likewise, on the training set (NaN unless the task asks)


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
                window: int = 1):
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
  return _save(fig, path)


def sweep_curves(rows: Sequence[Mapping], name: str, path: str | Path, title: str):
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
  return _save(fig, path)


def _save(fig, path: str | Path):
  files.write_atomic(path, lambda f: fig.savefig(f, format='png'), mode='wb')
  return fig


def _mean_and_band(ax, per_epoch: Mapping[str, np.ndarray], band_labels: bool) -> None:
  """Per curve ((models, epochs), NaN where not evaluated): the mean over models after each
  evaluated epoch, with its min-max band (in the legend with `band_labels`)."""
  for name, values in per_epoch.items():
    tested = ~np.isnan(values).all(axis=0)
    epochs, values = np.flatnonzero(tested) + 1, values[:, tested]
    line, = ax.plot(epochs, values.mean(axis=0), marker='o', lw=1.5,
                    label=f'{name} (mean of {len(values)})')
    if len(values) > 1:
      ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=line.get_color(),
                      alpha=0.25, lw=0, label=f'{name} min-max' if band_labels else None)


def accuracy_curves(per_epoch: Mapping[str, np.ndarray], path: str | Path, title: str):
  """Test accuracy after each tested epoch ((models, epochs), NaN where not tested): per
  variant the mean over models with its min-max band."""
  fig = figure(figsize=(8, 4.5), dpi=120)
  ax = fig.subplots()
  _mean_and_band(ax, {name: 100 * accuracy for name, accuracy in per_epoch.items()}, True)
  ax.set_xlabel('epoch')
  ax.set_ylabel('test accuracy (%)')
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set_title(textwrap.fill(title, 100), fontsize=8)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return _save(fig, path)


def error_curves(per_epoch: Mapping[str, np.ndarray], marks: Mapping[str, float],
                 path: str | Path, title: str):
  """Error (%) after each evaluated epoch, ((models, epochs), NaN where not evaluated) per
  curve: the mean over models with its min-max band; `marks`: {label: error} lines, such
  as a paper's figures."""
  fig = figure(figsize=(8, 4.5), dpi=120)
  ax = fig.subplots()
  _mean_and_band(ax, per_epoch, False)
  for label, value in marks.items():
    ax.axhline(value, color='k', ls='--', lw=0.8)
    ax.annotate(label, (1, value), xycoords=('axes fraction', 'data'), ha='right',
                va='bottom', fontsize=8)
  ax.set_xlabel('pass over the training set')
  ax.set_ylabel('error (%)')
  ax.set_yscale('log')
  from matplotlib.ticker import FuncFormatter
  leading = lambda v: round(v / 10 ** np.floor(np.log10(v)))  # 4 of 0.4
  ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))  # 0.1, not 10^-1
  ax.yaxis.set_minor_formatter(FuncFormatter(  # 0.2, 0.3, 0.4, 0.6 of a decade: not 2x10^-1
      lambda v, _: f'{v:g}' if leading(v) in (2, 3, 4, 6) else ''))
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set_title(textwrap.fill(title, 100), fontsize=8)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3, which='both')
  fig.tight_layout()
  return _save(fig, path)


class Panel(NamedTuple):
  """One image of an `image_grid`: signed values get a diverging colour map centred on
  zero (a colour bar with `scale`), others grey levels."""
  caption: str
  image: np.ndarray
  signed: bool = False
  scale: bool = False


def image_grid(blocks: Mapping[str, Sequence[Sequence[Panel]]], path: str | Path, title: str,
               panel_size: float = 2.0, caption_size: float = 8):
  """Blocks of rows of captioned images, each block under its heading; each signed image
  on its own symmetric scale."""
  columns = max(len(row) for rows in blocks.values() for row in rows)
  heights = [len(rows) for rows in blocks.values()]
  fig = figure(figsize=(panel_size * columns, panel_size * sum(heights) + 0.4 * len(blocks) + 0.5),
               dpi=120, layout='constrained')
  fig.suptitle(textwrap.fill(title, int(14 * panel_size * columns)), fontsize=8)
  for sub, (heading, rows) in zip(np.atleast_1d(fig.subfigures(len(blocks), 1,
                                                               height_ratios=heights)),
                                  blocks.items()):
    if heading:
      sub.suptitle(heading, fontsize=9, fontweight='bold')
    axes = np.asarray(sub.subplots(len(rows), columns, squeeze=False))
    for ax in axes.ravel():
      ax.set_axis_off()
    for r, row in enumerate(rows):
      for c, panel in enumerate(row):
        ax = axes[r, c]
        if panel.signed:
          limit = float(np.abs(panel.image).max()) or 1.0
          shown = ax.imshow(panel.image, cmap='RdBu_r', vmin=-limit, vmax=limit)
          if panel.scale:
            sub.colorbar(shown, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
        else:
          ax.imshow(panel.image, cmap='gray_r')
        ax.set_title(panel.caption, fontsize=caption_size)
  return _save(fig, path)


def mosaic(blocks: Mapping[str, tuple[np.ndarray, Sequence[str]]], path: str | Path, title: str,
           per_row: int = 8, scale: float = 1.1):
  """Per block (heading: (images (n, h, w) in grey levels, a caption each)) one picture of
  its images side by side, `per_row` to a row, each under its caption: one image per block
  draws in a fraction of the time of an axes per image."""
  heights = [max(1, -(-len(images) // per_row)) for images, _ in blocks.values()]
  fig = figure(figsize=(scale * per_row, scale * 1.2 * sum(heights) + 0.5 * len(blocks) + 0.4),
               dpi=120, layout='constrained')
  fig.suptitle(textwrap.fill(title, int(14 * scale * per_row)), fontsize=8)
  axes = np.atleast_1d(fig.subplots(len(blocks), 1, height_ratios=heights))
  for ax, (heading, (images, captions)), rows in zip(axes, blocks.items(), heights):
    h, w = (np.shape(images)[1:] if len(images) else (28, 28))
    cell_h, cell_w = int(h * 1.35), w + 4  # room for the caption above each image
    canvas = np.zeros((rows * cell_h, per_row * cell_w))
    for k, image in enumerate(images):
      r, c = divmod(k, per_row)
      canvas[r * cell_h + cell_h - h:(r + 1) * cell_h, c * cell_w + 2:c * cell_w + 2 + w] = image
      ax.text(c * cell_w + cell_w / 2, r * cell_h + (cell_h - h) / 2, captions[k], ha='center',
              va='center', fontsize=7)
    ax.imshow(canvas, cmap='gray_r', interpolation='nearest')
    ax.set_axis_off()
    ax.set_title(heading, fontsize=9, fontweight='bold')
  return _save(fig, path)


def matrices(named: Mapping[str, np.ndarray], path: str | Path, title: str, xlabel: str,
             ylabel: str, xticks: Sequence[str], yticks: Sequence[str], fmt: str,
             log: bool = False):
  """One matrix per variant side by side, on one colour scale, each cell coloured (zero
  white) and labelled with its value (`fmt`; an exact zero as 0); `log`: colours on a log
  scale of 1 + value, for counts."""
  from matplotlib.colors import LogNorm, Normalize
  rows, cols = next(iter(named.values())).shape
  top = max(float(np.max(m)) for m in named.values()) or 1.0
  norm = LogNorm(1, top + 1) if log else Normalize(0, top)
  width = max(0.45 * cols + 1.2, 3.5)
  fig = figure(figsize=(width * len(named), 0.45 * rows + 1.8), dpi=120, layout='constrained')
  axes = np.atleast_1d(fig.subplots(1, len(named)))
  for ax, (name, matrix) in zip(axes, named.items()):
    matrix = np.asarray(matrix)
    ax.imshow(matrix + 1 if log else matrix, cmap='Blues', norm=norm)
    for (i, j), value in np.ndenumerate(matrix):
      dark = norm(value + 1 if log else value) > 0.6
      ax.text(j, i, format(value, fmt) if value else '0', ha='center', va='center', fontsize=6,
              color='white' if dark else 'black')
    ax.set_xticks(range(cols), xticks, fontsize=7)
    ax.set_yticks(range(rows), yticks, fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(name, fontsize=9)
  fig.suptitle(textwrap.fill(title, int(14 * width * len(named))), fontsize=8)
  return _save(fig, path)
