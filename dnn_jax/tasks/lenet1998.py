"""The 1998 paper's LeNet-5 task: its network (core/lenet1998.py) on the ten MNIST digits, judged
by its MAP criterion, sparse C3 (Table I) against full; its figures: the RBF codes and the
training and test error per pass beside the paper's."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from flax import linen as nn

from dnn_jax.config import Config
from dnn_jax.core import data, lenet1998, models, training
from dnn_jax.results import plots
from dnn_jax.tasks import lenet

NAME = 'lenet1998'
VARIANT_SETTING = lenet.VARIANT_SETTING
VARIANT_HELP = lenet.VARIANT_HELP
VARIANTS = models.C3_VARIANTS
OPTIMIZERS = training.OPTIMIZERS  # SGD and the paper's SDLM
CLASS_NAMES = lenet.CLASS_NAMES
TRAIN_ERROR = True  # evaluated on the whole training set after each pass, as the paper's Fig. 5
# The paper's errors after 20 passes without distortions (section III.C, Fig. 5), in %.
PAPER_TEST_ERROR, PAPER_TRAIN_ERROR, PAPER_DISTORTED_TEST_ERROR = 0.95, 0.35, 0.8
CODES_FIGURE, ERROR_FIGURE = FIGURES = ('rbf_codes.png', 'error_per_pass.png')

load_data = lenet.load_data


def make_model(config: Config, variant: str) -> nn.Module:
  background = data.PIXEL_RANGES[config.pixel_scale][0]  # what a 0 pixel is scaled to
  return lenet1998.LeNet5Paper(c3=variant, kernels=config.kernels,
                               initializer=config.initializer, background=background)


def objective(variant: str) -> str:
  del variant  # both C3 variants train on the MAP criterion
  return 'map'


def figures(shown: Mapping[str, plots.Shown], train_split: data.Split,
            title: str) -> dict[str, Callable[[str], Any]]:
  """rbf_codes.png: the ten fixed output codes; error_per_pass.png: each variant's training and
  test error after each pass (mean and range over its shown seeds), the paper's marked."""
  del train_split
  codes = lenet1998.rbf_codes().reshape(10, *lenet1998.CODE_SHAPE)
  panels = {'': [[plots.Panel(f'digit {d}', codes[d]) for d in range(10)]]}
  curves = {}
  for variant, models_shown in shown.items():
    curves[f'{variant} test'] = 100 * (1 - models_shown.test_accuracy)
    curves[f'{variant} training'] = 100 * (1 - models_shown.train_accuracy)
  marks = {f'paper: test {PAPER_TEST_ERROR}%': PAPER_TEST_ERROR,
           f'paper: training {PAPER_TRAIN_ERROR}%': PAPER_TRAIN_ERROR}
  return {
      CODES_FIGURE: lambda path: plots.image_grid(
          panels, path, 'The RBF output codes (7x12, ink +1): a redrawing of the paper\'s Fig. 3',
          panel_size=1.2),
      ERROR_FIGURE: lambda path: plots.error_curves(curves, marks, path, title),
  }
