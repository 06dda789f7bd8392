"""The LeNet task: LeNet-5 on the ten MNIST digits, sparse C3 (LeCun 1998, Table I) against
full C3, as the course trained it (tanh, average pooling, a linear F7, cross-entropy)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np
from flax import linen as nn

from dnn_jax.config import Config
from dnn_jax.core import data, models
from dnn_jax.results import plots

NAME = 'lenet'
VARIANT_SETTING = 'c3'
VARIANT_HELP = 'LeNet C3 connections: sparse (Table I) or full.'
VARIANTS = models.C3_VARIANTS
KERNELS_FIGURE, CONNECTIONS_FIGURE = FIGURES = ('c1_kernels.png', 'c3_connections.png')
TRAIN_ERROR = False  # only the test set is evaluated after each epoch
OPTIMIZERS = ('sgd',)  # SDLM needs the paper's network (its second-derivative pass)
CLASS_NAMES = tuple(map(str, range(10)))


def load_data(config: Config) -> tuple[data.Split, data.Split]:
  train = data.load_mnist('train', config.mnist_dir, config.tfds_data_dir)
  test = data.load_mnist('test', config.mnist_dir, config.tfds_data_dir)
  return data.first(train, config.train_examples), test


def make_model(config: Config, variant: str) -> nn.Module:
  return models.LeNet5(c3=variant, kernels=config.kernels, initializer=config.initializer)


def objective(variant: str) -> str:
  del variant  # both C3 variants train on cross-entropy
  return 'cross_entropy'


def figures(shown: Mapping[str, plots.Shown], train_split: data.Split,
            title: str) -> dict[str, Callable[[str], Any]]:
  """c1_kernels.png: the six 5 x 5 C1 kernels of each variant's first shown model;
  c3_connections.png: the L2 norm of each of its 6 x 16 C3 kernel slices."""
  del train_split
  first = {variant: (jax.tree.map(lambda p: np.asarray(p)[0], models_shown.params),
                     models_shown.captions[0]) for variant, models_shown in shown.items()}
  kernels = {f'{variant} C1, {caption}': [[
      plots.Panel(f'map {k}', params['C1']['kernel'][:, :, 0, k], signed=True)
      for k in range(6)]] for variant, (params, caption) in first.items()}
  norms = {f'{variant} C3, {caption}': models.c3_connection_norms(params['C3']['kernel'])
           for variant, (params, caption) in first.items()}
  return {
      KERNELS_FIGURE: lambda path: plots.image_grid(kernels, path, title, caption_size=6),
      CONNECTIONS_FIGURE: lambda path: plots.matrices(
          norms, path, f'L2 norm of each C3 kernel slice: {title}', 'C3 map', 'S2 map',
          [str(o) for o in range(16)], [str(i) for i in range(6)], '.2f'),
  }
