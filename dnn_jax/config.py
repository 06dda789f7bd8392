"""Every setting of a run, declared once in `Config`: type, default, help, check, whether it is
part of the run's identity, and whether a list of values sweeps it. The flags, the saved
config.json, the training spec and the tests' configs are all derived from it; each
experiment (a file in experiments/, read by `dnn_jax.catalog`) sets some of them by name.
The choices of a setting are declared in the module that implements them.

A run trains `num_models` models on one models axis: every point of the grid of swept values
times every seed, grid-major (`Config.model`).
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from dnn_jax.core import data, kernels, models, platform, training
from dnn_jax.errors import ConfigError


class Check(NamedTuple):
  accepts: Callable[[Any], bool]
  message: str


POSITIVE = Check(lambda v: v > 0, 'must be positive')
NON_NEGATIVE = Check(lambda v: v >= 0, 'must be >= 0')


def _in_float32(value: float) -> bool:
  with np.errstate(over='ignore'):
    return 0 < np.float32(value) < np.inf


# A value the training step reads as float32: positive there, neither rounded to 0 nor to inf.
POSITIVE_FLOAT32 = Check(_in_float32, 'must be positive and finite in float32 (the training '
                         'dtype): 1.4e-45 to 3.4e+38')
# What a setting of each declared type accepts (booleans are not numbers here), and its name.
_TYPES = {'int': ((numbers.Integral,), int, 'a whole number'),
          'float': ((numbers.Real,), float, 'a number'),
          'str': ((str,), str, 'a text'),
          'bool': ((bool, np.bool_), bool, 'True or False')}
AUTO = 'auto'  # kernels: chosen per platform
SEED_RANGE = (-2**31, 2**31)  # seeds are int32 on the device: seed + num_seeds must fit


def setting(help: str, default: Any = dataclasses.MISSING, *, choices: tuple[str, ...] = (),
            check: Check | None = None, identity: bool = True, sweep: bool = False) -> Any:
  """A field of Config. No `default`: each experiment sets it. `identity=False`: the setting
  changes speed or location, not the numbers, so it may differ when a run resumes.
  `sweep=True`: a scalar that changes no shape, so a tuple of values trains one model per
  value (the training step reads it from `TrainState.hyper`, a traced value)."""
  return dataclasses.field(default=default, metadata=dict(
      help=help, choices=choices, check=check, identity=identity, sweep=sweep))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
  """One run's settings. The experiment, its task and the variants are set through
  `dnn_jax.catalog.make_config`, which also applies the experiment's values."""
  experiment: str = setting('Which experiment to run: a file of experiments/ (its name), or the '
                            'path of an experiment file of your own.')
  task: str = setting('What the experiment trains (dnn_jax/tasks/): set by its file.')
  variants: tuple[str, ...] = setting('Variants trained side by side on the same data order.')
  epochs: int = setting('Passes over the training set.', check=POSITIVE)
  steps: int = setting('Total SGD steps instead of --epochs (the last epoch may be partial); '
                       '0: from --epochs.', 0, check=NON_NEGATIVE)
  batch_size: int = setting('Examples per SGD step; a last partial batch of an epoch is dropped.',
                            check=POSITIVE)
  learning_rate: float | tuple[float, ...] = setting(
      'Learning rate; with --optimizer=sdlm the eta of the first passes, which the paper\'s '
      'schedule lowers after.', check=POSITIVE_FLOAT32, sweep=True)
  optimizer: str = setting('sgd: plain SGD (the course\'s); sdlm: the 1998 paper\'s stochastic '
                           'diagonal Levenberg-Marquardt, a step per parameter from its '
                           'curvature.', 'sgd', choices=training.OPTIMIZERS)
  sdlm_mu: float | tuple[float, ...] = setting(
      "With --optimizer=sdlm, mu of each step eta / (mu + h_kk): the largest step of a "
      "parameter of little curvature is eta / mu (the paper's 0.02).", 0.02,
      check=POSITIVE_FLOAT32, sweep=True)
  distortions: bool = setting('Train on random affine distortions of each example, drawn anew '
                              'each step (the 1998 paper\'s 0.8% result).', False)
  pixel_scale: str = setting('unit: pixels in [0, 1] as torchvision ToTensor; raw: 0..255; '
                             "lecun: the 1998 paper's -0.1 (background) to 1.175 (ink).",
                             choices=tuple(data.PIXEL_RANGES))
  sampling: str = setting('shuffle: a new permutation each epoch; with_replacement: uniform '
                          'draws.', choices=training.SAMPLINGS)
  bias: bool = setting('Give the linear classifier a bias.', False)
  initializer: str = setting("torch: PyTorch's default uniform init (the course's); flax: "
                             'lecun_normal weights, zero biases; lecun1998: the paper\'s '
                             'U(-2.4/F, 2.4/F), F the fan-in.', 'torch', choices=models.INITS)
  seed: int = setting('Random seed; seed i of a multi-seed run is --seed + i.', 0)
  num_seeds: int = setting('Seeds: models trained at once, each with its own initialisation and '
                           'data order (for every swept value).', 1, check=POSITIVE)
  train_examples: int = setting('Train on the first N training examples; 0: all.', 0,
                                check=NON_NEGATIVE)
  eval_batch_size: int = setting('Examples per evaluation batch.', 100, check=POSITIVE,
                                 identity=False)
  eval_every_epochs: int = setting('Evaluate every model on the test set every N epochs, and '
                                   'after the last one; 0: auto, every epoch where that costs '
                                   "little beside the epoch's training, else less often.", 0,
                                   check=NON_NEGATIVE, identity=False)
  precision: str = setting('float32 matmuls and convolutions at full precision (every claim of '
                           'bit-identity is made at float32), or faster on NVIDIA GPUs at tf32 '
                           '(TensorFloat-32 tensor cores, 10-bit mantissas); the same on CPU.',
                           'float32', choices=tuple(platform.PRECISIONS))
  deterministic: bool = setting('On GPUs, deterministic execution and one compiled program per '
                                'workdir (XLA\'s deterministic ops, a compilation cache in the '
                                'workdir), so that a resumed or evaluated run repeats training '
                                'bit for bit; False: faster, the same to float rounding.', True,
                                identity=False)
  kernels: str = setting("LeNet's conv/tanh/pool ops: cpu (hand-written, fast on CPU) or stock "
                         "(XLA's, cuDNN on GPU); auto: by platform.", AUTO,
                         choices=(AUTO, *kernels.KERNELS), identity=False)
  micro_batches: int = setting('Differentiate each batch as N slices and sum their gradients (the '
                               'same numbers up to float rounding, faster on CPU); 0: auto, by '
                               'platform.', 0, check=NON_NEGATIVE, identity=False)
  models_per_chunk: int = setting('Models trained side by side (vmapped); the chunks follow one '
                                  'another in the same program. 0: auto (on CPU by the size of '
                                  'a step, elsewhere all models).', 0, check=NON_NEGATIVE,
                                  identity=False)
  mnist_dir: str = setting('Folder with the 4 MNIST IDX .gz files (default: the ones shipped '
                           'in data/mnist); empty: tensorflow-datasets.',
                           str(data.DEFAULT_MNIST_DIR), identity=False)
  tfds_data_dir: str = setting("TFDS data_dir (with --mnist_dir empty); empty: TFDS's default.",
                               '', identity=False)
  checkpoint_every_steps: int = setting('Also checkpoint every N steps within an epoch; 0: at '
                                        'epoch ends only.', 0, check=NON_NEGATIVE, identity=False)
  keep_checkpoints: int = setting('How many of the newest checkpoints to keep.', 3,
                                  check=POSITIVE, identity=False)

  def __post_init__(self):
    for field in dataclasses.fields(self):
      object.__setattr__(self, field.name, _typed(field, getattr(self, field.name)))
      value, rules = getattr(self, field.name), field.metadata
      if rules['choices'] and value not in rules['choices']:
        raise ConfigError(f'--{field.name}={value}: accepted: {", ".join(rules["choices"])}')
      check, swept = rules['check'], rules['sweep'] and isinstance(value, tuple)
      if swept and len(value) < 2:
        raise ConfigError(f'--{field.name}={flag_text(value)}: a sweep needs two values or more')
      for position, item in enumerate(value if swept else (value,), 1):
        if check and not check.accepts(item):
          which = f'item {position} ({item})' if swept else f'--{field.name}'
          raise ConfigError(f'--{field.name}={flag_text(value)}: {which} {check.message}')
    low, high = SEED_RANGE
    if not low <= self.seed <= high - self.num_seeds:
      raise ConfigError(f'--seed={self.seed} with --num_seeds={self.num_seeds}: accepted: '
                        f'{low}..{high - self.num_seeds} (seeds are int32 on the device)')

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, values: Mapping[str, Any]) -> Config:
    """The Config that `to_json` saved (fields it does not know are left out)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v
                  for k, v in values.items() if k in names})

  @property
  def grid(self) -> tuple[dict[str, float], ...]:
    """Every combination of the swept settings' values (one empty point when nothing is
    swept), in the order of the declarations and of each list."""
    swept = {name: getattr(self, name) for name in sweep_fields()
             if isinstance(getattr(self, name), tuple)}
    return tuple(dict(zip(swept, values)) for values in itertools.product(*swept.values()))

  @property
  def num_models(self) -> int:
    return len(self.grid) * self.num_seeds

  def model(self, index: int) -> tuple[dict[str, float], int]:
    """(every sweepable setting's value, seed) of model `index` on the models axis."""
    point, seed = self.grid[index // self.num_seeds], self.seed + index % self.num_seeds
    return {name: point.get(name, getattr(self, name)) for name in sweep_fields()}, seed

  def hyper(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """Each of the models `indices`' value of every sweepable setting, as float32."""
    return {name: np.array([self.model(int(i))[0][name] for i in indices], np.float32)
            for name in sweep_fields()}

  def describe_model(self, index: int) -> str:
    """'seed 3', or for a sweep 'learning_rate 0.05, seed 3'."""
    values, seed = self.model(index)
    point = describe_point({name: values[name] for name in self.grid[0]})
    return f'{point}, seed {seed}' if point else f'seed {seed}'

  def steps_per_epoch(self, num_train: int) -> int:
    """Full batches per pass over `num_train` examples (a last partial batch is dropped)."""
    if self.batch_size > num_train:
      raise ConfigError(f'--batch_size={self.batch_size} is larger than the training set '
                        f'({num_train} examples); accepted: 1..{num_train}')
    return num_train // self.batch_size

  def total_steps(self, num_train: int) -> int:
    return self.steps or self.epochs * self.steps_per_epoch(num_train)


def _typed(field: dataclasses.Field, value: Any) -> Any:
  """`value` as the plain Python type the setting declares (a sweep: a tuple of them), or a
  ConfigError naming it: the same rule for the flags, the API and config.json."""
  if field.name == 'variants':
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
      return value
    raise ConfigError(f'variants={value!r}: accepted: a tuple of variant names')
  kind = field.type.split(' ')[0]
  classes, convert, accepted = _TYPES[kind]
  if field.metadata['sweep'] and isinstance(value, (tuple, list)):
    return tuple(_typed_item(field.name, value, v, classes, convert, accepted) for v in value)
  return _typed_item(field.name, value, value, classes, convert, accepted)


def _typed_item(name: str, whole: Any, value: Any, classes, convert, accepted: str) -> Any:
  is_bool = isinstance(value, (bool, np.bool_))
  if not isinstance(value, classes) or (is_bool and convert is not bool):
    sweep = ', or a list of them to sweep' if whole is not value or name in sweep_fields() else ''
    raise ConfigError(f'--{name}={flag_text(whole)}: accepted: {accepted}{sweep} (not '
                      f'{type(value).__name__} {value!r})')
  return convert(value)


def sweep_fields() -> tuple[str, ...]:
  """Settings that a list of values sweeps."""
  return tuple(f.name for f in dataclasses.fields(Config) if f.metadata['sweep'])


def describe_point(point: Mapping[str, float]) -> str:
  """A grid point as text: 'learning_rate 0.05' ('' for the one point of a run without sweep)."""
  return ', '.join(f'{name} {value:g}' for name, value in point.items())


def flag_text(value: Any) -> str:
  """A setting's value as its flag takes it: a sweep's values joined by commas."""
  return ','.join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def identity_fields() -> tuple[str, ...]:
  """Settings that make a run what it is: a resumed or evaluated run must agree on them."""
  return tuple(f.name for f in dataclasses.fields(Config) if f.metadata['identity'])
