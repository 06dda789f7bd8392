"""A variant's test-set scores as a run reports them: the course's test line of each model, and
the per-model numbers that results.json holds."""

from __future__ import annotations

from typing import Any

import numpy as np

from dnn_jax.config import Config

# What each model of a variant is judged by, in results.json, the tables and `Results.rows`.
PER_MODEL = ('test_accuracy', 'test_loss', 'collapsed', 'diverged')


def test_line(loss: float, correct: int, total: int) -> str:
  """The course's format: [Test set] Average loss: 0.0875, Accuracy: 1926/1991 (96.74%)."""
  return (f'[Test set] Average loss: {loss:.4f}, '
          f'Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)')


def collapsed(confusion: np.ndarray) -> list[bool]:
  """Per model ((models, classes, classes) confusion matrices): whether it predicts one class."""
  return [bool(np.count_nonzero(c.sum(axis=0)) == 1) for c in confusion]


def summary(scores: Any) -> dict[str, Any]:
  """Every model's scores (an `evaluation.Scores` on the host, with the models axis) as
  results.json holds them."""
  total = int(scores.confusion[0].sum())
  return dict(test_accuracy=[float(c / total) for c in scores.correct],
              test_loss=[float(s / total) for s in scores.loss_sum],
              correct=[int(c) for c in scores.correct], total=total,
              collapsed=collapsed(scores.confusion), confusion=scores.confusion.tolist())


def test_lines(config: Config, variant: str, scores: Any) -> list[str]:
  """'[sparse] seed 0: [Test set] Average loss: ...', one per model."""
  total = int(scores.confusion[0].sum())
  return [f'[{variant}] {config.describe_model(i)}: ' + test_line(loss_sum / total, correct, total)
          + ('  (collapsed: predicts one class only)' if is_collapsed else '')
          for i, (loss_sum, correct, is_collapsed) in enumerate(
              zip(scores.loss_sum, scores.correct, collapsed(scores.confusion)))]
