"""Pure training functions: `init`, `train_step`, `train_epoch`, and the models' keys.

What is static about training lives in a `TrainSpec` (the model, the objective, the batch and
the epoch's shape), a hashable field of `TrainState` that is not a pytree node: the state's
tree structure fixes the compiled program, so each variant compiles once and every epoch
reuses it. What a sweep varies (the learning rate) is traced, in `TrainState.hyper`. Datasets
are arguments of the jitted functions, never closed over, and stay uint8 on the device.

The `*_models` functions are the same functions over a leading models axis of the state and
keys (`over_models`): chunks of `models_per_chunk` models vmapped, one after another.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct
from jax import lax

from dnn_jax.core import data, distortions, losses, platform, sdlm

SAMPLINGS = ('shuffle', 'with_replacement')  # a new permutation each epoch; uniform draws
OPTIMIZERS = ('sgd', 'sdlm')  # plain SGD; stochastic diagonal Levenberg-Marquardt (sdlm.py)
_DISTORTION_STREAM = 1  # folded into an epoch's key for its distortions' keys


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """Everything static about training one model: hashable, so jit can key on it."""
  model: nn.Module
  objective: str            # a key of losses.OBJECTIVES
  batch_size: int
  pixel_scale: str          # a key of data.PIXEL_RANGES
  sampling: str             # one of SAMPLINGS
  micro_batches: int        # slices of a batch differentiated apart (see loss_and_grads)
  steps_per_epoch: int      # batches drawn per epoch
  total_steps: int          # steps past this are skipped (a last, partial epoch)
  steps_per_call: int       # steps per call of `train_epoch`: the epoch, or a share of it
  models_per_chunk: int = 1  # models vmapped side by side (see over_models)
  precision: str = 'float32'  # a key of platform.PRECISIONS: of the matmuls and convolutions
  optimizer: str = 'sgd'      # one of OPTIMIZERS
  distort: bool = False       # train on randomly distorted examples (distortions.py)

  @property
  def calls_per_epoch(self) -> int:
    return -(-self.steps_per_epoch // self.steps_per_call)

  @property
  def num_epochs(self) -> int:
    """Epochs run: as many (the last maybe partial) as `total_steps` needs."""
    return -(-self.total_steps // self.steps_per_epoch)

  def transformation(self, hyper: dict[str, jax.Array]) -> optax.GradientTransformation:
    """The optimizer at the model's own (traced) learning rate: SGD, or SDLM with the
    learning rate as the eta of its first passes."""
    if self.optimizer == 'sdlm':
      return sdlm.sdlm(hyper['learning_rate'], self.steps_per_epoch, hyper['sdlm_mu'])
    return optax.sgd(hyper['learning_rate'])

  def preprocess(self, images: jax.Array) -> jax.Array:
    """uint8 images -> float32, scaled on the device inside the step."""
    return data.scale_pixels(images, self.pixel_scale)

  def apply(self, params: Any, images: jax.Array, **options) -> jax.Array:
    """The model's outputs for `images` of pixels 0..255, at the spec's matmul precision;
    `options` go to the model (e.g. head=False)."""
    with jax.default_matmul_precision(platform.PRECISIONS[self.precision]):
      return self.model.apply({'params': params}, self.preprocess(images), **options)


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: optax.OptState
  hyper: dict[str, jax.Array]  # this model's value of every sweepable setting (float32)
  spec: TrainSpec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: TrainSpec, hyper: dict[str, jax.Array]) -> TrainState:
  """A model's initial state; `hyper`: its value of every sweepable setting."""
  hyper = {name: jnp.asarray(value, jnp.float32) for name, value in hyper.items()}
  params = spec.model.init(key, jnp.zeros((1, 28, 28, 1), jnp.float32))['params']
  return TrainState(jnp.zeros((), jnp.int32), params, spec.transformation(hyper).init(params),
                    hyper, spec)


def default_micro_batches() -> int:
  """5 on CPU (the fastest for LeNet there, benchmarks/README.md), 1 elsewhere (an accelerator
  wants the whole batch at once)."""
  return 1 if platform.on_accelerator() else 5


def _loss(params, spec: TrainSpec, images: jax.Array, labels: jax.Array) -> jax.Array:
  """The summed loss over `images` divided by the batch size: their share of the batch mean."""
  outputs = spec.apply(params, images)
  return jnp.sum(losses.OBJECTIVES[spec.objective].loss(outputs, labels)) / spec.batch_size


def loss_and_grads(params, spec: TrainSpec, images: jax.Array,
                   labels: jax.Array) -> tuple[jax.Array, Any]:
  """The batch's mean loss and its gradient, summed over `micro_batches` slices of the batch,
  each differentiated on its own: the same numbers up to float rounding (tested), and nothing
  joins the slices before the sum, so XLA's CPU runtime runs them side by side."""
  parts = min(spec.micro_batches, len(images))
  slices = zip(jnp.array_split(images, parts), jnp.array_split(labels, parts))
  results = [jax.value_and_grad(_loss)(params, spec, x, y) for x, y in slices]
  return jax.tree.map(lambda *per_slice: sum(per_slice), *results)


def train_step(state: TrainState, batch: tuple[jax.Array, jax.Array]) -> tuple[TrainState, jax.Array]:
  """One step on `batch` = (images (B, 28, 28, 1) of pixels 0..255, uint8 or float; labels
  (B,)); returns the loss."""
  images, labels = batch
  chex.assert_shape(images, (state.spec.batch_size, 28, 28, 1))
  loss, grads = loss_and_grads(state.params, state.spec, images, labels)
  tx = state.spec.transformation(state.hyper)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), loss


