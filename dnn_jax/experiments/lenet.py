r"""LeNet-5 on the ten MNIST digits, sparse C3 (LeCun 1998, Table I) against full C3.

Command:  python main.py --experiment=lenet --c3=both
Expected: 98.67% sparse, 98.71% full (seed 0, 10 epochs; the course: 98.41% / 98.64% sparse,
98.67% / 98.71% full); 60,806 parameters sparse, 61,706 full.

A learning-rate sweep (80 models per variant, about 11 minutes each on 2 CPU cores):
Command:  python main.py --experiment=lenet --c3=both --num_seeds=8 \
          --learning_rate=0.02,0.05,0.1,0.2,0.5
Expected: best rate 0.5 (98.88% sparse, 98.87% full); sparse - full between -0.25 and +0.01
points, no Welch p under 0.05.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np
from flax import linen as nn

from dnn_jax import data, models, plots
from dnn_jax.config import Config

NAME = 'lenet'
VARIANT_SETTING = 'c3'
VARIANT_HELP = 'LeNet C3 connections: sparse (Table I) or full.'
VARIANTS = models.C3_VARIANTS
CLASS_NAMES = tuple(map(str, range(10)))
PROTOCOLS = {
    # The course's run: SGD lr 0.1, batch 100, 10 epochs, [0, 1] pixels, shuffled each epoch.
    'course': dict(c3='sparse', epochs=10, batch_size=100, learning_rate=0.1,
                   pixel_scale='unit', sampling='shuffle'),
}


def load_data(config: Config) -> tuple[data.Split, data.Split]:
  train = data.load_mnist('train', config.mnist_dir, config.tfds_data_dir)
  test = data.load_mnist('test', config.mnist_dir, config.tfds_data_dir)
  return data.first(train, config.train_examples), test


def make_model(config: Config, variant: str) -> nn.Module:
  return models.LeNet5(c3=variant, kernels=config.kernels, initializer=config.initializer)


def objective(variant: str) -> str:
  del variant  # both C3 variants train on cross-entropy
  return 'cross_entropy'


def figures(shown: Mapping[str, Any], train_split: data.Split,
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
      'c1_kernels.png': lambda path: plots.image_grid(kernels, path, title, caption_size=6),
      'c3_connections.png': lambda path: plots.matrices(
          norms, path, f'L2 norm of each C3 kernel slice: {title}', 'C3 map', 'S2 map',
          [str(o) for o in range(16)], [str(i) for i in range(6)], '.2f'),
  }
