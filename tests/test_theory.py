"""Each theory result: the function, its check, and the counterexamples; the theory task's
report and figure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dnn_jax.core import theory
from dnn_jax.tasks import theory as theory_task


def test_finite_difference_kernels_on_a_known_image():
  x = np.arange(12, dtype=np.float32).reshape(3, 4) ** 2
  y = np.asarray(theory.conv(jnp.asarray(x)[None, :, :, None],
                             theory.finite_difference_kernels(), 1))[0]
  np.testing.assert_array_equal(y[:2, :, 0], x[1:] - x[:2])     # X[i+1, j] - X[i, j]
  np.testing.assert_array_equal(y[:, :3, 1], x[:, 1:] - x[:, :3])  # X[i, j+1] - X[i, j]
  np.testing.assert_array_equal(y[2, :, 0], -x[2])  # beyond the edge X counts as 0
  assert theory.check_finite_differences(x).passed


@pytest.mark.parametrize('k', [1, 2, 3, 4, 5])
def test_mean_kernel_averages_each_window(k):
  x = np.random.default_rng(k).random((9, 11))
  y = theory.conv(jnp.asarray(x, jnp.float32)[None, :, :, None],
                  jnp.asarray(theory.mean_kernel(k))[:, :, None, None], 'VALID')[0, :, :, 0]
  expected = np.array([[x[i:i + k, j:j + k].mean() for j in range(11 - k + 1)]
                       for i in range(9 - k + 1)])
  np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_identity_over_k_squared_is_not_the_mean():
  x = np.zeros((3, 3), np.float32)
  x[0, 2] = 9.0  # off the diagonal: the window mean is 1, the diagonal average 0
  assert theory.window_means(x, 3)[0, 0] == 1.0
  y = theory.conv(jnp.asarray(x)[None, :, :, None], (jnp.eye(3) / 9)[:, :, None, None], 'VALID')
  assert float(y[0, 0, 0, 0]) == 0.0


def test_rgb_to_gray_is_a_1x1_conv():
  pixel = jnp.array([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]]])
  np.testing.assert_allclose(theory.rgb_to_gray(pixel)[0, 0, :, 0],
                             [0.299, 0.587, 0.114, 1.0], rtol=1e-6)


def test_multiply_counts_of_the_bottleneck():
  assert theory.conv_multiplies(28, 28, 192, 32, 5) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
  assert (theory.conv_multiplies(28, 28, 192, 16, 1) + theory.conv_multiplies(28, 28, 16, 32, 5)
          == 12_443_648)
  # In-bounds taps of a 5-tap window over 4 positions with padding 2: 3 + 4 + 4 + 3;
  # over 1 position: 1.
  assert theory.conv_multiplies(4, 1, 1, 1, 5, in_bounds_only=True) == 14
  assert theory.conv_multiplies(4, 4, 1, 1, 5, in_bounds_only=True) == 14 * 14
  assert theory.conv_multiplies(4, 4, 2, 3, 1, in_bounds_only=True) == 4 * 4 * 2 * 3


def test_xla_cost_analysis_counts_in_bounds_multiply_adds_twice():
  for h, w, cin, cout, k in [(28, 28, 192, 32, 5), (10, 7, 3, 4, 3), (6, 6, 2, 2, 1)]:
    flops = theory.xla_flops(lambda x, kern: theory.conv(x, kern), (1, h, w, cin), (k, k, cin, cout))
    assert flops == 2 * theory.conv_multiplies(h, w, cin, cout, k, in_bounds_only=True)
  assert theory.check_bottleneck().passed


even_grids = hnp.arrays(np.float32, st.tuples(st.integers(1, 4).map(lambda n: 2 * n),
                                              st.integers(1, 4).map(lambda n: 2 * n)),
                        elements=st.floats(-50, 50, width=32))


@settings(max_examples=60, deadline=None)
@given(even_grids, st.sampled_from(sorted(theory.MONOTONE)))
def test_non_decreasing_activations_commute_with_max_pooling(x, name):
  assert theory.commutes(theory.MONOTONE[name], theory.max_pool, jnp.asarray(x))


def test_counterexamples():
  x = jnp.array([[-3.0, 1.0], [0.0, 2.0]])
  assert float(jnp.square(theory.max_pool(x))[0, 0]) == 4.0
  assert float(theory.max_pool(jnp.square(x))[0, 0]) == 9.0
  assert not theory.commutes(jnp.square, theory.max_pool, x)
  assert not theory.commutes(jnp.tanh, theory.avg_pool, x)
  assert theory.commutes(jnp.tanh, theory.max_pool, x)


@pytest.mark.parametrize('widths', [(2, 3), (4, 5, 6), (8, 16, 16, 8, 4), (3, 1, 3, 1)])
def test_backprop_formulas_match_autodiff_in_float64(widths):
  with jax.enable_x64(True):
    assert theory.backprop_relative_error(jax.random.key(len(widths)), widths) < 1e-10
    params = jax.jit(theory.random_mlp, static_argnums=1)(jax.random.key(0), widths)
    grads = jax.jit(theory.mlp_backward)(params, jnp.ones(widths[0]))
  assert grads[-1][1].tolist() == [1.0]  # dy_L/db_L = 1
  assert [g[0].shape for g in grads] == [a.shape for a, _ in params]


@pytest.mark.slow  # over 8 s on 2 cores
def test_theory_experiment_writes_report_and_figure(tmp_path, mnist_dir):
  assert theory_task.run(mnist_dir, None, tmp_path, seed=0)
  text = (tmp_path / 'theory.md').read_text()
  assert text.count('| PASS |') == 6 and 'FAIL' not in text
  assert (tmp_path / 'filters.png').read_bytes().startswith(b'\x89PNG')


def test_a_failing_check_fails_the_run(tmp_path, mnist_dir, monkeypatch):
  monkeypatch.setattr(theory, 'check_rgb_to_gray', lambda key: theory.Check('c', 'k', 'n', False))
  assert not theory_task.run(mnist_dir, None, tmp_path, seed=0)
  assert '| FAIL |' in (tmp_path / 'theory.md').read_text()
