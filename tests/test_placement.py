"""Placement of the seed axis: padded and sharded over several devices with the same numbers,
and a memory check that fails early, naming the largest seed count that fits."""

import os
import subprocess
import sys

import numpy as np
import pytest

from dnn_jax import loop, placement
from dnn_jax.config import ConfigError
from dnn_jax.experiments import linear
from tests.conftest import ROOT, small_config


def test_too_many_seeds_fail_early_naming_the_largest_that_fits(monkeypatch):
  monkeypatch.setattr(placement, 'available_memory_bytes', lambda: 64 * 2**20)
  with pytest.raises(ConfigError, match=r'--num_seeds=100000 needs about .* GiB per device '
                     r'.* the largest --num_seeds that fits is \d+'):
    loop.train_variant(small_config(num_seeds=100_000), linear, 'logistic',
                       *linear.load_data(small_config()), log=print)


SHARDED = """
import jax, numpy as np
from dnn_jax import loop, placement
from dnn_jax.experiments import linear
from tests.conftest import small_config
assert len(jax.devices()) == 4
where = placement.place(5)
assert where.padded_seeds == 8 and where.seeds.num_devices == 4
r = loop.train_variant(small_config(num_seeds=5), linear, 'logistic',
                       *linear.load_data(small_config()), log=print)
assert len(r['correct']) == 5 and r['step_losses'].shape == (5, 300)
np.save('{out}', r['step_losses'])
"""


def test_seed_axis_shards_over_four_cpu_devices(tmp_path):
  out = tmp_path / 'losses.npy'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             PYTHONPATH=str(ROOT))
  result = subprocess.run([sys.executable, '-c', SHARDED.format(out=out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  one_device = loop.train_variant(small_config(num_seeds=5), linear, 'logistic',
                                  *linear.load_data(small_config()), log=print)
  np.testing.assert_allclose(np.load(out), one_device['step_losses'], rtol=1e-5)
