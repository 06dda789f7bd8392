"""The course's theory results (its pen-and-paper exercises), each as a function and a check
against JAX.

Convolutions here are `jax.lax.conv_general_dilated`, which computes cross-correlation
(as PyTorch's conv2d): Y[i, j] = sum_{a, b} w[a, b] X[i + a - p, j + b - p] with zero
padding p. True convolution flips the kernel.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class Check(NamedTuple):
  claim: str
  check: str
  numbers: str
  passed: bool


def conv(x: jax.Array, kernel: jax.Array, padding: int | str = 'SAME') -> jax.Array:
  """Stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`."""
  pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
  return lax.conv_general_dilated(x, kernel, (1, 1), pad,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


# 1. Finite-difference filters ------------------------------------------------------------

def finite_difference_kernels() -> jax.Array:
  """(3, 3, 1, 2) kernel: with padding 1, output 0 is X[i+1, j] - X[i, j] and output 1 is
  X[i, j+1] - X[i, j] (zero beyond the last row/column)."""
  w1 = np.zeros((3, 3), np.float32)
  w1[1, 1], w1[2, 1] = -1, 1  # [[0,0,0],[0,-1,0],[0,1,0]]
  w2 = np.zeros((3, 3), np.float32)
  w2[1, 1], w2[1, 2] = -1, 1  # [[0,0,0],[0,-1,1],[0,0,0]]
  return jnp.asarray(np.stack([w1, w2], -1)[:, :, None, :])


def check_finite_differences(image: np.ndarray) -> Check:
  x = jnp.asarray(image, jnp.float32)
  y = conv(x[None, :, :, None], finite_difference_kernels(), 1)[0]
  padded = jnp.pad(x, ((0, 1), (0, 1)))  # zero padding below and right
  d1 = padded[1:, :-1] - x
  d2 = padded[:-1, 1:] - x
  err = max(float(jnp.abs(y[..., 0] - d1).max()), float(jnp.abs(y[..., 1] - d2).max()))
  flipped = np.asarray(finite_difference_kernels())[::-1, ::-1]
  true_conv = jax.scipy.signal.convolve2d(x, jnp.asarray(flipped[:, :, 0, 0]), mode='same')
  err_flip = float(jnp.abs(true_conv - d1).max())
  return Check('w1 = [[0,0,0],[0,-1,0],[0,1,0]] gives X[i+1,j]-X[i,j] and w2 = '
               '[[0,0,0],[0,-1,1],[0,0,0]] gives X[i,j+1]-X[i,j] (one 2-output conv, padding 1: '
               'X is 0 beyond its edge); true convolution needs the flipped kernels, e.g. '
               'w1 -> [[0,1,0],[0,-1,0],[0,0,0]]',
               'conv_general_dilated vs shifted differences on an MNIST digit; '
               'jax.scipy.signal.convolve2d with the flipped w1',
               f'max abs error {err:.1e}; flipped-kernel true convolution error {err_flip:.1e}',
               err == 0 and err_flip == 0)


# 2. Mean filter ---------------------------------------------------------------------------

def mean_kernel(k: int) -> np.ndarray:
  """The k x k window mean: all ones / k^2 (not the identity / k^2)."""
  return np.ones((k, k), np.float32) / k ** 2


def window_means(x: np.ndarray, k: int) -> np.ndarray:
  """Mean of every k x k window (valid positions), by explicit slicing."""
  h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
  return sum(x[a:a + h, b:b + w] for a in range(k) for b in range(k)) / k ** 2


def check_mean_filter(x: np.ndarray, sizes: Sequence[int] = (2, 3, 5, 7)) -> Check:
  errors, identity_errors = [], []
  for k in sizes:
    expected = window_means(x.astype(np.float64), k)
    for kernel, out in ((mean_kernel(k), errors), (np.eye(k, dtype=np.float32) / k ** 2,
                                                     identity_errors)):
      y = conv(jnp.asarray(x, jnp.float32)[None, :, :, None], jnp.asarray(kernel)[:, :, None, None],
               'VALID')[0, :, :, 0]
      out.append(float(np.abs(np.asarray(y, np.float64) - expected).max()))
  return Check('the k x k window mean is conv with ones(k, k) / k^2; I_k / k^2 averages only '
               'the diagonal', f'k = {", ".join(map(str, sizes))} on random data vs explicit '
               'window means', f'max abs error {max(errors):.1e}; with I_k/k^2 instead: '
               f'{min(identity_errors):.2f} or more', max(errors) < 1e-5 and
               min(identity_errors) > 1e-2)


# 3. 1x1 convolutions ----------------------------------------------------------------------

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_gray(image: jax.Array) -> jax.Array:
  """(N, H, W, 3) -> (N, H, W, 1) as a 1x1 convolution with the luma weights."""
  return conv(image, jnp.asarray(GRAY_WEIGHTS, jnp.float32).reshape(1, 1, 3, 1))


def conv_multiplies(height: int, width: int, in_channels: int, out_channels: int,
                    kernel: int, in_bounds_only: bool = False) -> int:
  """Multiplies of a stride-1 'same' convolution: output positions x kernel taps x in x out.

  With `in_bounds_only`, taps that land on the zero padding are not counted (XLA's
  cost analysis counts this way, at 2 FLOPs per multiply-add).
  """
  def taps(n: int) -> int:
    if not in_bounds_only:
      return n * kernel
    pad = (kernel - 1) // 2
    return sum(min(n, i - pad + kernel) - max(0, i - pad) for i in range(n))
  return taps(height) * taps(width) * in_channels * out_channels


def xla_flops(fn: Callable, *shapes: tuple[int, ...]) -> float:
  args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  return float((cost[0] if isinstance(cost, (list, tuple)) else cost)['flops'])


def check_rgb_to_gray(key: jax.Array) -> Check:
  image = jax.random.uniform(key, (2, 16, 16, 3))
  expected = image @ jnp.asarray(GRAY_WEIGHTS)
  err = float(jnp.abs(rgb_to_gray(image)[..., 0] - expected).max())
  return Check('RGB -> gray with weights (0.299, 0.587, 0.114) is a 1x1 convolution',
               '1x1 conv vs per-pixel weighted sum on a random image', f'max abs error {err:.1e}',
               err < 1e-6)


def check_bottleneck(h: int = 28, w: int = 28, cin: int = 192, cout: int = 32, k: int = 5,
                     mid: int = 16) -> Check:
  direct = conv_multiplies(h, w, cin, cout, k)
  bottleneck = conv_multiplies(h, w, cin, mid, 1) + conv_multiplies(h, w, mid, cout, k)
  xla_direct = xla_flops(lambda x, w_: conv(x, w_), (1, h, w, cin), (k, k, cin, cout))
  xla_bottleneck = xla_flops(lambda x, a, b: conv(conv(x, a), b), (1, h, w, cin),
                             (1, 1, cin, mid), (k, k, mid, cout))
  in_bounds = (conv_multiplies(h, w, cin, cout, k, True),
               conv_multiplies(h, w, cin, mid, 1, True) + conv_multiplies(h, w, mid, cout, k, True))
  matches = xla_direct == 2 * in_bounds[0] and xla_bottleneck == 2 * in_bounds[1]
  return Check(f'{h}x{w}x{cin} -> {cout} channels of {k}x{k}: {direct:,} multiplies directly, '
               f'{bottleneck:,} through a {mid}-channel 1x1 bottleneck ({direct / bottleneck:.1f}x '
               'fewer)', "counted from layer shapes; cross-checked with XLA's cost analysis",
               f"XLA: {xla_direct:,.0f} and {xla_bottleneck:,.0f} FLOPs = 2 x {in_bounds[0]:,} and "
               f"2 x {in_bounds[1]:,}: XLA counts a multiply-add as 2 FLOPs and skips the "
               f"{direct - in_bounds[0]:,} and {bottleneck - in_bounds[1]:,} products with "
               "the zero padding", direct == 120_422_400 and bottleneck == 12_443_648 and matches)


# 4. Activations commute with max pooling --------------------------------------------------

def max_pool(x: jax.Array, size: int = 2) -> jax.Array:
  return lax.reduce_window(x, -jnp.inf, lax.max, (size, size), (size, size), 'VALID')


def avg_pool(x: jax.Array, size: int = 2) -> jax.Array:
  return lax.reduce_window(x, 0.0, lax.add, (size, size), (size, size), 'VALID') / size ** 2


MONOTONE = {'relu': jax.nn.relu, 'tanh': jnp.tanh, 'sigmoid': jax.nn.sigmoid,
            'leaky_relu': jax.nn.leaky_relu}


def commutes(sigma: Callable, pool: Callable, x: jax.Array) -> bool:
  return bool(jnp.array_equal(sigma(pool(x)), pool(sigma(x))))


def check_pool_commutes(key: jax.Array) -> Check:
  x = jax.random.normal(key, (8, 8)) * 3
  monotone = {name: commutes(f, max_pool, x) for name, f in MONOTONE.items()}
  counter = jnp.array([[-3.0, 1.0], [0.0, 2.0]])
  square_fails = not commutes(jnp.square, max_pool, counter)
  average_fails = not commutes(jnp.tanh, avg_pool, counter)
  return Check('sigma(maxpool(X)) = maxpool(sigma(X)) exactly for non-decreasing sigma; not for '
               'x^2, nor for average pooling with tanh',
               'exact equality on random 8x8 inputs; counterexample X = [[-3,1],[0,2]]',
               f'{", ".join(n for n, ok in monotone.items() if ok)} commute; x^2: '
               f'{float(jnp.square(max_pool(counter))[0, 0]):g} vs '
               f'{float(max_pool(jnp.square(counter))[0, 0]):g}; tanh with avg pool: '
               f'{float(jnp.tanh(avg_pool(counter))[0, 0]):.4f} vs '
               f'{float(avg_pool(jnp.tanh(counter))[0, 0]):.4f}',
               all(monotone.values()) and square_fails and average_fails)


# 5. Backpropagation by the course's formulas ----------------------------------------------

def mlp_output(params: Sequence[tuple[jax.Array, jax.Array]], x: jax.Array,
               sigma: Callable = jnp.tanh) -> jax.Array:
  """y_l = sigma(A_l y_{l-1} + b_l); y_L = A_L y_{L-1} + b_L, a scalar."""
  y = x
  for a, b in params[:-1]:
    y = sigma(a @ y + b)
  a, b = params[-1]
  return (a @ y + b)[0]


def mlp_backward(params: Sequence[tuple[jax.Array, jax.Array]], x: jax.Array,
                 sigma: Callable = jnp.tanh) -> list[tuple[jax.Array, jax.Array]]:
  """Gradients (dy_L/dA_l, dy_L/db_l) by the course's formulas, a loop, no autodiff:
  dy_L/dA_L = y_{L-1}^T, dy_L/db_L = 1, dy_L/dy_{L-1} = A_L; for hidden layers, with
  z_l = A_l y_{l-1} + b_l and D_l = diag(sigma'(z_l)):
  dy_L/db_l = D_l (dy_L/dy_l)^T, dy_L/dA_l = D_l (dy_L/dy_l)^T y_{l-1}^T,
  dy_L/dy_{l-1} = (dy_L/dy_l) D_l A_l.
  """
  ys, zs = [x], []
  for a, b in params[:-1]:
    zs.append(a @ ys[-1] + b)
    ys.append(sigma(zs[-1]))
  a_last, _ = params[-1]
  grads = [(ys[-1][None, :], jnp.ones(1, x.dtype))]
  dy = a_last[0]  # dy_L/dy_{L-1}, a row vector
  for l in range(len(params) - 2, -1, -1):
    sigma_prime = jax.vmap(jax.grad(sigma))(zs[l])  # sigma' pointwise (no backprop through layers)
    delta = sigma_prime * dy  # D_l (dy_L/dy_l)^T
    grads.append((jnp.outer(delta, ys[l]), delta))
    dy = delta @ params[l][0]
  return grads[::-1]


def random_mlp(key: jax.Array, widths: Sequence[int]) -> list[tuple[jax.Array, jax.Array]]:
  """Layers widths[0] -> ... -> widths[-1] -> 1, in the current default float dtype."""
  sizes = [*widths, 1]
  keys = jax.random.split(key, len(sizes))
  return [(jax.random.normal(k, (n_out, n_in)) / np.sqrt(n_in), jax.random.normal(k, (n_out,)))
          for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]


def backprop_relative_error(key: jax.Array, widths: Sequence[int]) -> float:
  """Largest relative error of mlp_backward against jax.grad (call under jax.enable_x64(True))."""
  return float(_backprop_relative_errors(key, tuple(widths)).max())


@functools.partial(jax.jit, static_argnums=1)  # compiled: eagerly, each small op compiles apart
def _backprop_relative_errors(key: jax.Array, widths: tuple[int, ...]) -> jax.Array:
  params = random_mlp(key, widths)
  x = jax.random.normal(jax.random.fold_in(key, 1), (widths[0],))
  expected = jax.grad(mlp_output)(params, x)
  got = mlp_backward(params, x)
  return jnp.stack([jnp.linalg.norm(g - e) / jnp.linalg.norm(e)
                    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected))])


def check_backprop(key: jax.Array, architectures: Sequence[Sequence[int]] = (
    (3, 4), (5, 8, 6), (10, 32, 32, 16), (7, 3, 9, 4, 5, 2))) -> Check:
  with jax.enable_x64(True):
    errors = [backprop_relative_error(jax.random.fold_in(key, i), widths)
              for i, widths in enumerate(architectures)]
  return Check("the course's backprop formulas (dy_l/db_l = diag(sigma'(A_l y_{l-1} + b_l)), "
               '...) give every gradient of an MLP',
               'hand-written backward pass vs jax.grad in float64, widths ' +
               ', '.join('-'.join(map(str, w)) + '-1' for w in architectures),
               f'largest relative error {max(errors):.1e}', max(errors) < 1e-10)
