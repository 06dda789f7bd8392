"""Test-set evaluation: every example counted once, in batches that do not divide the split."""

import jax
import numpy as np
import pytest

from dnn_jax import data, evaluate, models, train
from tests.conftest import make_spec


def test_evaluate_counts_every_example_once(mnist_test):
  test = data.binary_4_vs_9(mnist_test)
  spec = make_spec(models.LinearClassifier(), 'logistic', 20, eval_batch_size=300)
  state = train.init(jax.random.key(0), spec)  # 1991 = 6*300 + 191
  loss_sum, correct, predicted = evaluate.evaluate(state, test.images, test.labels)
  f = state.spec.model.apply({'params': state.params}, test.images.astype(np.float32) / 255)
  assert int(correct) == int(np.sum(np.asarray(f) * test.labels >= 0))
  expected = np.sum(np.logaddexp(0, -np.asarray(f) * test.labels))
  assert float(loss_sum) == pytest.approx(float(expected), rel=1e-4)
  np.testing.assert_array_equal(predicted, [np.sum(np.asarray(f) < 0), np.sum(np.asarray(f) >= 0)])
