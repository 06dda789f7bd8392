"""Progress lines for long calls: every model done in chunk after chunk is reported once."""

import jax
import numpy as np

from dnn_jax.core import models, training
from dnn_jax.run import progress
from dnn_jax.run.program import train_epoch_over_models
from tests.conftest import make_spec

train_epoch_models = jax.jit(train_epoch_over_models, donate_argnums=0)


def test_a_line_says_models_done_images_per_second_and_time_left():
  lines = []
  watched = progress.Progress('[full] epoch 2', 4, 600, lines.append, every_s=0)
  for _ in range(4):
    watched.advance()
  assert len(lines) == 3  # none for the last model: the epoch's own line follows
  assert lines[0].startswith('[full] epoch 2: 1/4 models, ') and 'images/s, about' in lines[0]
  assert lines[-1].startswith('[full] epoch 2: 3/4 models, ') and lines[-1].endswith(' left')


def test_the_compiled_epoch_reports_each_model_of_its_chunks(mnist_train):
  images, labels = mnist_train.images[:40], mnist_train.labels[:40]
  spec = make_spec(models.LinearClassifier(), 'logistic', 20, batch_size=2, models_per_chunk=2,
                   learning_rate=0.01)
  num_models = 5  # chunks of 2, 2 and 1
  state = training.init_models(jax.random.split(jax.random.key(0), num_models), spec,
                               {'learning_rate': np.full(num_models, 0.01, np.float32)})
  keys = jax.random.split(jax.random.key(1), num_models)
  with progress.watching(progress.Progress('', num_models, 40, lambda _: None)) as watched:
    state, losses = train_epoch_models(state, keys, images, labels)
    jax.block_until_ready(losses)
  assert watched.done == num_models
  state, losses = train_epoch_models(state, keys, images, labels)  # nothing watched
  jax.block_until_ready(losses)
  assert watched.done == num_models
