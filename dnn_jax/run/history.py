"""A variant's record as its training loop keeps it: per-step training losses, per-epoch test
results and times. Checkpoints carry it, so a resumed run reports what an uninterrupted one
would."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dnn_jax.core import training


class History(NamedTuple):
  step_losses: np.ndarray    # float32 (padded models, total steps), filled up to the step
  epoch_times: np.ndarray    # float64 (epochs,): training seconds
  test_accuracy: np.ndarray  # float32 (padded models, epochs), NaN for epochs not evaluated
  test_loss: np.ndarray      # float32 (padded models, epochs), likewise
  eval_times: np.ndarray     # float64 (epochs,): evaluation seconds
  train_accuracy: np.ndarray  # float32 (padded models, epochs): on the training set, where
                              # the task asks (tasks.*.TRAIN_ERROR), else NaN

  @classmethod
  def empty(cls, num_models: int, spec: training.TrainSpec) -> History:
    untested = np.full((num_models, spec.num_epochs), np.nan, np.float32)
    return cls(np.zeros((num_models, spec.total_steps), np.float32),
               np.zeros(spec.num_epochs, np.float64), untested, untested.copy(),
               np.zeros(spec.num_epochs, np.float64), untested.copy())

  def epoch_losses(self, num_models: int, steps_per_epoch: int) -> np.ndarray:
    """(models, epochs) mean training loss of each epoch (the last one maybe partial)."""
    losses = self.step_losses[:num_models]
    return np.stack([losses[:, start:start + steps_per_epoch].mean(axis=1)
                     for start in range(0, losses.shape[1], steps_per_epoch)], axis=1)
