"""Random planar affine distortions of training images (LeCun et al. 1998, section III.C: the
0.8% result): horizontal and vertical translation, scaling, squeezing (one axis compressed as
the other is stretched) and horizontal shearing, drawn per image from a key, applied about the
image's centre with bilinear interpolation and a blank (0) background.

The paper does not give its ranges; ours, each uniform, keep a centred MNIST digit (20x20 in
28x28) inside the image.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy import ndimage

SHIFT = 2.0          # pixels, each axis: [-2, 2]
SCALE = 0.1          # both axes times s, s in [0.9, 1.1]
SQUEEZE = 0.1        # x times (1 + q), y divided by it, q in [-0.1, 0.1]
SHEAR = 0.2          # x moved by h times the height above the centre, h in [-0.2, 0.2]


class Affine(NamedTuple):
  matrix: jax.Array  # (2, 2), acting on centred (x, y) = (column, row)
  shift: jax.Array   # (2,) pixels, (x, y)


def draw(key: jax.Array) -> Affine:
  """One random distortion: scale and squeeze after a shear, then a shift."""
  shift_key, scale_key, squeeze_key, shear_key = jax.random.split(key, 4)
  s = 1 + jax.random.uniform(scale_key, (), jnp.float32, -SCALE, SCALE)
  q = 1 + jax.random.uniform(squeeze_key, (), jnp.float32, -SQUEEZE, SQUEEZE)
  h = jax.random.uniform(shear_key, (), jnp.float32, -SHEAR, SHEAR)
  matrix = jnp.stack([jnp.stack([s * q, s * q * h]), jnp.stack([jnp.zeros(()), s / q])])
  return Affine(matrix, jax.random.uniform(shift_key, (2,), jnp.float32, -SHIFT, SHIFT))


def warp(image: jax.Array, affine: Affine) -> jax.Array:
  """(H, W) float image moved by `affine`: out(p) = in(A^-1 (p - c - t) + c), c the centre."""
  height, width = image.shape
  centre = jnp.array([(width - 1) / 2, (height - 1) / 2], jnp.float32)
  rows, columns = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                               jnp.arange(width, dtype=jnp.float32), indexing='ij')
  out = jnp.stack([columns.ravel(), rows.ravel()]) - (centre + affine.shift)[:, None]
  source = jnp.linalg.inv(affine.matrix) @ out + centre[:, None]
  values = ndimage.map_coordinates(image, [source[1], source[0]], order=1, mode='constant',
                                   cval=0.0)
  return values.reshape(height, width)


def distort(key: jax.Array, images: jax.Array) -> jax.Array:
  """(B, H, W, 1) images of pixels 0..255 (uint8 or float), each distorted by its own draw
  from `key`: float32 pixels of the same units."""
  keys = jax.random.split(key, images.shape[0])
  one = lambda k, image: warp(image[..., 0].astype(jnp.float32), draw(k))[..., None]
  return jax.vmap(one)(keys, images)
