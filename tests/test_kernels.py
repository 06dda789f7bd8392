"""The CPU kernels equal XLA's stock ops, with their gradients; LeNet gives the same outputs
with either set."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.core import kernels, models
from tests.conftest import cpu_only

CPU, STOCK = kernels.OPS['cpu'], kernels.OPS['stock']


def values_and_grads(fn, cotangent, *args):
  y, vjp = jax.vjp(fn, *args)
  return (y, *vjp(cotangent))


@pytest.mark.parametrize('padding', [0, 2])
def test_patches_conv_equals_stock_conv_with_gradients(padding):
  x = jax.random.normal(jax.random.key(0), (6, 3, 14, 14))  # channels-first (C, B, H, W)
  kernel = jax.random.normal(jax.random.key(1), (5, 5, 6, 16))
  cotangent = jax.random.normal(jax.random.key(2), (16, 3, 10 + 2 * padding, 10 + 2 * padding))
  for ops in (CPU, STOCK):
    assert ops.conv(x, kernel, padding).shape == cotangent.shape
  cpu, stock = (values_and_grads(lambda x, k: ops.conv(x, k, padding), cotangent, x, kernel)
                for ops in (CPU, STOCK))
  for ours, theirs in zip(cpu, stock):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


@cpu_only
def test_tanh_and_its_gradient_equal_xla_cpu_tanh_bit_for_bit():
  bits = np.arange(0, 2**32, 997, dtype=np.uint64).astype(np.uint32)
  x = jnp.asarray(bits.view(np.float32))  # 4.3 million: every exponent, +-0, inf, nan, subnormals
  np.testing.assert_array_equal(jax.jit(CPU.tanh)(x), jax.jit(STOCK.tanh)(x))
  x = jnp.linspace(-10, 10, 10_001)
  grad = lambda f: jax.jit(jax.vmap(jax.grad(f)))(x)
  np.testing.assert_array_equal(grad(CPU.tanh), grad(STOCK.tanh))


def test_avg_pool2_and_its_gradient_equal_stock_avg_pool():
  x = jax.random.normal(jax.random.key(0), (6, 3, 10, 10))  # pools the last two axes
  cotangent = jax.random.normal(jax.random.key(1), (6, 3, 5, 5))
  for ours, theirs in zip(values_and_grads(CPU.avg_pool, cotangent, x),
                          values_and_grads(STOCK.avg_pool, cotangent, x)):
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_lenet_output_same_for_both_kernel_sets():
  x = jax.random.uniform(jax.random.key(2), (8, 28, 28, 1))
  cpu, stock = (models.LeNet5(c3='sparse', kernels=name) for name in ('cpu', 'stock'))
  params = jax.jit(cpu.init)(jax.random.key(0), x)
  np.testing.assert_allclose(jax.jit(cpu.apply)(params, x), jax.jit(stock.apply)(params, x),
                             rtol=1e-4, atol=1e-5)

