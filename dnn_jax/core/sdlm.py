"""Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C) as an optax
GradientTransformation: each parameter k steps by eps_k = eta / (mu + h_kk) times its
gradient, h_kk an estimate of the diagonal of the Gauss-Newton matrix, which the state holds
and `with_curvature` replaces (re-estimated by `gauss_newton_diagonal` before each pass).

h_kk is estimated as the paper does: second derivatives back-propagated with squared weights
from the output layer's (`curvature`), an approximation of the Gauss-Newton diagonal that
leaves out the terms between units of a layer.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

CURVATURE_EXAMPLES = 500  # training examples h_kk is re-estimated on, before each pass
# The paper's eta per pass as a share of the first passes' (0.0005): 2 passes at 0.0005, 3 at
# 0.0002, 3 at 0.0001, 4 at 0.00005, then 0.00001.
PASS_SCHEDULE = ((2, 1.0), (3, 0.4), (3, 0.2), (4, 0.1), (None, 0.02))


class SDLMState(NamedTuple):
  count: jax.Array      # updates made
  curvature: Any        # h_kk, a tree like the parameters


def pass_factor(pass_index: jax.Array) -> jax.Array:
  """PASS_SCHEDULE's factor of eta in pass `pass_index` (0 the first)."""
  ends = np.cumsum([passes for passes, _ in PASS_SCHEDULE[:-1]])
  factors = jnp.asarray([factor for _, factor in PASS_SCHEDULE], jnp.float32)
  return factors[jnp.searchsorted(jnp.asarray(ends), pass_index, side='right')]


def sdlm(learning_rate: float | jax.Array, steps_per_pass: int,
         mu: float | jax.Array) -> optax.GradientTransformation:
  """eta = `learning_rate` times PASS_SCHEDULE's factor of the pass (`steps_per_pass` updates
  each); updates -eta / (mu + h_kk) * gradient. h_kk starts at 0 (see `with_curvature`)."""

  def init(params) -> SDLMState:
    return SDLMState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(grads, state: SDLMState, params=None):
    del params
    eta = learning_rate * pass_factor(state.count // steps_per_pass)
    updates = jax.tree.map(lambda g, h: -eta * g / (mu + h), grads, state.curvature)
    return updates, state._replace(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init, update)


def with_curvature(state: SDLMState, curvature: Any) -> SDLMState:
  return state._replace(curvature=curvature)


def squared_bilinear(op: Callable[[jax.Array, jax.Array], jax.Array]):
  """`op(w, x)`, bilinear (a convolution, a matmul), whose backward pass is the second-derivative
  pass of Appendix C: op's own backward at (w^2, x^2), i.e. squared weights carry the
  cotangents back and a shared weight sums squared inputs over its connections."""
  @jax.custom_vjp
  def squared(w, x):
    return op(w, x)

  def backward(residuals, cotangent):
    w, x = residuals
    return jax.vjp(op, w * w, x * x)[1](cotangent)

  squared.defvjp(lambda w, x: (op(w, x), (w, x)), backward)
  return squared


def squared_derivative(f: Callable[[jax.Array], jax.Array]):
  """Elementwise `f`, whose backward pass multiplies by f'(a)^2 instead of f'(a)."""
  @jax.custom_vjp
  def squared(a):
    return f(a)

  def forward(a):
    y, slope = jax.jvp(f, (a,), (jnp.ones_like(a),))
    return y, slope

  squared.defvjp(forward, lambda slope, cotangent: (cotangent * slope * slope,))
  return squared


def curvature(features: Callable[[Any, jax.Array], jax.Array],
              loss: Callable[[jax.Array, jax.Array], jax.Array], params: Any,
              inputs: jax.Array, labels: jax.Array) -> Any:
  """Appendix C's h_kk, the mean over the examples: the diagonal of the Hessian of `loss(x,
  label)` in one example's features x (clipped at 0), back-propagated through `features(params,
  inputs)`, a network built of `squared_bilinear` and `squared_derivative` ops. Where each
  unit feeds one other (a chain) this is the Gauss-Newton matrix's diagonal exactly; elsewhere
  it leaves out the terms between units, as the paper does."""
  x, pullback = jax.vjp(lambda p: features(p, inputs), params)
  diagonal = jax.vmap(lambda one, label: jnp.diag(jax.hessian(loss)(one, label)))(x, labels)
  total, = pullback(jnp.maximum(diagonal, 0.0))
  return jax.tree.map(lambda t: t / len(labels), total)
