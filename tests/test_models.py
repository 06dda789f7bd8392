"""LeNet-5's C3 mask and parameter counts, the masked kernel, and PyTorch-style init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.core import models, training
from tests.conftest import init, make_spec


def lenet_params(c3, initializer='torch'):
  model = models.LeNet5(c3=c3, initializer=initializer)
  return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']


def test_c3_mask_is_table_one():
  mask = models.c3_mask()
  assert mask.shape == (6, 16)
  assert mask.sum() == 60
  np.testing.assert_array_equal(mask.sum(axis=1), 10)  # each S2 map feeds 10 C3 maps
  np.testing.assert_array_equal(mask.sum(axis=0), [3] * 6 + [4] * 9 + [6])
  for out in range(6):  # maps 0-5: three contiguous inputs (cyclically)
    assert set(np.flatnonzero(mask[:, out])) == {(out + k) % 6 for k in range(3)}
  for out in range(6, 12):  # maps 6-11: four contiguous inputs
    assert set(np.flatnonzero(mask[:, out])) == {(out - 6 + k) % 6 for k in range(4)}
  for out in range(12, 15):  # maps 12-14: four inputs, not contiguous
    inputs = set(np.flatnonzero(mask[:, out]))
    assert len(inputs) == 4
    assert not any(inputs == {(s + k) % 6 for k in range(4)} for s in range(6))


@pytest.mark.parametrize('c3, total, c3_count', [('sparse', 60_806, 1_516),
                                                 ('full', 61_706, 2_416)])
def test_parameter_counts(c3, total, c3_count):
  model, params = lenet_params(c3)
  assert models.num_trainable_params(model, params) == total
  c3_params = params['C3']
  stored = c3_params['kernel'].size + c3_params['bias'].size
  masked = 25 * int((models.c3_mask() == 0).sum()) if c3 == 'sparse' else 0
  assert stored - masked == c3_count


def test_masked_weights_start_at_zero_and_get_zero_gradient():
  model, params = lenet_params('sparse')
  off = np.broadcast_to(models.c3_mask() == 0, (5, 5, 6, 16))
  assert np.all(np.asarray(params['C3']['kernel'])[off] == 0)
  x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))
  grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({'params': p}, x) ** 2)))(params)
  kernel_grad = np.asarray(grads['C3']['kernel'])
  assert np.all(kernel_grad[off] == 0)
  assert np.count_nonzero(kernel_grad[~off]) > 0.9 * (~off).sum()


def test_masked_weights_stay_zero_through_training(mnist_train):
  spec = make_spec(models.LeNet5(c3='sparse'), 'cross_entropy', 5, experiment='lenet',
                   batch_size=50)
  state = init(jax.random.key(0), spec)
  state, _ = jax.jit(training.train_epoch)(state, jax.random.key(1), mnist_train.images[:500],
                                        mnist_train.labels[:500])
  kernel = np.asarray(state.params['C3']['kernel'])
  off = np.broadcast_to(models.c3_mask() == 0, kernel.shape)
  assert np.all(kernel[off] == 0) and np.all(kernel[~off] != 0)


def test_torch_init_bounds_follow_fan_in():
  _, params = lenet_params('sparse')
  c3 = np.asarray(params['C3']['kernel'])
  connections = models.c3_mask().sum(axis=0)
  for out, n_inputs in enumerate(connections):
    bound = 1 / np.sqrt(25 * n_inputs)  # 75, 100 or 150 connected inputs
    w = c3[..., out][c3[..., out] != 0]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
  for layer, fan_in in [('C1', 25), ('C5', 400), ('F6', 120), ('F7', 84)]:
    for name in ('kernel', 'bias'):
      w = np.abs(np.asarray(params[layer][name]))
      assert w.max() <= 1 / np.sqrt(fan_in)
  assert np.abs(np.asarray(params['F7']['bias'])).max() > 0  # biases are not zero


def test_flax_initializer_has_zero_biases():
  _, params = lenet_params('full', initializer='flax')
  assert all(np.all(np.asarray(params[layer]['bias']) == 0) for layer in params)


def test_linear_classifier_shape_and_bias():
  for bias, n in [(False, 784), (True, 785)]:
    model = models.LinearClassifier(bias=bias)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
    assert models.num_trainable_params(model, params) == n
    assert model.apply({'params': params}, jnp.ones((5, 28, 28, 1))).shape == (5,)
