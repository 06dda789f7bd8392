"""Shared fixtures and helpers: the real MNIST shipped in data/mnist (loaded once per session),
small configs and training specs."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# On a GPU, every JAX process of the tests would otherwise take 75% of the card at its start.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

from dnn_jax.catalog import make_config  # noqa: E402
from dnn_jax.core import data, training  # noqa: E402
from dnn_jax.run import program  # noqa: E402
from dnn_jax.run.supervisor import RUNTIME_LINE  # noqa: E402

cpu_only = pytest.mark.skipif(jax.default_backend() != 'cpu',
                              reason="checks XLA's CPU backend (its tanh, its kernels' speed path)")


def ours(stderr: str) -> str:
  """`stderr` without the lines the runtime logs on its own (XLA, CUDA on a GPU machine)."""
  return ''.join(line for line in stderr.splitlines(keepends=True) if not RUNTIME_LINE.match(line))


# For a test's subprocess that needs the CPU, whatever devices the machine has (fake CPU
# devices, several processes of one device each).
CPU_ONLY = dict(JAX_PLATFORMS='cpu')


def small_config(experiment='linear', **overrides):
  """A quick run: linear, both losses, 300 examples, one epoch, seeds 3, 4, 5 (overridable)."""
  if experiment == 'linear':
    overrides = dict(dict(loss='both', epochs=1, seed=3, num_seeds=3, train_examples=300),
                     **overrides)
  return make_config(experiment, **overrides)


_CONFIGS = {}  # spec -> the config it was made from


def make_spec(model, objective, steps_per_epoch, total_steps=None, experiment='linear',
              models_per_chunk=1, **overrides):
  """A TrainSpec of `model` for `steps_per_epoch` steps per epoch (and `total_steps`)."""
  config = small_config(experiment, **overrides)
  spec = program.make_spec(config, model, objective, steps_per_epoch,
                           total_steps or steps_per_epoch, models_per_chunk)
  _CONFIGS[spec] = config
  return spec


def init(key, spec):
  """One model's initial state, at its config's learning rate."""
  return training.init(key, spec, {k: v[0] for k, v in _CONFIGS[spec].hyper([0]).items()})


def train_in_calls(spec, images, labels):
  """One model (init key 0) trained for the spec's steps, a call of `train_epoch` at a time
  (epoch e's key: key 1 folded with e): its final state and the number of calls."""
  state, epoch_fn, calls = init(jax.random.key(0), spec), jax.jit(training.train_epoch), 0
  while int(state.step) < spec.total_steps:
    epoch = int(state.step) // spec.steps_per_epoch
    state, _ = epoch_fn(state, jax.random.fold_in(jax.random.key(1), epoch), images, labels)
    calls += 1
  return state, calls


def init_models(keys, spec):
  """`len(keys)` models' initial states, at their config's learning rate."""
  return training.init_models(keys, spec, _CONFIGS[spec].hyper([0] * len(keys)))


@pytest.fixture(scope='session')
def mnist_dir() -> str:
  return str(data.DEFAULT_MNIST_DIR)


@pytest.fixture(scope='session')
def mnist_train(mnist_dir) -> data.Split:
  return data.load_mnist('train', mnist_dir)


@pytest.fixture(scope='session')
def mnist_test(mnist_dir) -> data.Split:
  return data.load_mnist('test', mnist_dir)


# A quick run with checkpoints, through the command line: 2 seeds x 3 epochs of 1,500 batch-1
# steps, a checkpoint every 100 steps (4,500 steps in about a second), evaluated every epoch.
QUICK_RUN = dict(experiment='linear', loss='logistic', train_examples=1500,
                 checkpoint_every_steps=100, num_seeds=2, eval_every_epochs=1)
QUICK_RUN_FLAGS = [f'--{name}={value}' for name, value in QUICK_RUN.items()]
QUICK_RUN_STEPS = 4500


@pytest.fixture(scope='session')
def quick_run(tmp_path_factory):
  """The quick run, uninterrupted: (its workdir, what it printed)."""
  workdir = tmp_path_factory.mktemp('quick_run')
  result = subprocess.run([sys.executable, str(ROOT / 'main.py'), *QUICK_RUN_FLAGS,
                           f'--workdir={workdir}'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  return workdir, result.stdout
