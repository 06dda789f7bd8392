"""LeNet's three hot ops, per platform: XLA's stock ops, and CPU kernels that XLA's CPU backend
runs several times faster (measured in benchmarks/README.md).

Every op takes channels-first maps (C, B, H, W). `OPS[name]` is one consistent set, chosen
by the `kernels` setting (`default_kernels()`: 'cpu' on CPU, 'stock' elsewhere).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from dnn_jax.core import platform


class Ops(NamedTuple):
  conv: Callable[[jax.Array, jax.Array, int], jax.Array]  # (x CNHW, kernel HWIO, padding)
  tanh: Callable[[jax.Array], jax.Array]
  avg_pool: Callable[[jax.Array], jax.Array]  # 2x2, stride 2, over the last two axes


def stock_conv(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  """Stride-1 cross-correlation with zero `padding`: `lax.conv_general_dilated` (cuDNN on GPU)."""
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1),
                                  padding=[(padding, padding)] * 2,
                                  dimension_numbers=('CNHW', 'HWIO', 'CNHW'))


def stock_avg_pool(x: jax.Array) -> jax.Array:
  """Non-overlapping 2x2 average pooling of the last two axes: Flax's own."""
  return nn.avg_pool(x[..., None], (2, 2), strides=(2, 2))[..., 0]


# --- CPU kernels: the same numbers as the stock ops up to float rounding (tested). ---

def shifted_views(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """The kh*kw shifted (C, B, h, w) windows of `x` as a (kh*kw*C, B*h*w) matrix, rows in an
  HWIO kernel's (i, j, c) order; built as row shifts, then column shifts, concatenated (the
  copies XLA's CPU backend makes fewest of)."""
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
  """`stock_conv` as matmuls on `shifted_views`, with a backward that adds the input
  gradient's windows in place (autodiff's own was a chain of padded adds)."""
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
  """XLA's CPU `jnp.tanh`, bit for bit, as plain arithmetic that XLA vectorizes (its tanh op
  it does not); the derivative is JAX's own."""
  clamped = jnp.clip(x, -TANH_CLAMP, TANH_CLAMP)
  square = clamped * clamped
  ratio = clamped * _polynomial(TANH_NUMERATOR, square) / _polynomial(TANH_DENOMINATOR, square)
  return jnp.where(jnp.abs(x) < TANH_TINY, x, ratio)


# JAX's own derivative of tanh from its output y: dx * (1 - y^2) as one_minus_square where
# lax has it (jax 0.11 on), else (dx + dx * y) * (1 - y) (jax 0.10).
_one_minus_square = getattr(lax, 'one_minus_square', None)


@tanh.defjvp
def _tanh_jvp(primals, tangents):
  y, (dx,) = tanh(*primals), tangents
  if _one_minus_square is not None:
    return y, dx * _one_minus_square(y)
  return y, (dx + dx * y) * (1 - y)


@jax.custom_vjp
def avg_pool2(x: jax.Array) -> jax.Array:
  """`stock_avg_pool` as four strided slices, with a backward that spreads each gradient over
  its 2x2 block in one broadcast (autodiff's four padded adds were fused and recomputed)."""
  return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) / 4


def _avg_pool2_bwd(_, dy):
  *lead, h, w = dy.shape
  blocks = jnp.broadcast_to(dy[..., :, None, :, None] / 4, (*lead, h, 2, w, 2))
  return (blocks.reshape(*lead, 2 * h, 2 * w),)


avg_pool2.defvjp(lambda x: (avg_pool2(x), None), _avg_pool2_bwd)


OPS = {'cpu': Ops(patches_conv, tanh, avg_pool2),
       'stock': Ops(stock_conv, jnp.tanh, stock_avg_pool)}
KERNELS = tuple(OPS)


def default_kernels() -> str:
  """'cpu' on the CPU backend, 'stock' on accelerators."""
  return 'stock' if platform.on_accelerator() else 'cpu'
