"""The linear task: a linear classifier on MNIST 4 (-> -1) vs 9 (-> +1), logistic against
sum-of-squares loss."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from flax import linen as nn

from dnn_jax.config import Config
from dnn_jax.core import data, models
from dnn_jax.results import plots

NAME = 'linear'
VARIANT_SETTING = 'loss'
VARIANT_HELP = 'Linear model loss.'
VARIANTS = ('logistic', 'sum_of_squares')
WEIGHTS_FIGURE = 'weights.png'
FIGURES = (WEIGHTS_FIGURE,)
TRAIN_ERROR = False  # only the test set is evaluated after each epoch
OPTIMIZERS = ('sgd',)  # SDLM needs the paper's network (its second-derivative pass)
CLASS_NAMES = tuple(map(str, data.BINARY_DIGITS))  # class 0 is label -1, class 1 label +1


def load_data(config: Config) -> tuple[data.Split, data.Split]:
  splits = [data.binary_4_vs_9(data.load_mnist(s, config.mnist_dir, config.tfds_data_dir))
            for s in ('train', 'test')]
  return data.first(splits[0], config.train_examples), splits[1]


def make_model(config: Config, variant: str) -> nn.Module:
  del variant  # both losses train the same model
  return models.LinearClassifier(bias=config.bias, initializer=config.initializer)


def objective(variant: str) -> str:
  return variant


def figures(shown: Mapping[str, plots.Shown], train_split: data.Split,
            title: str) -> dict[str, Callable[[str], Any]]:
  """weights.png: each variant's weights as a 28 x 28 image (positive: evidence for a 9),
  the mean over its shown seeds and the first of them, beside the training set's mean 4
  and mean 9 and their difference."""
  four, nine = (train_split.images[train_split.labels == label, :, :, 0].mean(axis=0) / 255
                for label in (-1, 1))
  blocks = {'the training set': [[
      plots.Panel(f'mean {CLASS_NAMES[0]}', four), plots.Panel(f'mean {CLASS_NAMES[1]}', nine),
      plots.Panel(f'mean {CLASS_NAMES[1]} - mean {CLASS_NAMES[0]}', nine - four, True, True)]]}
  for variant, models_shown in shown.items():
    weights = np.asarray(models_shown.params['linear']['kernel']).reshape(-1, 28, 28)
    blocks[f'{variant}: the weights'] = [[
        plots.Panel(f'mean over {len(weights)} seed(s)', weights.mean(axis=0), True, True),
        plots.Panel(models_shown.captions[0], weights[0], True, True)]]
  return {WEIGHTS_FIGURE: lambda path: plots.image_grid(blocks, path, title, panel_size=2.6)}
