"""Test-set evaluation: every example counted once, in batches that do not divide the split,
with its prediction and its cell of the confusion matrix."""

import jax
import numpy as np
import pytest

from dnn_jax.core import data, evaluation, models
from tests.conftest import init, make_spec


def test_evaluate_counts_every_example_once(mnist_test):
  test = data.binary_4_vs_9(mnist_test)
  spec = make_spec(models.LinearClassifier(), 'logistic', 20)
  state = init(jax.random.key(0), spec)  # 1991 = 6*300 + 191
  tested = evaluation.score(state, test.images, test.labels, batch_size=300)
  f = np.asarray(state.spec.model.apply({'params': state.params},
                                        test.images.astype(np.float32) / 255))
  assert int(tested.correct) == int(np.sum(f * test.labels >= 0))
  expected = np.sum(np.logaddexp(0, -f * test.labels))
  assert float(tested.loss_sum) == pytest.approx(float(expected), rel=1e-4)
  np.testing.assert_array_equal(tested.predictions, (f >= 0).astype(int))
  true = (test.labels > 0).astype(int)
  np.testing.assert_array_equal(tested.confusion, [[np.sum((true == t) & ((f >= 0) == p))
                                                     for p in (0, 1)] for t in (0, 1)])
  assert np.trace(tested.confusion) == tested.correct
