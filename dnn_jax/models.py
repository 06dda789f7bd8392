"""The two models of the course: a linear classifier and LeNet-5 (sparse or full C3).

All modules are Flax Linen: `init` gives a plain pytree of parameters and `apply` is a
pure function of (params, images), which is what `jax.vmap` (many seeds), `jax.jit` and
orbax handle best.
"""

from __future__ import annotations

import functools
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
  """Patches + matmuls on CPU (several times faster than XLA's CPU conv); XLA's conv elsewhere."""
  return 'patches' if jax.default_backend() == 'cpu' else 'xla'


def conv2d(x: jax.Array, kernel: jax.Array, padding: int, impl: str) -> jax.Array:
  """Stride-1 cross-correlation of a channels-first (C, B, H, W) `x` with an HWIO `kernel`,
  zero `padding` each side; returns (C_out, B, H', W').

  `impl='xla'` is `lax.conv_general_dilated` (cuDNN on GPU); `impl='patches'` is
  `patches_conv`, which XLA's CPU backend runs several times faster. Both compute the same
  numbers, and the same gradients.
  """
  if impl == 'xla':
    return lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding=[(padding, padding)] * 2,
        dimension_numbers=('CNHW', 'HWIO', 'CNHW'))
  if impl != 'patches':
    raise ValueError(f'conv impl {impl!r}: expected one of {CONV_IMPLS}')
  return patches_conv(x, kernel, padding)


def shifted_views(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """The kh*kw shifted (C, B, h, w) windows of a (C, B, H, W) `x`, stacked as a
  (kh*kw*C, B*h*w) matrix whose rows are ordered (i, j, c) like an HWIO kernel's.

  Stacked in two stages, the kh row shifts and then the kw column shifts of those: XLA's CPU
  backend fuses each stage into one copy, where a single stack of kh*kw windows made it copy
  every window twice (measured: 1.0 against 1.3 ms of op time per LeNet step). Concatenated,
  not `jnp.stack`ed: under `jax.vmap` a stack puts the seed axis second, and moving it back
  to the front was a transposing copy of the whole matrix (measured: 8 seeds' C1 windows
  took 11.3 against 5.3 ms per step)."""
  c, b, height, width = x.shape
  h, w = height - kh + 1, width - kw + 1
  rows = jnp.concatenate([x[None, :, :, i:i + h] for i in range(kh)])          # (kh, C, B, h, W)
  views = jnp.concatenate([rows[:, None, ..., j:j + w] for j in range(kw)], 1)  # (kh, kw, C, B, h, w)
  return views.reshape(kh * kw * c, b * h * w)


def add_shifted_views(rows: jax.Array, kh: int, kw: int, shape: tuple[int, ...]) -> jax.Array:
  """Transpose of `shifted_views`: adds each window back at its offset in a zero `shape`."""
  c, b, height, width = shape
  h, w = height - kh + 1, width - kw + 1
  views = rows.reshape(kh, kw, c, b, h, w)
  x = jnp.zeros(shape, rows.dtype)
  for i in range(kh):
    for j in range(kw):
      x = x.at[:, :, i:i + h, j:j + w].add(views[i, j])
  return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def patches_conv(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  """`conv2d` as matmuls on `shifted_views`, channels-first, with a hand-written backward.

  Channels-first makes the views a stack of contiguous copies, and puts all three matmuls
  (output, kernel gradient, input gradient) in forms XLA's CPU matmul takes without
  transposing the views matrix. The backward adds the input gradient's windows in place
  (`add_shifted_views`): autodiff's own transpose of the stack was a chain of 25 padded adds
  that XLA fused into the average pool's gradient and recomputed for each of the 4 pixels a
  pooled value feeds (measured: a third of a CPU training step).
  """
  return _patches_conv_fwd(x, kernel, padding)[0]


def _patches_conv_fwd(x, kernel, padding):
  kh, kw, _, cout = kernel.shape
  x = jnp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  views = shifted_views(x, kh, kw)
  y = kernel.reshape(-1, cout).T @ views
  _, b, height, width = x.shape
  return y.reshape(cout, b, height - kh + 1, width - kw + 1), (views, kernel, x.shape)


def _patches_conv_bwd(padding, residuals, dy):
  views, kernel, padded_shape = residuals
  kh, kw, _, cout = kernel.shape
  dy = dy.reshape(cout, -1)
  dkernel = (dy @ views.T).T.reshape(kernel.shape)
  dx = add_shifted_views(kernel.reshape(-1, cout) @ dy, kh, kw, padded_shape)
  height, width = padded_shape[2:]
  return dx[:, :, padding:height - padding, padding:width - padding], dkernel


patches_conv.defvjp(_patches_conv_fwd, _patches_conv_bwd)


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
    """(C_in, B, H, W) -> (features, B, H', W')."""
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
    return conv2d(x, kernel, self.padding, self.conv_impl) + bias[:, None, None, None]


# XLA's (and Eigen's) fast float32 tanh: an odd rational function of degree 13/6 of x clamped to
# [-TANH_CLAMP, TANH_CLAMP], and x itself where |x| < TANH_TINY.
TANH_NUMERATOR = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                  5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                  -2.76076847742355e-16)  # coefficients of x, x^3, ..., x^13
TANH_DENOMINATOR = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                    1.19825839466702e-06)  # of 1, x^2, x^4, x^6
TANH_CLAMP, TANH_TINY = 7.99881172180175781, 0.0004


