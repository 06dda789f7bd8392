"""Placement of the models axis: padded and sharded over several devices with the same numbers;
the CPU rule for the chunk width; and a memory check that fails early, naming the largest
number of models that fits."""

import os
import subprocess
import sys

import numpy as np
import pytest

from dnn_jax.run import loop, placement
from dnn_jax.errors import ConfigError
from dnn_jax.tasks import linear
from dnn_jax.core import platform
from tests.conftest import CPU_ONLY, ROOT, cpu_only, small_config


@pytest.mark.parametrize('overrides, what', [
    (dict(num_seeds=1_500), r'--num_seeds=1500 needs about .* GiB per device .* the '
                             r'largest --num_seeds that fits is \d+'),
    (dict(num_seeds=750, learning_rate=(0.01, 0.02)),
     r'a grid of 2 values x 750 seeds \(1500 models\) needs about .* the largest number of '
     r'models that fits is \d+')], ids=['seeds', 'grid'])
def test_too_many_models_fail_early_naming_the_largest_that_fits(monkeypatch, overrides, what):
  monkeypatch.setattr(placement, 'available_memory_bytes', lambda: 2**20)
  with pytest.raises(ConfigError, match=what):
    loop.run_variant(small_config(**overrides), linear, 'logistic',
                     *linear.load_data(small_config()), log=print)


GRID = dict(num_seeds=3, learning_rate=(0.01, 0.03))  # 6 models, padded to 8 on 4 devices
SHARDED = """
import jax, numpy as np
from dnn_jax.run import loop, placement
from dnn_jax.tasks import linear
from tests.conftest import small_config
assert len(jax.devices()) == 4
where = placement.place(6)
assert where.padded_models == 8 and where.models.num_devices == 4
r = loop.run_variant(small_config(**{grid}), linear, 'logistic',
                     *linear.load_data(small_config()), log=print)
assert len(r.results['correct']) == 6 and r.step_losses.shape == (6, 300)
np.save('{out}', r.step_losses)
"""


def test_a_grid_shards_over_four_cpu_devices(tmp_path):
  out = tmp_path / 'losses.npy'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', **CPU_ONLY,
             PYTHONPATH=str(ROOT))
  result = subprocess.run([sys.executable, '-c', SHARDED.format(out=out, grid=GRID)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  one_device = loop.run_variant(small_config(**GRID), linear, 'logistic',
                                *linear.load_data(small_config()), log=print)
  np.testing.assert_allclose(np.load(out), one_device.step_losses, rtol=1e-5)


@cpu_only
def test_the_cpu_rule_for_the_chunk_width(monkeypatch):
  monkeypatch.delenv(platform.ACCELERATOR_DEFAULTS, raising=False)
  assert placement.chunk_width(0, 8, lambda: 250e6) == 1  # a LeNet step fills the CPU
  assert placement.chunk_width(0, 8, lambda: 6e3) == 8    # a batch-1 linear step does not
  assert placement.chunk_width(0, 8, lambda: 3e6) == 3
  assert placement.chunk_width(5, 8, lambda: 6e3) == 5 and placement.chunk_width(9, 8, None) == 8
