"""A linear classifier on MNIST 4 (-> -1) vs 9 (-> +1): logistic against sum-of-squares loss.

Command:  python main.py --experiment=linear --loss=both
Expected: about 96-97% test accuracy for both losses after 3 batch-1 epochs (the course:
96.74% logistic, 97.09% sum of squares, one run each; run-to-run spread is about 1%).

The course's second protocol, uniform random single samples on raw pixels:
  python main.py --experiment=linear --loss=both --sampling=with_replacement \
      --steps=50000 --pixel_scale=raw --learning_rate=1e-4 --bias
Expected: logistic about 95.5%; sum of squares sometimes collapses to one class.
"""

from __future__ import annotations

from flax import linen as nn

from dnn_jax import data, models
from dnn_jax.config import Config

NAME = 'linear'
VARIANT_FLAG = 'loss'
VARIANTS = ('logistic', 'sum_of_squares')
# The course's run: batch 1, 3 epochs, lr 255e-4, [0, 1] pixels, no bias, shuffled.
DEFAULTS = dict(loss='logistic', epochs=3, batch_size=1, learning_rate=255e-4,
                pixel_scale='unit', sampling='shuffle')


def load_data(config: Config) -> tuple[data.Split, data.Split]:
  splits = [data.binary_4_vs_9(data.load_mnist(s, config.mnist_dir, config.tfds_data_dir))
            for s in ('train', 'test')]
  return data.first(splits[0], config.train_examples), splits[1]


def make_model(config: Config, variant: str) -> nn.Module:
  del variant  # both losses train the same model
  return models.LinearClassifier(bias=config.bias, initializer=config.initializer)


def objective(variant: str) -> str:
  return variant
