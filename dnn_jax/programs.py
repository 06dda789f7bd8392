"""A variant's training program: its spec, seed keys and abstract state (`Setup`, nothing
computed), then its compiled epoch with the data placed and the state initialised (`Program`)."""

from __future__ import annotations

import dataclasses
import time
from types import ModuleType

import jax

from dnn_jax import checkpoints, data, placement, train
from dnn_jax.config import Config


@dataclasses.dataclass(frozen=True)
class Setup:
  spec: train.TrainSpec
  init_keys: jax.Array
  data_keys: jax.Array
  abstract_state: train.TrainState
  placement: placement.Placement

  def untrained(self) -> checkpoints.Training:
    """The variant before its first step (the state as shapes only): the target that a
    checkpoint restores into."""
    history = checkpoints.History.empty(self.placement.padded_seeds, self.spec)
    return checkpoints.Training(self.abstract_state, self.data_keys, history)


def make_spec(config: Config, experiment: ModuleType, variant: str,
              num_train: int) -> train.TrainSpec:
  return train.TrainSpec(config, experiment.make_model(config, variant),
                         experiment.objective(variant), config.steps_per_epoch(num_train),
                         config.total_steps(num_train))


def setup(config: Config, experiment: ModuleType, variant: str, num_train: int) -> Setup:
  where = placement.place(config.num_seeds)
  spec = make_spec(config, experiment, variant, num_train)
  init_keys, data_keys = jax.device_put(train.seed_keys(config.seed, where.padded_seeds),
                                        where.seeds)
  abstract_state = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=where.seeds),
      jax.eval_shape(train.init_seeds, init_keys, spec))
  return Setup(spec, init_keys, data_keys, abstract_state, where)


@dataclasses.dataclass(frozen=True)
class Program:
  setup: Setup
  epoch_fn: jax.stages.Compiled
  state: train.TrainState      # initial, on the devices
  images: jax.Array            # uint8, on the devices
  labels: jax.Array
  compile_time_s: float
  memory_estimate_bytes: int


def compile_program(config: Config, experiment: ModuleType, variant: str,
                    train_split: data.Split) -> Program:
  """Place the data, compile the seeds' epoch (checking it fits) and initialise the state."""
  ready = setup(config, experiment, variant, len(train_split.labels))
  images, labels = jax.device_put(tuple(train_split), ready.placement.replicated)
  keys = train.epoch_keys(ready.data_keys, 0)  # its own small compile is not the epoch's
  start = time.perf_counter()
  epoch_fn = train.train_epoch_seeds.lower(ready.abstract_state, keys, images, labels).compile()
  compile_time = time.perf_counter() - start
  memory = placement.check_memory(epoch_fn, config.num_seeds, ready.placement.padded_seeds)
  state = jax.device_put(train.init_seeds(ready.init_keys, ready.spec), ready.placement.seeds)
  return Program(ready, epoch_fn, state, images, labels, compile_time, memory)
