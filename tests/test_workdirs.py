"""A workdir's identity: config.json saved once, another configuration refused by name, what
changes only speed or location accepted, damaged files named."""

import json

import pytest

from dnn_jax.run import driver, workdirs
from dnn_jax.errors import ConfigError
from tests.conftest import small_config


def test_mismatched_config_is_refused_naming_the_fields(tmp_path):
  workdirs.check_config(tmp_path, small_config(num_seeds=2))
  workdirs.check_config(tmp_path, small_config(num_seeds=2, mnist_dir='/elsewhere',
                                              kernels='stock', micro_batches=2))
  with pytest.raises(ConfigError, match=r"learning_rate \(saved 0.0255, now 0.1\); num_seeds "
                     r"\(saved 2, now 3\)\. .*--overwrite"):
    workdirs.check_config(tmp_path, small_config(num_seeds=3, learning_rate=0.1))
  (tmp_path / 'checkpoints').mkdir()
  workdirs.check_config(tmp_path, small_config(num_seeds=3), driver.layout(small_config()),
                        overwrite=True)
  assert not (tmp_path / 'checkpoints').exists()
  assert json.loads((tmp_path / 'config.json').read_text())['num_seeds'] == 3
  assert workdirs.load_config(tmp_path) == small_config(num_seeds=3)


@pytest.mark.parametrize('contents, message', [('{"experi', 'is damaged'),
                                               ('[1, 2]', 'holds a JSON list')])
def test_a_damaged_config_is_one_error_naming_the_way_out(tmp_path, contents, message):
  (tmp_path / 'config.json').write_text(contents)
  with pytest.raises(ConfigError, match=f'{message}.*--overwrite'):
    workdirs.check_config(tmp_path, small_config())
