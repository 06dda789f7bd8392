"""The 1998 paper's LeNet-5, each part against an independent computation: the RBF penalties,
the MAP criterion, the trainable subsampling, the initialisation ranges, SDLM's curvature
(against a brute-force Gauss-Newton diagonal in float64), the distortions; a short run that
learns, and bad settings."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from dnn_jax.catalog import make_config
from dnn_jax.core import (data, distortions, evaluation, lenet1998, losses, models, sdlm,
                          training)
from dnn_jax.errors import ConfigError
from dnn_jax.run import program
from dnn_jax.tasks import lenet1998 as task
from tests.conftest import make_spec, train_in_calls


def paper_model(c3='sparse'):
  return lenet1998.LeNet5Paper(c3=c3, kernels='stock')


def params_of(model, seed=0):
  return model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))['params']


def test_rbf_penalties_are_squared_distances_to_the_bitmaps():
  codes = lenet1998.rbf_codes()
  assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
  assert len({tuple(c) for c in codes}) == 10  # every digit its own code
  x = np.random.default_rng(0).uniform(-1.7, 1.7, (3, 84)).astype(np.float32)
  expected = [[sum((x[b, j] - codes[i, j]) ** 2 for j in range(84)) for i in range(10)]
              for b in range(3)]
  np.testing.assert_allclose(lenet1998.rbf_penalties(jnp.asarray(x)), expected, rtol=1e-5)
  bitmap = lenet1998.RBF_BITMAPS[1]
  assert codes[1, 3] == (1.0 if bitmap[0][3] == '#' else -1.0)  # row by row


def test_map_criterion_is_the_paper_s_formula():
  y = np.random.default_rng(1).uniform(0, 50, (4, 10))
  labels = np.array([0, 3, 9, 3])
  direct = [y[p, labels[p]] + np.log(np.exp(-losses.MAP_J) + np.exp(-y[p]).sum())
            for p in range(4)]
  np.testing.assert_allclose(losses.map_criterion(jnp.asarray(y, jnp.float32), labels), direct,
                             rtol=1e-5)
  assert losses.OBJECTIVES['map'].predict(jnp.asarray(y)).tolist() == y.argmin(axis=1).tolist()


def test_subsampling_is_a_coefficient_times_the_window_sum_plus_a_bias_through_f():
  layer = lenet1998.Layer('subsampling', 2, kernels='stock')
  x = jax.random.normal(jax.random.key(2), (2, 3, 4, 4))
  params = layer.init(jax.random.key(3), x)['params']
  c, b = np.asarray(params['coefficient']), np.asarray(params['bias'])
  xs = np.asarray(x)
  sums = xs[..., 0::2, 0::2] + xs[..., 1::2, 0::2] + xs[..., 0::2, 1::2] + xs[..., 1::2, 1::2]
  expected = 1.7159 * np.tanh(2 / 3 * (c[:, None, None, None] * sums + b[:, None, None, None]))
  np.testing.assert_allclose(layer.apply({'params': params}, x), expected, rtol=1e-5, atol=1e-6)


def test_parameter_counts_are_the_paper_s():
  model = paper_model()
  params = params_of(model)
  per_layer = {name: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params[name]))
               for name in params}
  per_layer['C3'] -= 25 * int((models.c3_mask() == 0).sum())  # masked weights are not trained
  assert per_layer == lenet1998.PAPER_PARAMETERS
  assert models.num_trainable_params(model, params) == 60_000
  assert models.num_trainable_params(paper_model('full'), params_of(paper_model('full'))) == 60_900


def test_initial_weights_and_biases_lie_within_2_4_over_the_fan_in():
  params = params_of(paper_model())
  fan_ins = {'C1': 25, 'S2': 4, 'S4': 4, 'C5': 400, 'F6': 120}
  for name, fan_in in fan_ins.items():
    for leaf in jax.tree.leaves(params[name]):
      bound = 2.4 / fan_in
      assert np.abs(leaf).max() <= bound, name
      if leaf.size >= 100:  # enough draws to come near the bound
        assert np.abs(leaf).max() > 0.9 * bound, name
  kernel = np.asarray(params['C3']['kernel'])
  fan_in = 25 * models.c3_mask().sum(axis=0)  # 75, 100 or 150 per map
  assert (np.abs(kernel).max(axis=(0, 1, 2)) <= 2.4 / fan_in).all()
  assert (np.abs(kernel)[:, :, models.c3_mask() == 0] == 0).all()


def _chain(params, x, curvature):
  """A network of one unit per layer: Gauss-Newton's diagonal is the paper's rule exactly."""
  dense = sdlm.squared_bilinear(jnp.matmul) if curvature else jnp.matmul
  f = lambda a: 1.7159 * jnp.tanh(a * 2 / 3)
  squash = sdlm.squared_derivative(f) if curvature else f
  h = squash(dense(x, params['w1']) + params['b1'])       # (B, 1)
  return squash(dense(h, params['w2']) + params['b2'])    # (B, 1)


def test_sdlm_curvature_is_the_gauss_newton_diagonal_where_the_paper_s_rule_is_exact():
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(4), 5)
    params = {'w1': jax.random.normal(keys[0], (5, 1), jnp.float64),
              'b1': jax.random.normal(keys[1], (1,), jnp.float64),
              'w2': jax.random.normal(keys[2], (1, 1), jnp.float64),
              'b2': jax.random.normal(keys[3], (1,), jnp.float64)}
    x = jax.random.normal(keys[4], (7, 5), jnp.float64)
    labels = jnp.arange(7) % 2
    loss = lambda out, label: jnp.sum((out - (2.0 * label - 1)) ** 2)  # convex in the output
    estimate = sdlm.curvature(lambda p, x: _chain(p, x, True), loss, params, x, labels)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def gauss_newton_diagonal(i):
      out_of = lambda flat: _chain(unravel(flat), x[i:i + 1], False)[0]
      jacobian = jax.jacfwd(out_of)(flat)                                # (1, P)
      hessian = jax.hessian(loss)(out_of(flat), labels[i])               # (1, 1)
      return jnp.diag(jacobian.T @ hessian @ jacobian)

    brute = sum(gauss_newton_diagonal(i) for i in range(7)) / 7
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(estimate)[0], brute, rtol=1e-10)


def test_sdlm_steps_by_eta_over_mu_plus_h_on_the_paper_s_schedule():
  params = {'w': jnp.ones(3)}
  tx = sdlm.sdlm(0.0005, steps_per_pass=2, mu=0.02)
  state = sdlm.with_curvature(tx.init(params), {'w': jnp.array([0.0, 0.98, 1.98])})
  grads = {'w': jnp.ones(3)}
  factors = []
  for _ in range(2 * 13):
    updates, state = tx.update(grads, state)
    factors.append(float(-updates['w'][1] / (0.0005 / 1.0)))
  np.testing.assert_allclose(-updates['w'] * (0.02 + jnp.array([0.0, 0.98, 1.98])),
                             0.0005 * 0.02, rtol=1e-6)
  # 2 passes at 1, 3 at 0.4, 3 at 0.2, 4 at 0.1, then 0.02 (two steps a pass here)
  expected = [1.0] * 4 + [0.4] * 6 + [0.2] * 6 + [0.1] * 8 + [0.02] * 2
  np.testing.assert_allclose(factors, expected, rtol=1e-6)


def test_distortions_keep_the_ink_and_repeat_for_a_key(mnist_train):
  images = mnist_train.images[:64]
  key = jax.random.key(5)
  once, again = distortions.distort(key, images), distortions.distort(key, images)
  np.testing.assert_array_equal(once, again)
  assert not np.array_equal(once, distortions.distort(jax.random.key(6), images))
  keys = jax.random.split(key, len(images))
  det = np.array([np.linalg.det(distortions.draw(k).matrix) for k in keys])
  ratio = np.asarray(once).sum(axis=(1, 2, 3)) / images.astype(np.float64).sum(axis=(1, 2, 3))
  # The ink scales with the area (the determinant, 0.81..1.21), up to interpolation: 3%.
  np.testing.assert_allclose(ratio / det, 1.0, atol=0.03)
  assert 0.8 <= det.min() and det.max() <= 1.22


@pytest.mark.slow  # about 20 s on 2 cores
def test_one_pass_of_6000_examples_learns(mnist_train, mnist_test, mnist_dir):
  config = make_config('lenet1998', train_examples=6000, epochs=1, mnist_dir=mnist_dir)
  train = data.first(mnist_train, 6000)
  ready = program.setup(config, task, 'sparse', 6000)
  state = training.init(ready.init_keys[0], ready.spec,
                        {k: v[0] for k, v in ready.hyper.items()})
  state, step_losses = jax.jit(training.train_epoch)(
      state, training.epoch_keys(ready.data_keys, 0)[0], jnp.asarray(train.images),
      jnp.asarray(train.labels))
  scores = jax.jit(evaluation.score, static_argnums=3)(
      state, jnp.asarray(mnist_test.images), jnp.asarray(mnist_test.labels), 500)
  assert int(scores.correct) / 10_000 > 0.9
  assert float(step_losses[-500:].mean()) < float(step_losses[:500].mean()) / 3


def test_a_pass_cut_into_calls_equals_it_whole_with_sdlm_and_distortions(mnist_train):
  """With `checkpoint_every_steps` a pass runs in calls: h_kk is re-estimated at the pass's
  start only and each step's distortion is keyed by its position, so it agrees with the pass
  whole to float rounding (the curvature pass compiles differently inside a cond). A resumed
  run is cut as the run it resumes, so that is equal bit for bit."""
  images, labels = jnp.asarray(mnist_train.images[:24]), jnp.asarray(mnist_train.labels[:24])
  results = []
  for call_steps in (0, 10):
    spec = make_spec(paper_model(), 'map', 24, 48, experiment='lenet1998', batch_size=1,
                     distortions=True, checkpoint_every_steps=call_steps)
    state, calls = train_in_calls(spec, images, labels)
    assert calls == (2 if call_steps == 0 else 6)
    results.append(jax.tree.leaves((state.params, state.opt_state)))
  for whole, cut in zip(*results):
    np.testing.assert_allclose(whole, cut, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    (dict(experiment='lenet', optimizer='sdlm'), '--optimizer=sdlm: accepted for '
     '--experiment=lenet: sgd'),
    (dict(experiment='lenet1998', sdlm_mu=0), '--sdlm_mu=0'),
    (dict(experiment='lenet', sdlm_mu=0.5), '--sdlm_mu=0.5 applies only with --optimizer=sdlm'),
    (dict(experiment='lenet1998', c3='partial'), '--c3=partial: accepted: sparse, full, both'),
    (dict(experiment='lenet1998', pixel_scale='signed'), 'accepted: unit, raw, lecun'),
])
def test_bad_settings_are_one_line(overrides, message):
  with pytest.raises(ConfigError, match=message):
    make_config(**overrides)
