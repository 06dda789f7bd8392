"""The two models of the course: a linear classifier and LeNet-5 (sparse or full C3).

All modules are Flax Linen: `init` gives a plain pytree of parameters and `apply` is a
pure function of (params, images), which is what `jax.vmap` (many seeds), `jax.jit` and
orbax handle best.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax import lax

# LeCun, Bottou, Bengio, Haffner (1998), Table I: the S2 maps each C3 map reads.
# This is the only copy of the table in the project.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
C3_VARIANTS = ('sparse', 'full')
CONV_IMPLS = ('patches', 'xla')
INITS = ('torch', 'flax')

Initializer = Callable[..., jax.Array]


def c3_mask(num_inputs: int = 6, table: Sequence[Sequence[int]] = C3_TABLE) -> np.ndarray:
  """0/1 connection matrix of shape (num_inputs, num_outputs): [i, o] = 1 if map o reads i."""
  mask = np.zeros((num_inputs, len(table)), np.float32)
  for out, inputs in enumerate(table):
    mask[list(inputs), out] = 1.0
  return mask


def default_conv_impl() -> str:
  """Patches + one matmul on CPU (about 4x faster than XLA's CPU conv); XLA's conv elsewhere."""
  return 'patches' if jax.default_backend() == 'cpu' else 'xla'


def conv2d(x: jax.Array, kernel: jax.Array, padding: int, impl: str) -> jax.Array:
  """Stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`, zero `padding` each side.

  `impl='xla'` is `lax.conv_general_dilated` (cuDNN on GPU); `impl='patches'` stacks the
  kh*kw shifted views of `x` along channels and does one matmul, which XLA's CPU backend
  runs several times faster than its own convolution. Both compute the same numbers.
  """
  if impl == 'xla':
    return lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding=[(padding, padding)] * 2,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  if impl != 'patches':
    raise ValueError(f'conv impl {impl!r}: expected one of {CONV_IMPLS}')
  kh, kw, cin, cout = kernel.shape
  x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  patches = jnp.concatenate(
      [x[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
  return patches @ kernel.reshape(kh * kw * cin, cout)


def torch_uniform(fan_in: float | np.ndarray) -> Initializer:
  """PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  `fan_in` may be an array over the last (output) axis: sparse C3's maps have 75, 100 or
  150 inputs each, as the course's 16 separate convolutions had.
  """
  bound = jnp.asarray(1.0 / np.sqrt(fan_in), jnp.float32)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * bound.astype(dtype)

  return init


def initializers(init: str, fan_in: float | np.ndarray) -> tuple[Initializer, Initializer]:
  """(kernel_init, bias_init) for `init` in INITS."""
  if init == 'torch':
    return torch_uniform(fan_in), torch_uniform(fan_in)
  if init == 'flax':
    return nn.initializers.lecun_normal(), nn.initializers.zeros_init()
  raise ValueError(f'init {init!r}: expected one of {INITS}')


def dense(features: int, fan_in: int, init: str, name: str, use_bias: bool = True) -> nn.Dense:
  kernel_init, bias_init = initializers(init, fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=kernel_init,
                  bias_init=bias_init, name=name)


class Conv(nn.Module):
  """5x5-style stride-1 convolution whose kernel is optionally multiplied by a 0/1 mask.

  `connections` is None (every input feeds every output) or an (inputs, outputs) 0/1
  matrix. The mask is a constant of the computation, not a parameter, so it is not in the
  optimizer state, masked weights get exactly zero gradient, and they start at zero.
  """
  features: int
  kernel_size: int
  padding: int
  conv_impl: str
  initializer: str = 'torch'
  connections: np.ndarray | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin, k = x.shape[-1], self.kernel_size
    shape = (k, k, cin, self.features)
    if self.connections is None:
      kernel_init, bias_init = initializers(self.initializer, k * k * cin)
      kernel = self.param('kernel', kernel_init, shape)
    else:
      chex.assert_shape(self.connections, (cin, self.features))
      mask = jnp.asarray(self.connections, jnp.float32)  # broadcasts over (kh, kw)
      fan_in = k * k * self.connections.sum(axis=0)  # per output map: 75, 100 or 150
      kernel_init, bias_init = initializers(self.initializer, fan_in)
      kernel = self.param('kernel', lambda *a: kernel_init(*a) * mask, shape) * mask
    bias = self.param('bias', bias_init, (self.features,))
    return conv2d(x, kernel, self.padding, self.conv_impl) + bias


def avg_pool2(x: jax.Array) -> jax.Array:
  """Non-overlapping 2x2 average pooling (LeNet's subsampling without its trainable gain)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class LeNet5(nn.Module):
  """LeNet-5 as in the course: tanh, average-pool subsampling, F7 = Dense(84 -> 10)."""
  c3: str = 'sparse'
  conv_impl: str = 'patches'
  initializer: str = 'torch'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    chex.assert_shape(x, (None, 28, 28, 1))
    if self.c3 not in C3_VARIANTS:
      raise ValueError(f'c3 {self.c3!r}: expected one of {C3_VARIANTS}')
    connections = c3_mask() if self.c3 == 'sparse' else None
    x = jnp.tanh(Conv(6, 5, 2, self.conv_impl, self.initializer, name='C1')(x))      # 28x28x6
    x = jnp.tanh(avg_pool2(x))                                                   # S2 14x14x6
    x = jnp.tanh(Conv(16, 5, 0, self.conv_impl, self.initializer, connections, name='C3')(x))  # 10x10x16
    x = jnp.tanh(avg_pool2(x))                                                   # S4 5x5x16
    x = x.reshape(x.shape[0], -1)
    x = jnp.tanh(dense(120, 400, self.initializer, 'C5')(x))
    x = jnp.tanh(dense(84, 120, self.initializer, 'F6')(x))
    logits = dense(10, 84, self.initializer, 'F7')(x)
    chex.assert_shape(logits, (x.shape[0], 10))
    return logits


class LinearClassifier(nn.Module):
  """f(x) = w . x (+ b) on the flattened 28x28 image; predicts sign(f)."""
  bias: bool = False
  initializer: str = 'torch'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    chex.assert_shape(x, (None, 28, 28, 1))
    x = x.reshape(x.shape[0], -1)
    f = dense(1, x.shape[-1], self.initializer, 'linear', use_bias=self.bias)(x)
    return f[:, 0]


def num_trainable_params(model: nn.Module, params: chex.ArrayTree) -> int:
  """Weights that training can change: masked-out kernel entries of a sparse C3 excluded."""
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  if isinstance(model, LeNet5) and model.c3 == 'sparse':
    mask = c3_mask()
    kh, kw = params['C3']['kernel'].shape[:2]
    total -= kh * kw * int((mask == 0).sum())
  return total
