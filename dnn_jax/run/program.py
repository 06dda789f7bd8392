"""A variant's compiled program: its spec, its models' keys, swept values and abstract state
(`Setup`: nothing computed), then its compiled epoch with the data placed and the state
initialised (`Program`); and the evaluation of its models on a placed split."""

from __future__ import annotations

import dataclasses
import functools
import time
from types import ModuleType

import flax.linen
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from dnn_jax.config import Config
from dnn_jax.core import data, evaluation, training
from dnn_jax.run import cluster, placement, progress
from dnn_jax.run.checkpoints import Snapshot
from dnn_jax.run.history import History

# Every model's epoch, each model done reported to the `progress` being watched.
train_epoch_over_models = training.over_models(training.train_epoch, (0, 0, None, None),
                                               model_done=progress.model_finished)


@dataclasses.dataclass(frozen=True)
class Setup:
  spec: training.TrainSpec
  init_keys: jax.Array
  data_keys: jax.Array
  hyper: dict[str, jax.Array]  # each model's value of every sweepable setting
  abstract_state: training.TrainState
  placement: placement.Placement

  def untrained(self) -> Snapshot:
    """The variant before its first step (the state as shapes only): the target that a
    checkpoint restores into."""
    history = History.empty(self.placement.padded_models, self.spec)
    return Snapshot(self.abstract_state, self.data_keys, history)


def make_spec(config: Config, model: flax.linen.Module, objective: str, steps_per_epoch: int,
              total_steps: int, models_per_chunk: int = 1) -> training.TrainSpec:
  """What the compiled step needs to know of `config`, and nothing else."""
  return training.TrainSpec(
      model=model, objective=objective, batch_size=config.batch_size,
      pixel_scale=config.pixel_scale, sampling=config.sampling,
      micro_batches=config.micro_batches, steps_per_epoch=steps_per_epoch,
      total_steps=total_steps,
      steps_per_call=min(config.checkpoint_every_steps or steps_per_epoch, steps_per_epoch),
      models_per_chunk=models_per_chunk, precision=config.precision,
      optimizer=config.optimizer, distort=config.distortions)


def setup(config: Config, task: ModuleType, variant: str, num_train: int) -> Setup:
  """Every model's keys and swept values, on the models axis; the spec with its chunk width."""
  where = placement.place(config.num_models)
  spec = make_spec(config, task.make_model(config, variant), task.objective(variant),
                   config.steps_per_epoch(num_train), config.total_steps(num_train))
  index = np.arange(where.padded_models) % config.num_models  # padding repeats real models
  init_keys, data_keys = (keys[index % config.num_seeds]
                          for keys in training.seed_keys(config.seed, config.num_seeds))
  hyper = config.hyper(index)
  spec = dataclasses.replace(spec, models_per_chunk=placement.chunk_width(
      config.models_per_chunk, where.per_device, lambda: _step_flops(spec, hyper)))
  init_keys, data_keys, hyper = placement.put((init_keys, data_keys, hyper), where.models)
  abstract_state = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=where.models),
      jax.eval_shape(training.init_models, init_keys, spec, hyper))
  return Setup(spec, init_keys, data_keys, hyper, abstract_state, where)


def step_flops(ready: Setup) -> float:
  """FLOPs of one model's training step, from XLA's cost analysis of the lowered step."""
  return _step_flops(ready.spec, ready.hyper)


def _step_flops(spec: training.TrainSpec, hyper: dict[str, np.ndarray]) -> float:
  one = jax.eval_shape(lambda key, hyper: training.init(key, spec, hyper), jax.random.key(0),
                       {name: values[0] for name, values in hyper.items()})
  batch = (jax.ShapeDtypeStruct((spec.batch_size, 28, 28, 1), np.uint8),
           jax.ShapeDtypeStruct((spec.batch_size,), np.int32))
  return jax.jit(training.train_step).lower(one, batch).cost_analysis()['flops']


@dataclasses.dataclass(frozen=True)
class Program:
  setup: Setup
  epoch_fn: jax.stages.Compiled
  state: training.TrainState      # initial, on the devices
  images: jax.Array               # uint8, on the devices
  labels: jax.Array
  compile_time_s: float
  memory_estimate_bytes: int


def compile_epoch(config: Config, ready: Setup, train_split: data.Split) -> Program:
  """Place the data, compile the models' epoch (checking it fits) and initialise the state."""
  images, labels = placement.put(tuple(train_split), ready.placement.replicated)
  keys = training.epoch_keys(ready.data_keys, 0)  # its own small compile is not the epoch's
  start = time.perf_counter()
  # The state comes out placed as it went in (else XLA may replicate what passes through, and
  # every later function of the state would compile again for the new placement).
  state_placement = jax.tree.map(lambda x: x.sharding, ready.abstract_state)
  epoch = placement.per_device(train_epoch_over_models, ready.placement.models.mesh)
  epoch_fn = jax.jit(epoch, donate_argnums=0,
                     out_shardings=(state_placement, ready.placement.models)).lower(
                         ready.abstract_state, keys, images, labels).compile()
  compile_time = time.perf_counter() - start
  memory = placement.check_memory(epoch_fn, config, ready.placement)
  state = jax.device_put(training.init_models(ready.init_keys, ready.spec, ready.hyper),
                         ready.placement.models)
  return Program(ready, epoch_fn, state, images, labels, compile_time, memory)


def place(split: data.Split, replicated: NamedSharding) -> tuple[jax.Array, jax.Array]:
  """A split's (images, labels) on the devices, one copy each, to evaluate on again and again."""
  return placement.put(tuple(split), replicated)


@functools.cache
def evaluate_models_on(mesh: Mesh, batch_size: int):
  """`evaluation.score` of every model, jitted for models sharded over `mesh`: each device
  evaluates its own. Compiled once per variant, and reused every epoch."""
  return jax.jit(placement.per_device(evaluation.score_over_models(batch_size), mesh))


def evaluate_models(state: training.TrainState, placed: tuple[jax.Array, jax.Array],
                    num_models: int, batch_size: int) -> evaluation.Scores:
  """Every model's `Scores` on a `place`d split, on the host, padding models dropped."""
  evaluate_on = evaluate_models_on(placed[0].sharding.mesh, batch_size)
  return evaluation.Scores(*(x[:num_models] for x in cluster.host(evaluate_on(state, *placed))))