def _polynomial(coefficients: Sequence[float], z: jax.Array) -> jax.Array:
  """sum_k coefficients[k] * z**k, by Horner's rule."""
  result = jnp.full_like(z, coefficients[-1])
  for c in coefficients[-2::-1]:
    result = result * z + c
  return result


@jax.custom_jvp
def tanh(x: jax.Array) -> jax.Array:
  """`jnp.tanh`, bit for bit (tested on every 997th float32 bit pattern), written out as the
  rational function XLA itself evaluates. XLA's CPU backend vectorizes it as plain
  arithmetic, where its own tanh op runs 2.4 times slower (measured); LeNet has 0.8
  million tanh per batch of 100. The derivative is JAX's own for tanh."""
  clamped = jnp.clip(x, -TANH_CLAMP, TANH_CLAMP)
  square = clamped * clamped
  ratio = clamped * _polynomial(TANH_NUMERATOR, square) / _polynomial(TANH_DENOMINATOR, square)
  return jnp.where(jnp.abs(x) < TANH_TINY, x, ratio)


@tanh.defjvp
def _tanh_jvp(primals, tangents):
  y, (dx,) = tanh(*primals), tangents
  return y, (dx + dx * y) * (1 - y)


@jax.custom_vjp
def avg_pool2(x: jax.Array) -> jax.Array:
  """Non-overlapping 2x2 average pooling over the last two axes (LeNet's subsampling without
  its trainable gain): four strided slices, which XLA fuses with the tanh around them.

  The backward spreads each gradient over its 2x2 block with one broadcast. Autodiff's
  transpose of the slices is four padded adds, which XLA fused with the tanh gradients
  around them and recomputed for every padding (measured: a seventh of a CPU step)."""
  return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) / 4


def _avg_pool2_bwd(_, dy):
  *lead, h, w = dy.shape
  blocks = jnp.broadcast_to(dy[..., :, None, :, None] / 4, (*lead, h, 2, w, 2))
  return (blocks.reshape(*lead, 2 * h, 2 * w),)


avg_pool2.defvjp(lambda x: (avg_pool2(x), None), _avg_pool2_bwd)


class LeNet5(nn.Module):
  """LeNet-5 as in the course: tanh, average-pool subsampling, F7 = Dense(84 -> 10).

  Takes NHWC images; the convolution layers run channels-first (see `patches_conv`), and S4
  is flattened in (h, w, c) order, as an NHWC network would.
  """
  c3: str = 'sparse'
  conv_impl: str = 'patches'
  initializer: str = 'torch'

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    chex.assert_shape(images, (None, 28, 28, 1))
    if self.c3 not in C3_VARIANTS:
      raise ValueError(f'c3 {self.c3!r}: expected one of {C3_VARIANTS}')
    connections = c3_mask() if self.c3 == 'sparse' else None
    batch = images.shape[0]
    x = images.transpose(3, 0, 1, 2)                                                  # 1 x B x 28x28
    x = tanh(Conv(6, 5, 2, self.conv_impl, self.initializer, name='C1')(x))          # C1 6x28x28
    x = tanh(avg_pool2(x))                                                           # S2 6x14x14
    x = tanh(Conv(16, 5, 0, self.conv_impl, self.initializer, connections, name='C3')(x))  # 16x10x10
    x = tanh(avg_pool2(x))                                                           # S4 16x5x5
    x = x.transpose(1, 2, 3, 0).reshape(batch, -1)
    x = tanh(dense(120, 400, self.initializer, 'C5')(x))
    x = tanh(dense(84, 120, self.initializer, 'F6')(x))
    logits = dense(10, 84, self.initializer, 'F7')(x)
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


def num_trainable_params(model: nn.Module, params: chex.ArrayTree) -> int:
  """Weights that training can change: masked-out kernel entries of a sparse C3 excluded."""
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  if isinstance(model, LeNet5) and model.c3 == 'sparse':
    mask = c3_mask()
    kh, kw = params['C3']['kernel'].shape[:2]
    total -= kh * kw * int((mask == 0).sum())
  return total
