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

from flax import linen as nn

from dnn_jax import data, models
from dnn_jax.config import Config

NAME = 'lenet'
VARIANT_SETTING = 'c3'
VARIANT_HELP = 'LeNet C3 connections: sparse (Table I) or full.'
VARIANTS = models.C3_VARIANTS
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
