"""What a training run leaves in its workdir once trained: results.json (first), the table
(the variance table, or a sweep's sweep_table.md), the figures, and report.md, which shows
them all with the command that reproduces the run. (metrics.jsonl is written as it goes.)"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

import jax
import numpy as np

from dnn_jax.config import Config, describe_point, flag_text
from dnn_jax.core import data, losses
from dnn_jax.results import environment, files, plots, stats, sweeps
from dnn_jax.results.plots import Shown

SMOOTHING = 500  # steps averaged in the loss figure of batch-1 runs
MISCLASSIFIED_SHOWN = 64
RESULTS_FILE, REPORT_FILE = 'results.json', 'report.md'
TABLE_FILES = ('variance_table.md', 'sweep_table.md')  # of seeds; of a sweep
LOSS_FIGURE, ACCURACY_FIGURE, CONFUSION_FIGURE, MISCLASSIFIED_FIGURE = FIGURES = (
    'loss_curve.png', 'accuracy_curve.png', 'confusion.png', 'misclassified.png')
SWEEP_FIGURE = 'sweep.png'


def file_names(task: ModuleType) -> tuple[str, ...]:
  """Every file `write` may write for a run of `task`, results.json first."""
  return (RESULTS_FILE, *TABLE_FILES, REPORT_FILE, *FIGURES, SWEEP_FIGURE, *task.FIGURES)


def bytes_estimate(config: Config) -> int:
  """A generous bound on the bytes `write` writes: figures, tables, report and results.json."""
  return 4 * 2**20 + 4096 * config.num_models * len(config.variants)


def write(config: Config, task: ModuleType, trained: Mapping[str, Any],
          train_split: data.Split, test_split: data.Split, workdir: Path,
          log: Callable[[str], None], command: str = '', on_disk: bool = True) -> dict[str, Any]:
  """Print the table; write results.json, the table, the figures and report.md, from each
  variant's `loop.VariantResult`; returns what results.json holds. With `on_disk` False (a
  process of a multi-process run other than the first), only returns it."""
  num_train = len(train_split.labels)
  steps_by = (f'sdlm (mu {flag_text(config.sdlm_mu)}), lr {flag_text(config.learning_rate)}'
              if config.optimizer == 'sdlm' else f'lr {flag_text(config.learning_rate)}')
  title = (f'{config.experiment}, {config.num_seeds} seed(s), batch {config.batch_size}, '
           f'{steps_by}, {config.sampling}, {config.pixel_scale} pixels, '
           f'{"distorted, " * config.distortions}{config.total_steps(num_train)} steps')
  variants = {name: t.results for name, t in trained.items()}
  results = dict(experiment=config.experiment, config=config.to_json(),
                 device=environment.device_description(), versions=environment.versions(),
                 models=[dict(config.model(m)[0], seed=config.model(m)[1])
                         for m in range(config.num_models)],
                 variants=variants)
  window = SMOOTHING if config.batch_size == 1 else 1
  figures = {
      LOSS_FIGURE: lambda path: plots.loss_curves(
          {v: t.step_losses for v, t in trained.items()}, path, title, window=window),
      ACCURACY_FIGURE: lambda path: plots.accuracy_curves(
          {v: t.test_accuracy for v, t in trained.items()}, path, title)}
  rows = None
  if len(config.grid) > 1:
    rows = sweeps.summarize(variants, config)
    table, table_file = sweeps.table(rows, config), TABLE_FILES[1]
    results.update(sweep=rows, sweep_table=table)
    swept = next(iter(config.grid[0]))
    figures[SWEEP_FIGURE] = lambda path: plots.sweep_curves(rows, swept, path, title)
  else:
    seeds = list(range(config.seed, config.seed + config.num_seeds))
    table, table_file = stats.variance_table(variants, seeds), TABLE_FILES[0]
    summaries = {v: {key: stats.summary(r[key]) for key, _, _ in stats.TABLE_METRICS}
                 for v, r in variants.items()}
    if len(variants) == 2:
      summaries['difference'] = stats.welch(*(r['test_accuracy'] for r in variants.values()))
    results.update(statistics=summaries, variance_table=table)
  shown_models = {v: _shown_models(config, rows, v) for v in trained}
  results['shown_models'] = {v: list(models) for v, models in shown_models.items()}
  shown = {v: Shown(jax.tree.map(lambda p, m=models: p[m.start:m.stop], trained[v].params),
                    tuple(config.describe_model(m) for m in models),
                    trained[v].test_accuracy[models.start:models.stop],
                    trained[v].train_accuracy[models.start:models.stop])
           for v, models in shown_models.items()}
  shown_title = title + (', ' + ' / '.join(
      f'{v} at {describe_point(rows[m.start // config.num_seeds]["point"])}'
      for v, m in shown_models.items()) if rows else '')
  figures.update(_result_figures(config, task, trained, shown_models, test_split, shown_title))
  figures.update(task.figures(shown, train_split, shown_title))
  assert set(figures) <= set(file_names(task)), 'a figure is missing from file_names'
  log(table)
  if not on_disk:
    return results
  files.write_json(workdir / RESULTS_FILE, results)
  files.write_text(workdir / table_file, table + '\n')
  for name, draw in figures.items():
    draw(workdir / name)
  files.write_text(workdir / REPORT_FILE, _report(results, table, figures, command, title))
  log('results: ' + ', '.join(str(workdir / name) for name in
                               (RESULTS_FILE, table_file, *figures, REPORT_FILE)))
  return results


def _shown_models(config: Config, rows: list[dict[str, Any]] | None, variant: str) -> range:
  """The models a variant's pictures show: the seeds of its best grid point by mean test
  accuracy (the only point when nothing is swept)."""
  g = rows.index(sweeps.best(rows, variant)) if rows else 0
  return range(g * config.num_seeds, (g + 1) * config.num_seeds)


def _result_figures(config: Config, task: ModuleType, trained: Mapping[str, Any],
                    shown_models: Mapping[str, range], test_split: data.Split,
                    title: str) -> dict[str, Callable[[Path], Any]]:
  """confusion.png (summed over the shown seeds) and misclassified.png (the test images the
  first shown model gets wrong, up to MISCLASSIFIED_SHOWN per variant)."""
  names = task.CLASS_NAMES
  confusion = {f'{v}: {len(m)} seed(s) summed': np.sum(
      [trained[v].results['confusion'][i] for i in m], axis=0) for v, m in shown_models.items()}
  blocks = {}
  for v, m in shown_models.items():
    true_class = np.asarray(
        losses.OBJECTIVES[task.objective(v)].label_class(test_split.labels))
    predicted = trained[v].predictions[m[0]]
    wrong = np.flatnonzero(predicted != true_class)
    shown = wrong[:MISCLASSIFIED_SHOWN]
    heading = (f'{v}, {config.describe_model(m[0])}: {len(wrong)} wrong'
               + (f', the first {MISCLASSIFIED_SHOWN}' if len(wrong) > MISCLASSIFIED_SHOWN else ''))
    blocks[heading] = (test_split.images[shown, :, :, 0],
                       [f'{names[true_class[i]]}\u2192{names[predicted[i]]}' for i in shown])
  wrong_title = f'Test images got wrong (true\u2192predicted): {title}'
  return {
      CONFUSION_FIGURE: lambda path: plots.matrices(
          confusion, path, f'Confusion on the test set: {title}', 'predicted', 'true', names,
          names, 'd', log=True),
      MISCLASSIFIED_FIGURE: lambda path: plots.mosaic(blocks, path, wrong_title),
  }


def _report(results: Mapping[str, Any], table: str, figures: Mapping[str, Any], command: str,
            title: str) -> str:
  """report.md: what was run and how to run it again, the table, and every figure."""
  variants = results['variants']
  timing = '; '.join(f'{v}: {r["train_time_s"]:.1f} s training, {r["eval_time_s"]:.1f} s '
                     f'evaluating, {r["compile_time_s"]:.1f} s compiling'
                     for v, r in variants.items())
  settings = '\n'.join(f'| {k} | `{v}` |' for k, v in results['config'].items())
  lines = [f'# {title}', '']
  if command:
    lines += ['Reproduce (a new workdir each time; `--workdir=DIR` to choose it):', '',
              f'```\n{command}\n```', '']
  lines += [f'Device: {results["device"]}; ' + ', '.join(
      f'{k} {v}' for k, v in results['versions'].items()) + '.', '', f'Time: {timing}.', '',
            '## Results', '', table, '', '## Figures', '']
  lines += [f'### {name}\n\n![{name}]({name})\n' for name in figures]
  lines += ['## Configuration', '', '| setting | value |', '|---|---|', settings, '']
  return '\n'.join(lines)
