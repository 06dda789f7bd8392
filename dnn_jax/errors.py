"""The errors a user sees, each ending a run with one line (the command line gives each its exit
code, `dnn_jax.cli.EXIT_CODES`); the message says what was wrong and what to do."""

from __future__ import annotations


class ConfigError(ValueError):
  """A setting value that cannot work; the message names the flag, the value and what works."""


class WorkdirBusy(ConfigError):
  """Another run holds the workdir's lock."""


class ResourceLimit(Exception):
  """A process limit (memory, open files) too low for the run."""


class WorkdirMoved(Exception):
  """The workdir was renamed, removed or replaced while a run held it."""


class DatasetError(Exception):
  """The dataset is missing or corrupt."""


class WriteError(Exception):
  """A file could not be written (no space, no permission); the message names it and why."""


class CheckpointError(Exception):
  """No usable checkpoint where one was required."""


class NothingToEvaluate(CheckpointError):
  """Evaluation asked of a workdir that holds no run, or no checkpoint yet."""


class OtherRun(CheckpointError):
  """A checkpoint of another run, or of a layout this version does not read: left in place."""


class OtherPlacement(CheckpointError):
  """Intact checkpoints of the run, saved with the models padded to another device count."""


class TrainingDiverged(RuntimeError):
  """The training loss became NaN or infinite, or rose far above where it started."""


class Interrupted(Exception):
  """Training stopped on SIGINT/SIGTERM at a safe point; the message says what is saved."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


def first_line(error: BaseException, limit: int = 200) -> str:
  """The first line of `error`'s message (its type's name if it has none), at most `limit`
  characters: what a one-line report quotes of a library's error."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
