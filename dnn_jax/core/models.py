"""The two models of the course: a linear classifier and LeNet-5 (sparse or full C3).

Flax Linen modules: `init` gives a plain pytree of parameters and `apply` is a pure function
of (params, images), which is what `jax.vmap`, `jax.jit` and orbax handle best.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from dnn_jax.core import kernels

# LeCun, Bottou, Bengio, Haffner (1998), Table I: the S2 maps each C3 map reads.
# This is the only copy of the table in the project.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
C3_VARIANTS = ('sparse', 'full')
INITS = ('torch', 'flax', 'lecun1998')

Initializer = Callable[..., jax.Array]


def c3_mask() -> np.ndarray:
  """Table I as a 0/1 matrix (6 S2 maps, 16 C3 maps): [i, o] = 1 if C3 map o reads S2 map i."""
  mask = np.zeros((6, len(C3_TABLE)), np.float32)
  for out, inputs in enumerate(C3_TABLE):
    mask[list(inputs), out] = 1.0
  return mask


def uniform(bound: float | np.ndarray) -> Initializer:
  """U(-bound, bound); `bound` may be an array over the last (output) axis."""
  bound = jnp.asarray(bound, jnp.float32)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * bound.astype(dtype)

  return init


def torch_uniform(fan_in: float | np.ndarray) -> Initializer:
  """PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  `fan_in` may be an array over the last (output) axis: sparse C3's maps have 75, 100 or
  150 inputs each, as the course's 16 separate convolutions had.
  """
  return uniform(1.0 / np.sqrt(fan_in))


def lecun1998_uniform(fan_in: float | np.ndarray) -> Initializer:
  """The 1998 paper's (Appendix A): U(-2.4/F, 2.4/F), F the fan-in of the unit."""
  return uniform(2.4 / np.asarray(fan_in, np.float64))


def initializers(init: str, fan_in: float | np.ndarray) -> tuple[Initializer, Initializer]:
  """(kernel_init, bias_init) for `init` in INITS."""
  if init == 'torch':
    return torch_uniform(fan_in), torch_uniform(fan_in)
  if init == 'lecun1998':
    return lecun1998_uniform(fan_in), lecun1998_uniform(fan_in)
  if init == 'flax':
    return nn.initializers.lecun_normal(), nn.initializers.zeros_init()
  raise ValueError(f'init {init!r}: expected one of {INITS}')


def dense(features: int, fan_in: int, init: str, name: str, use_bias: bool = True) -> nn.Dense:
  """`nn.Dense` with the `init` scheme's initializers for `fan_in` inputs."""
  kernel_init, bias_init = initializers(init, fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=kernel_init,
                  bias_init=bias_init, name=name)


class MaskedConv(nn.Module):
  """Stride-1 convolution of channels-first maps (C, B, H, W), its kernel optionally multiplied
  by a constant 0/1 `connections` matrix (inputs, outputs): masked weights start at zero, get
  zero gradient, and are neither parameters nor optimizer state."""
  features: int
  kernel_size: int
  padding: int
  kernels: str = 'stock'
  initializer: str = 'torch'
  connections: np.ndarray | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin, k = x.shape[0], self.kernel_size
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
    return kernels.OPS[self.kernels].conv(x, kernel, self.padding) + bias[:, None, None, None]


class LeNet5(nn.Module):
  """LeNet-5 as in the course: tanh, average-pool subsampling, F7 = Dense(84 -> 10).

  Takes NHWC images; the convolution layers run on channels-first maps, and S4 is flattened
  in (h, w, c) order, as an NHWC network would. `kernels` picks the ops (see kernels.py).
  """
  c3: str = 'sparse'
  kernels: str = 'stock'
  initializer: str = 'torch'

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    chex.assert_shape(images, (None, 28, 28, 1))
    if self.c3 not in C3_VARIANTS:
      raise ValueError(f'c3 {self.c3!r}: expected one of {C3_VARIANTS}')
    ops, init = kernels.OPS[self.kernels], self.initializer
    connections = c3_mask() if self.c3 == 'sparse' else None
    batch = images.shape[0]
    x = images.transpose(3, 0, 1, 2)                                                # 1@28x28
    x = ops.tanh(MaskedConv(6, 5, 2, self.kernels, init, name='C1')(x))            # C1 6@28x28
    x = ops.tanh(ops.avg_pool(x))                                                  # S2 6@14x14
    x = ops.tanh(MaskedConv(16, 5, 0, self.kernels, init, connections, name='C3')(x))  # 16@10x10
    x = ops.tanh(ops.avg_pool(x))                                                  # S4 16@5x5
    x = x.transpose(1, 2, 3, 0).reshape(batch, -1)
    x = ops.tanh(dense(120, 400, init, 'C5')(x))
    x = ops.tanh(dense(84, 120, init, 'F6')(x))
    logits = dense(10, 84, init, 'F7')(x)
    chex.assert_shape(logits, (batch, 10))
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


def c3_connection_norms(kernel: np.ndarray) -> np.ndarray:
  """(6 S2 maps, 16 C3 maps): the L2 norm of the 5 x 5 kernel slice joining each pair, from
  C3's kernel (5, 5, 6, 16); a sparse C3's zeros are exactly Table I's missing connections."""
  return np.sqrt(np.sum(np.square(np.asarray(kernel, np.float64)), axis=(0, 1)))


def num_trainable_params(model: nn.Module, params: chex.ArrayTree) -> int:
  """Weights that training can change: masked-out kernel entries of a sparse C3 excluded."""
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  if getattr(model, 'c3', None) == 'sparse':  # LeNet-5, the course's or the paper's
    kh, kw = params['C3']['kernel'].shape[:2]
    total -= kh * kw * int((c3_mask() == 0).sum())
  return total
