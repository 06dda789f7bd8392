"""The platform policy: the precision setting reaches every matmul and convolution of the
compiled step; the auto settings' accelerator values can be forced on the CPU to test them;
XLA's deterministic flag is set before JAX starts, and never changed after."""

import os
import re
import subprocess
import sys

import jax
import pytest

from dnn_jax.core import kernels, models, platform, training
from dnn_jax.run import placement
from tests.conftest import CPU_ONLY, ROOT, init, make_spec

# What StableHLO says of a float32 dot or convolution at each precision setting.
HLO_PRECISION = {'float32': 'HIGHEST', 'tf32': 'HIGH'}


@pytest.mark.parametrize('precision', list(platform.PRECISIONS))
def test_the_precision_setting_reaches_every_dot_and_convolution(precision):
  spec = make_spec(models.LeNet5(kernels='stock'), 'cross_entropy', 1, experiment='lenet',
                   batch_size=2, precision=precision)
  state = init(jax.random.key(0), spec)
  batch = (jax.numpy.zeros((2, 28, 28, 1), jax.numpy.uint8), jax.numpy.zeros(2, jax.numpy.int32))
  text = jax.jit(training.train_step).lower(state, batch).as_text()
  in_dots = re.findall(r'dot_general .*precision = \[(\w+), (\w+)\]', text)
  in_convolutions = re.findall(r'convolution.*<precision (\w+)>, #stablehlo<precision (\w+)>',
                               text)
  assert len(in_dots) >= 6 and len(in_convolutions) >= 4  # forward and backward, every layer
  assert {p for pair in in_dots + in_convolutions for p in pair} == {HLO_PRECISION[precision]}


def test_the_accelerator_defaults_can_be_forced_on_the_cpu(monkeypatch):
  monkeypatch.setenv(platform.ACCELERATOR_DEFAULTS, '1')
  assert platform.on_accelerator() and kernels.default_kernels() == 'stock'
  assert training.default_micro_batches() == 1
  assert placement.chunk_width(0, 8, lambda: 250e6) == 8  # every model side by side


DETERMINISM = """
import os
from dnn_jax.core import platform
assert platform.set_deterministic(True) and platform.deterministic()
assert platform.DETERMINISTIC_FLAG in os.environ['XLA_FLAGS'].split()
assert platform.set_deterministic(False) and not platform.deterministic()
import jax; jax.numpy.ones(1).block_until_ready()  # JAX starts its backends
assert platform.set_deterministic(False) and not platform.set_deterministic(True)
print('ok')
"""


def test_the_deterministic_flag_is_set_before_jax_starts_and_never_after():
  env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS='--xla_cpu_enable_fast_math=false',
             **CPU_ONLY)
  result = subprocess.run([sys.executable, '-c', DETERMINISM], env=env, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0 and result.stdout == 'ok\n', result.stderr
