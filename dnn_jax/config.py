"""The run configuration: every flag value, resolved against the experiment's defaults."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping


class ConfigError(ValueError):
  """A flag value that cannot work; the message names the flag, the value and what works."""


@dataclasses.dataclass(frozen=True)
class Config:
  experiment: str
  variants: tuple[str, ...]   # c3 maps (lenet) or losses (linear) trained side by side
  epochs: int
  steps: int                  # total steps; 0: epochs * steps per epoch
  batch_size: int
  learning_rate: float
  pixel_scale: str
  sampling: str
  bias: bool
  initializer: str
  seed: int
  num_seeds: int
  train_examples: int         # first N training examples; 0: all
  eval_batch_size: int
  conv_impl: str
  mnist_dir: str
  tfds_data_dir: str
  checkpoint_every_steps: int = 0   # 0: checkpoint at the end of every epoch only
  keep_checkpoints: int = 3
  batch_parts: int = 1        # each batch as N slices differentiated apart (faster on CPU)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, values: Mapping[str, Any]) -> Config:
    """The Config that `to_json` saved."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if k == 'variants' else v for k, v in values.items() if k in fields})

  def steps_per_epoch(self, num_train: int) -> int:
    """Full batches per pass over `num_train` examples (a last partial batch is dropped)."""
    if self.batch_size > num_train:
      raise ConfigError(f'--batch_size={self.batch_size} is larger than the training set '
                        f'({num_train} examples); accepted: 1..{num_train}')
    return num_train // self.batch_size

  def total_steps(self, num_train: int) -> int:
    return self.steps or self.epochs * self.steps_per_epoch(num_train)

  def num_epochs(self, num_train: int) -> int:
    """Epochs run: --epochs, or as many (the last maybe partial) as --steps needs."""
    return math.ceil(self.total_steps(num_train) / self.steps_per_epoch(num_train))


def resolve(flag_values: Mapping[str, Any], defaults: Mapping[str, Any],
            variant_flag: str, variants: tuple[str, ...]) -> Config:
  """A Config from flag values (None: take the experiment's default).

  `variant_flag` names the flag choosing variants ('c3' or 'loss'); its value 'both'
  means every variant in `variants`.
  """
  values = {k: (defaults.get(k) if v is None else v) for k, v in flag_values.items()}
  choice = values.pop(variant_flag)
  values['variants'] = variants if choice == 'both' else (choice,)
  fields = {f.name for f in dataclasses.fields(Config)}
  return Config(**{k: v for k, v in values.items() if k in fields})
