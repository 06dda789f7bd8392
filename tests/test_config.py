"""The settings schema: flags derived from it, values checked, identity, JSON and grids."""

import dataclasses
import json
import re

import numpy as np
import pytest

from dnn_jax import cli
from dnn_jax import config as config_lib
from dnn_jax.catalog import make_config
from dnn_jax.config import Config, ConfigError


def test_every_setting_is_a_flag_with_its_help():
  for field in dataclasses.fields(Config):
    if field.name in ('variants', 'task'):
      continue
    flag = cli.FLAGS[field.name]
    assert field.metadata['help'] in flag.help
    if field.metadata['choices'] and field.name != 'experiment':
      assert f'Accepted: {", ".join(field.metadata["choices"])}.' in flag.help


@pytest.mark.parametrize('overrides, message', [
    (dict(experiment='lenet', c3='half'), '--c3=half: accepted: sparse, full, both'),
    (dict(experiment='lenet', sampling='bootstrap'), '--sampling=bootstrap: accepted: shuffle'),
    (dict(experiment='lenet', learning_rate=0.0), '--learning_rate=0.0: --learning_rate must be'),
    (dict(experiment='lenet', steps=-1), '--steps=-1: --steps must be >= 0'),
    (dict(experiment='lenet', seed=2**31 - 2, num_seeds=4), '--seed=2147483646 with --num_seeds=4'),
])
def test_bad_values_are_config_errors_naming_flag_value_and_accepted(overrides, message):
  with pytest.raises(ConfigError, match=message):
    make_config(**overrides)


def test_identity_leaves_out_what_changes_only_speed_or_location():
  identity = config_lib.identity_fields()
  assert {'learning_rate', 'num_seeds', 'variants', 'experiment', 'task', 'seed'} <= set(identity)
  assert not {'kernels', 'micro_batches', 'mnist_dir', 'eval_batch_size'} & set(identity)


def test_json_round_trip():
  config = make_config('lenet', c3='both', num_seeds=3)
  assert Config.from_json(config.to_json()) == config


def test_a_list_of_learning_rates_is_a_grid_of_models():
  config = make_config('linear', learning_rate=[0.01, 0.1], num_seeds=3, seed=5)
  assert config.learning_rate == (0.01, 0.1) and config.num_models == 6
  assert config.grid == ({'learning_rate': 0.01}, {'learning_rate': 0.1})
  assert [config.model(m) for m in (0, 2, 3)] == [
      ({'learning_rate': 0.01, 'sdlm_mu': 0.02}, 5), ({'learning_rate': 0.01, 'sdlm_mu': 0.02}, 7),
      ({'learning_rate': 0.1, 'sdlm_mu': 0.02}, 5)]
  assert config.describe_model(3) == 'learning_rate 0.1, seed 5'
  np.testing.assert_array_equal(config.hyper([5, 0])['learning_rate'],
                                np.array([0.1, 0.01], np.float32))
  assert Config.from_json(json.loads(json.dumps(config.to_json()))) == config
  single = make_config('linear', learning_rate=[0.01])
  assert single.learning_rate == 0.01 and single.grid == ({},) and single.describe_model(0) == 'seed 0'


@pytest.mark.parametrize('rates, message', [((0.1,), 'a sweep needs two values or more'),
                                            ((0.1, -1.0), r'--learning_rate=0.1,-1.0: .* positive')])
def test_bad_grids_are_config_errors(rates, message):
  with pytest.raises(ConfigError, match=message):
    Config.from_json(dict(make_config('linear').to_json(), learning_rate=list(rates)))


@pytest.mark.parametrize('settings, message', [
    (dict(epochs='3'), "--epochs=3: accepted: a whole number (not str '3')"),
    (dict(num_seeds=2.5), '--num_seeds=2.5: accepted: a whole number (not float 2.5)'),
    (dict(seed=1.5), '--seed=1.5: accepted: a whole number'),
    (dict(learning_rate=[]), '--learning_rate=[]: accepted: a number, or a list of them'),
    (dict(bias='False'), "--bias=False: accepted: True or False (not str 'False')"),
    (dict(learning_rate=True), '--learning_rate=True: accepted: a number, or a list of them to '
     'sweep (not bool True)'),
    (dict(learning_rate=[0.1, '0.2']), "accepted: a number, or a list of them to sweep (not str"),
    (dict(epochs=True), '--epochs=True: accepted: a whole number (not bool True)'),
    (dict(kernels=1), '--kernels=1: accepted: a text'),
    (dict(learning_rate=1e-50), 'must be positive and finite in float32'),
    (dict(learning_rate=[0.1, float('inf')]), 'item 2 (inf) must be positive and finite'),
], ids=lambda v: str(v))
def test_the_api_checks_types_and_values_as_the_flags_do(settings, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    make_config('linear', **settings)


def test_numbers_of_other_python_types_become_the_declared_ones():
  config = make_config('linear', learning_rate=1, epochs=np.int64(2), bias=np.bool_(True))
  assert (config.learning_rate, config.epochs, config.bias) == (1.0, 2, True)
  assert (type(config.learning_rate), type(config.epochs), type(config.bias)) == (float, int, bool)
