"""Many seeds at once: equivalence with single runs, sharding, memory check, outputs."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.conftest import ROOT
from dnn_jax import data, run
from dnn_jax.config import ConfigError, resolve
from experiments import linear


def small_config(**overrides):
  values = dict(experiment='linear', loss='both', epochs=1, steps=0, batch_size=1,
                learning_rate=None, pixel_scale=None, sampling=None, bias=False,
                initializer='torch', seed=3, num_seeds=3, train_examples=300,
                eval_batch_size=1000, conv_impl='patches',
                mnist_dir=str(data.DEFAULT_MNIST_DIR), tfds_data_dir=None)
  values.update(overrides)
  return resolve(values, linear.DEFAULTS, linear.VARIANT_FLAG, linear.VARIANTS)


@pytest.fixture(scope='module')
def splits():
  return linear.load_data(small_config())


def test_seed_i_of_a_vmapped_run_equals_a_single_run(splits):
  many = run.train_variant(small_config(num_seeds=3), linear, 'logistic', *splits, log=print)
  for i in range(3):
    one = run.train_variant(small_config(seed=3 + i, num_seeds=1), linear, 'logistic',
                            *splits, log=print)
    np.testing.assert_allclose(one['step_losses'][0], many['step_losses'][i], rtol=1e-5)
    assert one['correct'][0] == many['correct'][i]
    assert one['test_loss'][0] == pytest.approx(many['test_loss'][i], rel=1e-5)


def test_too_many_seeds_fail_early_naming_the_largest_that_fits(splits, monkeypatch):
  monkeypatch.setattr(run, 'available_memory_bytes', lambda: 64 * 2**20)
  with pytest.raises(ConfigError, match=r'--num_seeds=100000 needs about .* GiB per device '
                     r'.* the largest --num_seeds that fits is \d+'):
    run.train_variant(small_config(num_seeds=100_000), linear, 'logistic', *splits,
                      log=print)


def test_outputs_are_written(tmp_path):
  results = run.train_and_evaluate(small_config(), linear, tmp_path, log=lambda s: None)
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved['variance_table'] == (tmp_path / 'variance_table.md').read_text().strip()
  assert '| 5 |' in saved['variance_table']  # seeds 3, 4, 5
  assert set(saved['statistics']) == {'logistic', 'sum_of_squares', 'difference'}
  assert len(results['variants']['logistic']['collapsed']) == 3
  png = (tmp_path / 'loss_curve.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 10_000


SHARDED = """
import jax, numpy as np
from dnn_jax import run
from tests.test_run import small_config, linear
assert len(jax.devices()) == 4
padded, sharding, _ = run.seed_shardings(5)
assert padded == 8 and sharding.num_devices == 4
r = run.train_variant(small_config(num_seeds=5), linear, 'logistic', *linear.load_data(small_config()), log=print)
assert len(r['correct']) == 5 and r['step_losses'].shape == (5, 300)
np.save('{out}', r['step_losses'])
"""


def test_seed_axis_shards_over_four_cpu_devices(tmp_path, splits):
  out = tmp_path / 'losses.npy'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             PYTHONPATH=str(ROOT))
  result = subprocess.run([sys.executable, '-c', SHARDED.format(out=out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  one_device = run.train_variant(small_config(num_seeds=5), linear, 'logistic', *splits,
                                 log=print)
  np.testing.assert_allclose(np.load(out), one_device['step_losses'], rtol=1e-5)
