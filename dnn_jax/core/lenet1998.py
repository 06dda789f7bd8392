"""LeNet-5 as LeCun, Bottou, Bengio and Haffner (1998) published it (section II.B, Appendix A):
a 32x32 input, the scaled tanh everywhere, trainable subsampling, Table I's sparse C3, and ten
Euclidean RBF output units with fixed codes; its outputs are the RBF penalties (smallest wins).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from dnn_jax.core import kernels, models, sdlm

# f(a) = A tanh(S a) (Appendix A): f(+-1) = +-1, where f'' is largest, f'(0) about 1.
SQUASH_AMPLITUDE, SQUASH_SLOPE = 1.7159, 2.0 / 3.0
INPUT_SIZE = 32  # the 28x28 digit centred in a 32x32 field
# The RBF codes: a 7x12 bitmap per digit ('#' +1, '.' -1), a redrawing of the paper's Fig. 3,
# which prints them only as a picture. The only copy in the project.
RBF_BITMAPS = (
    ('..###..', '.#...#.', '#.....#', '#.....#', '#.....#', '#.....#', '#.....#', '#.....#',
     '#.....#', '#.....#', '.#...#.', '..###..'),                                            # 0
    ('...#...', '..##...', '.#.#...', '#..#...', '...#...', '...#...', '...#...', '...#...',
     '...#...', '...#...', '...#...', '#######'),                                            # 1
    ('.#####.', '#.....#', '......#', '......#', '.....#.', '....#..', '...#...', '..#....',
     '.#.....', '#......', '#......', '#######'),                                            # 2
    ('.#####.', '#.....#', '......#', '......#', '......#', '..####.', '......#', '......#',
     '......#', '......#', '#.....#', '.#####.'),                                            # 3
    ('.....#.', '....##.', '...#.#.', '..#..#.', '.#...#.', '#....#.', '#######', '.....#.',
     '.....#.', '.....#.', '.....#.', '.....#.'),                                            # 4
    ('#######', '#......', '#......', '#......', '######.', '......#', '......#', '......#',
     '......#', '......#', '#.....#', '.#####.'),                                            # 5
    ('..####.', '.#.....', '#......', '#......', '#......', '######.', '#.....#', '#.....#',
     '#.....#', '#.....#', '#.....#', '.#####.'),                                            # 6
    ('#######', '......#', '.....#.', '.....#.', '....#..', '....#..', '...#...', '...#...',
     '..#....', '..#....', '..#....', '..#....'),                                            # 7
    ('.#####.', '#.....#', '#.....#', '#.....#', '.#...#.', '..###..', '.#...#.', '#.....#',
     '#.....#', '#.....#', '#.....#', '.#####.'),                                            # 8
    ('.#####.', '#.....#', '#.....#', '#.....#', '#.....#', '.######', '......#', '......#',
     '......#', '......#', '.....#.', '.####..'),                                            # 9
)
CODE_SHAPE = (12, 7)  # rows, columns of each bitmap: 84 = F6's units
PAPER_PARAMETERS = dict(C1=156, S2=12, C3=1_516, S4=32, C5=48_120, F6=10_164)  # section II.B


def rbf_codes() -> np.ndarray:
  """(10, 84) float32: class i's code, its bitmap row by row, ink +1, background -1."""
  codes = np.array([[[1.0 if c == '#' else -1.0 for c in row] for row in bitmap]
                    for bitmap in RBF_BITMAPS], np.float32)
  chex.assert_shape(codes, (10, *CODE_SHAPE))
  return codes.reshape(10, -1)


def squash(ops: kernels.Ops, a: jax.Array, curvature: bool = False) -> jax.Array:
  """The paper's f(a) = 1.7159 tanh(2a/3); with `curvature`, back-propagates f'(a)^2 (sdlm)."""
  f = lambda a: SQUASH_AMPLITUDE * ops.tanh(a * SQUASH_SLOPE)
  return sdlm.squared_derivative(f)(a) if curvature else f(a)


