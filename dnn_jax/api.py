"""The Python API, for notebooks and scripts; the command line (main.py) is a thin layer over it.

    import dnn_jax
    r = dnn_jax.train('lenet', c3='both', num_seeds=2, train_examples=6000, epochs=1)
    print(r.table)

Settings are the command line's flags as keyword arguments (a list sweeps); a bad one raises
`ConfigError` with the line the command line prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import jax

from dnn_jax import catalog, limits, tasks
from dnn_jax.config import Config
from dnn_jax.core import data, platform
from dnn_jax.errors import ConfigError, ResourceLimit
from dnn_jax.results import scores, write
from dnn_jax.run import driver, workdirs

__all__ = ['ConfigError', 'Results', 'check_theory', 'evaluate', 'experiments', 'train']


class PNG(bytes):
  """A PNG image that Jupyter shows inline."""

  def _repr_png_(self) -> bytes:
    return bytes(self)


@dataclasses.dataclass(frozen=True)
class Results:
  """A trained (or evaluated) run: its workdir, its Config, and what results.json holds."""
  workdir: Path
  config: Config
  data: dict[str, Any]

  @classmethod
  def load(cls, workdir: str | Path) -> Results:
    """The results a finished run left in `workdir`."""
    workdir = Path(workdir)
    path = workdir / write.RESULTS_FILE
    if not path.exists():
      raise ConfigError(f'{workdir} holds no finished run ({path.name} not found)')
    return cls(workdir, workdirs.load_config(workdir), json.loads(path.read_text()))

  @property
  def table(self) -> str:
    """The run's table in markdown: the variance table, or a sweep's table."""
    return self.data.get('sweep_table') or self.data['variance_table']

  def to_markdown(self) -> str:
    return self.table

  @property
  def rows(self) -> list[dict[str, Any]]:
    """One row per variant and model, as plain data: the variant, the model's swept values
    and seed, and its test accuracy, test loss, and whether it collapsed or diverged."""
    return [dict(variant=variant, **model, **{key: result[key][m] for key in scores.PER_MODEL})
            for variant, result in self.data['variants'].items()
            for m, model in enumerate(self.data['models'])]

  def accuracy(self, variant: str | None = None) -> list[float]:
    """Each model's test accuracy, of `variant` (default: the first)."""
    variants = self.data['variants']
    return list(variants[variant or next(iter(variants))]['test_accuracy'])

  @property
  def figures(self) -> list[str]:
    return sorted(p.name for p in self.workdir.glob('*.png'))

  def figure(self, name: str) -> PNG:
    """A figure of the run (`figures` lists them), shown inline in a notebook."""
    path = self.workdir / name
    if not path.exists():
      raise ConfigError(f'{name}: this run drew no such figure; it drew: '
                        f'{", ".join(self.figures)}')
    return PNG(path.read_bytes())

  def __getattr__(self, name: str) -> Callable[[], PNG]:
    """`plot_<figure>()`: the figure <figure>.png, e.g. `plot_accuracy_curve()`."""
    if name.startswith('plot_'):
      return lambda: self.figure(name[len('plot_'):] + '.png')
    raise AttributeError(name)

  def __dir__(self):
    return [*super().__dir__(), *(f'plot_{Path(name).stem}' for name in self.figures)]


def _start(settings: dict[str, Any], log: Callable[[str], None] | None) -> None:
  """Before JAX starts: the process limits, and deterministic GPU execution or not (where JAX
  has started already, on a GPU, a warning: the run's numerics record what is in force)."""
  too_low = limits.check()
  if too_low:
    raise ResourceLimit(too_low)
  wanted = settings.get('deterministic', True)
  if not platform.set_deterministic(bool(wanted)) and jax.default_backend() == 'gpu':
    (log or print)(f'WARNING: deterministic={wanted} cannot take effect: JAX started in this '
                   f'process before, with deterministic={platform.deterministic()} (set it in '
                   'the first call of a process)')


def experiments() -> dict[str, dict[str, Any]]:
  """The experiments of experiments/, by name: the task each trains and the settings it
  fixes."""
  return {name: dict(task=e.task, **e.settings)
          for name, e in ((n, catalog.load(n)) for n in catalog.names())}


def train(experiment: str = catalog.DEFAULT, protocol: str | None = None, *,
          workdir: str | Path | None = None, overwrite: bool = False, restart: bool = False,
          log: Callable[[str], None] | None = print, command: str | None = None,
          resume_command: str = '', **settings: Any) -> Results:
  """Train (or, in a workdir that holds the same run, resume) and test `experiment` under
  `protocol` with `settings` (the command line's flags: `c3='both'`, `num_seeds=8`,
  `learning_rate=[0.05, 0.1]`...); writes the run's files to `workdir` (default: a new
  folder under runs/). `overwrite`: start afresh in a workdir that holds another run (its
  files are removed first); `restart`: train from step 0 a run whose checkpoints were all
  found damaged. `command`: the command report.md gives to reproduce the run (default: this
  call)."""
  _start(settings, log)
  run_config = catalog.make_config(experiment, protocol, **settings)
  workdir = workdir or workdirs.default_path(experiment)
  if command is None:
    arguments = [repr(experiment), *([repr(protocol)] if protocol else []),
                 *(f'{k}={v!r}' for k, v in settings.items())]
    command = f'import dnn_jax; dnn_jax.train({", ".join(arguments)})'
  results = driver.train_and_evaluate(run_config, workdir, log or (lambda line: None),
                                      overwrite=overwrite, restart=restart,
                                      resume_command=resume_command,
                                      command=command)
  return Results(Path(workdir), run_config, results)


def evaluate(workdir: str | Path, step: int | None = None,
             log: Callable[[str], None] | None = print, **given: Any) -> dict[str, Any]:
  """Restore the run in `workdir` (its latest checkpoint, or `step`'s) and test it: its test
  results per variant. `given` settings must agree with the run's, except those that change
  speed or location only (e.g. `eval_batch_size`, `mnist_dir`), which replace the saved ones."""
  _start(given, log)
  workdir = Path(workdir)
  saved = workdirs.load_config(workdir)
  current = catalog.make_config(given.pop('experiment', saved.experiment),
                                given.pop('protocol', None), **given)
  variant_settings = {m.VARIANT_SETTING for m in tasks.TRAINING.values()}
  replaced = {name for name in given if name not in variant_settings}
  if variant_settings & set(given):
    replaced.add('variants')
  replaced |= {f.name for f in dataclasses.fields(Config) if not f.metadata['identity']}
  run_config = dataclasses.replace(saved, **{name: getattr(current, name) for name in replaced})
  return driver.evaluate_checkpoints(run_config, workdir, step, log or (lambda line: None))


def check_theory(workdir: str | Path = 'runs/theory', seed: int = 0,
                 mnist_dir: str = str(data.DEFAULT_MNIST_DIR), tfds_data_dir: str = '',
                 log: Callable[[str], None] | None = print) -> bool:
  """Check the course's theory results against JAX; print the report and write theory.md
  and filters.png to `workdir`. True if every check passes."""
  return tasks.TASKS['theory'].run(mnist_dir, tfds_data_dir, workdir, seed,
                                   log or (lambda line: None))
