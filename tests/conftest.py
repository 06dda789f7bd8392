"""Shared fixtures: the real MNIST shipped in data/mnist, loaded once per session."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnn_jax import data  # noqa: E402


@pytest.fixture(scope='session')
def mnist_dir() -> str:
  return str(data.DEFAULT_MNIST_DIR)


@pytest.fixture(scope='session')
def mnist_train(mnist_dir) -> data.Split:
  return data.load_mnist('train', mnist_dir)


@pytest.fixture(scope='session')
def mnist_test(mnist_dir) -> data.Split:
  return data.load_mnist('test', mnist_dir)
