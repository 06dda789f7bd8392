"""The theory task: the course's theory results checked against what JAX computes, as a report
(theory.md) and a figure of the filters (filters.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from dnn_jax.core import data, theory
from dnn_jax.errors import WriteError
from dnn_jax.results import files, plots

NAME = 'theory'


def run_checks(digit: np.ndarray, key: jax.Array) -> dict[str, theory.Check]:
  """The five results (3 in two parts), on an MNIST digit (float, [0, 1]) and random data."""
  keys = jax.random.split(key, 4)
  random_image = np.asarray(jax.random.uniform(keys[0], (20, 20)))
  return {'1': theory.check_finite_differences(digit), '2': theory.check_mean_filter(random_image),
          '3a': theory.check_rgb_to_gray(keys[1]), '3b': theory.check_bottleneck(),
          '4': theory.check_pool_commutes(keys[2]), '5': theory.check_backprop(keys[3])}


def report_text(checks: dict[str, theory.Check]) -> str:
  lines = ["# The course's theory results, checked", '',
           '| # | claim | check | numbers | result |', '|---|---|---|---|---|']
  for label, c in checks.items():
    lines.append(f'| {label} | {c.claim} | {c.check} | {c.numbers} | '
                 f'{"PASS" if c.passed else "FAIL"} |')
  passed = sum(c.passed for c in checks.values())
  lines += ['', f'{passed} of {len(checks)} checks pass.']
  return '\n'.join(lines)


def synthetic_rgb(size: int = 64) -> np.ndarray:
  """Red ramp left to right, green ramp top to bottom, a blue disc: (size, size, 3) in [0, 1]."""
  i, j = np.mgrid[0:size, 0:size] / (size - 1)
  disc = ((i - 0.5) ** 2 + (j - 0.5) ** 2 < 0.09).astype(np.float32)
  return np.stack([j, i, disc], axis=-1).astype(np.float32)


def filters_figure(digit: np.ndarray, path: str | Path) -> None:
  x = jax.numpy.asarray(digit)[None, :, :, None]
  diffs = np.asarray(theory.conv(x, theory.finite_difference_kernels(), 1))[0]
  means = {k: np.asarray(theory.conv(x, jax.numpy.asarray(theory.mean_kernel(k))[:, :, None, None],
                                     'SAME'))[0, :, :, 0] for k in (3, 5)}
  rgb = synthetic_rgb()
  gray = np.asarray(theory.rgb_to_gray(jax.numpy.asarray(rgb)[None]))[0, :, :, 0]
  panels = [(digit, 'MNIST test digit', 'gray'),
            (diffs[..., 0], 'X[i+1,j] - X[i,j] (w1)', 'RdBu_r'),
            (diffs[..., 1], 'X[i,j+1] - X[i,j] (w2)', 'RdBu_r'),
            (means[3], '3x3 mean filter', 'gray'), (means[5], '5x5 mean filter', 'gray'),
            (rgb, 'synthetic RGB image', None), (gray, 'gray by 1x1 conv (.299,.587,.114)', 'gray')]
  fig = plots.figure(figsize=(12, 7), dpi=110)
  axes = fig.subplots(2, 4)
  for ax, (image, title, cmap) in zip(axes.flat, panels):
    limit = np.abs(image).max() if cmap == 'RdBu_r' else None
    ax.imshow(image, cmap=cmap, vmin=-limit if limit else None, vmax=limit)
    ax.set_title(title, fontsize=10)
  for ax in axes.flat:
    ax.axis('off')
  fig.suptitle('Filters of the course, computed with jax.lax.conv_general_dilated')
  fig.tight_layout()
  files.write_atomic(path, lambda f: fig.savefig(f, format='png'), mode='wb')


def run(mnist_dir: str, tfds_data_dir: str | None, workdir: str | Path, seed: int,
        log: Callable[[str], None] = print) -> bool:
  """Log the report, write theory.md and filters.png; True if every check passes."""
  test = data.load_mnist('test', mnist_dir, tfds_data_dir)
  digit = test.images[0, :, :, 0].astype(np.float32) / 255
  checks = run_checks(digit, jax.random.key(seed))
  text = report_text(checks)
  log(text)
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise WriteError(f'cannot make {workdir}: {e.strerror}') from None
  files.write_text(workdir / 'theory.md', text + '\n')
  filters_figure(digit, workdir / 'filters.png')
  log(f'written: {workdir / "theory.md"}, {workdir / "filters.png"}')
  return all(c.passed for c in checks.values())