def refresh_curvature(state: TrainState, images: jax.Array, labels: jax.Array) -> TrainState:
  """SDLM's h_kk re-estimated on `images` (before a pass), from the second derivatives of the
  loss in the outputs of the model's layers before its `head` (the paper's RBF layer)."""
  spec = state.spec
  objective = losses.OBJECTIVES[spec.objective].loss
  head = spec.model.head
  features = functools.partial(spec.apply, head=False, curvature=True)
  loss = lambda x, label: objective(head(x[None]), label[None])[0]
  estimate = sdlm.curvature(features, loss, state.params, images, labels)
  return state.replace(opt_state=sdlm.with_curvature(state.opt_state, estimate))


def epoch_indices(key: jax.Array, spec: TrainSpec, num_examples: int) -> jax.Array:
  """(steps_per_epoch, batch_size) example indices: a permutation, or uniform draws."""
  shape = (spec.steps_per_epoch, spec.batch_size)
  if spec.sampling == 'shuffle':
    permutation = jax.random.permutation(key, num_examples)
    return permutation[:spec.steps_per_epoch * spec.batch_size].reshape(shape)
  return jax.random.randint(key, shape, 0, num_examples)


def train_epoch(state: TrainState, key: jax.Array, images: jax.Array,
                labels: jax.Array) -> tuple[TrainState, jax.Array]:
  """The current epoch's next `spec.steps_per_call` steps (by default the whole epoch) as
  one `lax.scan`; returns the state and the per-step losses.

  `key` is the epoch's data-order key (and, folded, its distortions'); the position in the
  epoch is `state.step` modulo the epoch length, so a state saved between calls resumes
  exactly. Steps past the end of the epoch or past `total_steps` are computed but leave the
  state unchanged. SDLM re-estimates its curvature at the start of the epoch, on the first
  `sdlm.CURVATURE_EXAMPLES` examples of the epoch's order.
  """
  spec = state.spec
  n = spec.steps_per_call
  indices = epoch_indices(key, spec, images.shape[0])
  start = state.step % spec.steps_per_epoch
  if spec.optimizer == 'sdlm':
    sample = indices.reshape(-1)[:sdlm.CURVATURE_EXAMPLES]
    refresh = lambda s: refresh_curvature(s, images[sample], labels[sample])
    if n == spec.steps_per_epoch:  # every call starts a pass
      state = refresh(state)
    else:  # a pass cut into calls: the same to float rounding (XLA fuses the two differently)
      state = lax.cond(start == 0, refresh, lambda s: s, state)
  distortion_key = jax.random.fold_in(key, _DISTORTION_STREAM) if spec.distort else None
  padded = spec.calls_per_epoch * n
  if n < spec.steps_per_epoch:
    indices = jnp.pad(indices, ((0, padded - spec.steps_per_epoch), (0, 0)))
    indices = lax.dynamic_slice_in_dim(indices, start, n)
  # Static: only runs with a partial last epoch or chunks that overrun the epoch mask steps.
  masked = padded != spec.steps_per_epoch or spec.total_steps % spec.steps_per_epoch != 0

  def body(state, xs):
    batch_indices, position = xs
    batch_images = images[batch_indices]
    if spec.distort:
      batch_images = distortions.distort(jax.random.fold_in(distortion_key, position),
                                         batch_images)
    new_state, loss = train_step(state, (batch_images, labels[batch_indices]))
    if masked:
      active = (position < spec.steps_per_epoch) & (state.step < spec.total_steps)
      new_state = jax.tree.map(lambda a, b: jnp.where(active, a, b), new_state, state)
    return new_state, loss

  return lax.scan(body, state, (indices, start + jnp.arange(n)))


def seed_keys(seed: int, num_seeds: int) -> tuple[jax.Array, jax.Array]:
  """(init keys, data keys) of seeds seed .. seed + num_seeds - 1: seed i of a run is the
  run of `--seed=seed+i`, and every variant shares the data keys."""
  keys = jax.vmap(jax.random.split)(jax.vmap(jax.random.key)(jnp.arange(seed, seed + num_seeds)))
  return keys[:, 0], keys[:, 1]


def epoch_keys(data_keys: jax.Array, epoch: int) -> jax.Array:
  """Each model's data-order key for `epoch`: a pure function of its seed and the epoch."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(data_keys, epoch)


def over_models(fn, in_axes: tuple[int | None, ...],
                model_done: Callable[..., None] | None = None):
  """`fn` over the leading models axis of the arguments with `in_axes` 0; the first argument
  is a TrainState, whose `spec.models_per_chunk` models at a time are vmapped, the chunks
  following one another (`lax.map`; each model done calls the host's `model_done`, if given,
  through `jax.debug.callback`). A single model is called as it is (XLA's CPU backend runs
  size-1 batched matmuls slower). Either way the result has the leading models axis."""
  def mapped(*args):
    mapped_args = [a for a, axis in zip(args, in_axes) if axis == 0]
    num_models = jax.tree.leaves(mapped_args)[0].shape[0]

    def one(per_model):
      per_model = iter(per_model)
      result = fn(*[next(per_model) if axis == 0 else a for a, axis in zip(args, in_axes)])
      if model_done:  # after the model's work: the callback takes one of its results
        jax.debug.callback(model_done, jax.tree.leaves(result)[-1])
      return result

    if num_models == 1:
      return jax.tree.map(lambda x: x[None], one([jax.tree.map(lambda x: x[0], a)
                                                  for a in mapped_args]))
    width = args[0].spec.models_per_chunk
    if width >= num_models:
      return jax.vmap(fn, in_axes=in_axes)(*args)
    return lax.map(one, mapped_args, batch_size=width if width > 1 else None)
  mapped.in_axes = in_axes
  return mapped


init_models = jax.jit(jax.vmap(init, in_axes=(0, None, 0)), static_argnums=1)
