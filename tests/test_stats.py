"""Statistics of the variance table on known numbers."""

import math

import numpy as np
import pytest

from dnn_jax.results import stats


def test_summary_on_known_numbers():
  s = stats.summary([1.0, 2.0, 3.0, 4.0])
  assert s == dict(mean=2.5, std=pytest.approx(math.sqrt(5 / 3)), min=1.0, max=4.0, n=4)
  assert stats.summary([7.0])['std'] == 0.0


def student_t_tail(t, df, n=200_000):
  """P(T > t) for Student's t with `df` degrees of freedom: Simpson's rule on the density
  after substituting x = t / u (u in (0, 1]), independent of scipy."""
  c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
  f = lambda u: c * (1 + (t / u) ** 2 / df) ** (-(df + 1) / 2) * t / u ** 2 if u > 0 else 0.0
  h = 1.0 / n
  return h / 3 * sum((1 if k in (0, n) else 4 if k % 2 else 2) * f(k * h) for k in range(n + 1))


def student_t_quantile(q, df):
  lo, hi = 0.0, 100.0
  for _ in range(60):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if student_t_tail(mid, df, 20_000) > 1 - q else (lo, mid)
  return lo


def test_welch_on_a_hand_computed_example():
  # a: mean 2, var 1 (n=3); b: mean 5, var 4 (n=3). se^2 = 1/3 + 4/3 = 5/3,
  # df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = 50/17, t = -3 / sqrt(5/3).
  w = stats.welch([1.0, 2.0, 3.0], [3.0, 5.0, 7.0])
  assert w['diff'] == pytest.approx(-3.0)
  assert w['df'] == pytest.approx(50 / 17)
  assert w['t'] == pytest.approx(-3 / math.sqrt(5 / 3))
  assert w['p'] == pytest.approx(2 * student_t_tail(3 / math.sqrt(5 / 3), 50 / 17), rel=1e-6)
  half_width = student_t_quantile(0.975, 50 / 17) * math.sqrt(5 / 3)
  assert w['ci_high'] - w['diff'] == pytest.approx(half_width, rel=1e-6)
  assert w['ci_low'] < w['diff'] < w['ci_high']


def test_welch_degenerate_cases():
  assert math.isnan(stats.welch([1.0], [2.0, 3.0])['p'])
  same = stats.welch([1.0, 1.0], [1.0, 1.0])
  assert same['diff'] == 0 and math.isnan(same['p'])


def variants(collapsed_b):
  a = dict(test_accuracy=[0.95, 0.96, 0.97], test_loss=[0.1, 0.2, 0.3],
           collapsed=[False] * 3, train_time_s=1.5, compile_time_s=0.5)
  b = dict(test_accuracy=[0.94, 0.4932, 0.92], test_loss=[0.2, 1.0, 0.3],
           collapsed=collapsed_b, train_time_s=1.0, compile_time_s=0.4)
  return {'logistic': a, 'sum_of_squares': b}


def test_variance_table_marks_and_excludes_collapsed_seeds():
  table = stats.variance_table(variants([False, True, False]), [10, 11, 12])
  lines = table.splitlines()
  assert lines[0].startswith('| seed | logistic test accuracy (%) | sum_of_squares test accuracy')
  assert '| 11 | 96.00 | 49.32 (collapsed) |' in table
  assert '| **mean** | 96.00 | 78.44 |' in table  # (94 + 49.32 + 92) / 3
  assert '| **mean** (no collapse) | 96.00 | 93.00 |' in table
  assert '| **std** | 1.00 |' in table
  assert '- sum_of_squares: 1 of 3 seeds collapsed' in table
  assert 'all seeds, n = 3 and 3' in table and 'non-collapsed seeds, n = 3 and 2' in table


def test_variance_table_without_collapse_has_one_set_of_statistics():
  table = stats.variance_table(variants([False] * 3), [0, 1, 2])
  assert '(no collapse)' not in table and 'non-collapsed' not in table
  w = stats.welch([0.95, 0.96, 0.97], [0.94, 0.4932, 0.92])
  assert f'p = {w["p"]:.3g}' in table
  assert np.isfinite(w['p'])


def test_mean_interval():
  low, high = stats.mean_interval([1.0, 2.0, 3.0])
  assert (low + high) / 2 == pytest.approx(2.0) and high - 2.0 == pytest.approx(4.303 / 3 ** 0.5,
                                                                                rel=1e-3)
  assert stats.mean_interval([0.5]) == (0.5, 0.5)