class Layer(nn.Module):
  """A weighted sum plus a bias per output map, through f: `kind` conv (5x5 over channels-first
  maps (C, B, H, W), its kernel times a 0/1 `connections` matrix if given), dense ((B, F)
  inputs), or subsampling (each map's 2x2 window sums, times one coefficient per map). Initial
  weights and biases U(-2.4/F, 2.4/F), F the unit's fan-in; with `curvature`, the backward pass
  is SDLM's (squared weights and inputs, sdlm.py)."""
  kind: str
  features: int
  kernels: str = 'stock'
  initializer: str = 'lecun1998'
  connections: np.ndarray | None = None
  curvature: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ops = kernels.OPS[self.kernels]
    if self.kind == 'conv':
      maps = np.ones((x.shape[0], self.features)) if self.connections is None else self.connections
      fan_in = 25 * maps.sum(axis=0)  # per output map: 75, 100 or 150 in a sparse C3
      shape, weigh = (5, 5, x.shape[0], self.features), lambda w, x: ops.conv(x, w, 0)
    elif self.kind == 'dense':
      fan_in, shape, weigh = x.shape[-1], (x.shape[-1], self.features), lambda w, x: x @ w
    else:  # subsampling
      fan_in, shape = 4, (self.features,)
      weigh = lambda w, x: w[:, None, None, None] * (4 * ops.avg_pool(x))
    kernel_init, bias_init = models.initializers(self.initializer, fan_in)
    name = 'coefficient' if self.kind == 'subsampling' else 'kernel'
    if self.connections is None:
      weights = self.param(name, kernel_init, shape)
    else:  # masked weights start at zero and get zero gradient
      mask = jnp.asarray(self.connections, jnp.float32)
      weights = self.param(name, lambda *a: kernel_init(*a) * mask, shape) * mask
    bias = self.param('bias', bias_init, (self.features,))
    if self.curvature:
      weigh = sdlm.squared_bilinear(weigh)
    a = weigh(weights, x) + (bias if self.kind == 'dense' else bias[:, None, None, None])
    return squash(ops, a, self.curvature)


def rbf_penalties(features: jax.Array) -> jax.Array:
  """The output layer: y_i = |x - w_i|^2 of F6's (B, 84) outputs x and each class's code w_i."""
  return jnp.sum(jnp.square(features[:, None, :] - rbf_codes()), axis=-1)


class LeNet5Paper(nn.Module):
  """The 1998 LeNet-5 on NHWC 28x28 inputs already scaled (`background` is the scaled value of
  a 0 pixel, which pads them to 32x32); returns the 10 RBF penalties y_i = |x - w_i|^2, or
  with `head=False` F6's outputs x (the RBF layer, `head`, has no parameters); `curvature`:
  the same values, differentiated as SDLM's second-derivative pass."""
  c3: str = 'sparse'
  kernels: str = 'stock'
  initializer: str = 'lecun1998'
  background: float = -0.1

  @nn.compact
  def __call__(self, images: jax.Array, head: bool = True, curvature: bool = False) -> jax.Array:
    chex.assert_shape(images, (None, 28, 28, 1))
    if self.c3 not in models.C3_VARIANTS:
      raise ValueError(f'c3 {self.c3!r}: expected one of {models.C3_VARIANTS}')
    batch = images.shape[0]
    layer = functools.partial(Layer, kernels=self.kernels, initializer=self.initializer,
                              curvature=curvature)
    connections = models.c3_mask() if self.c3 == 'sparse' else None
    margin = (INPUT_SIZE - 28) // 2
    x = jnp.pad(images.transpose(3, 0, 1, 2), ((0, 0), (0, 0), (margin, margin),
                                               (margin, margin)),
                constant_values=self.background)                                     # 1@32x32
    x = layer('conv', 6, name='C1')(x)                                                # 6@28x28
    x = layer('subsampling', 6, name='S2')(x)                                         # 6@14x14
    x = layer('conv', 16, connections=connections, name='C3')(x)                      # 16@10x10
    x = layer('subsampling', 16, name='S4')(x)                                        # 16@5x5
    x = x.transpose(1, 2, 3, 0).reshape(batch, -1)
    x = layer('dense', 120, name='C5')(x)  # C5: 5x5 over S4's 5x5 maps, so a dense layer
    x = layer('dense', 84, name='F6')(x)
    if not head:
      return x
    penalties = self.head(x)
    chex.assert_shape(penalties, (batch, 10))
    return penalties

  head = staticmethod(rbf_penalties)
