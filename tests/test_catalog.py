"""The experiments of experiments/: each a valid file with its command and expected result;
their settings, bases and course protocols applied by name; overrides win; bad names are
one-line errors."""

import re

import pytest

from dnn_jax import catalog
from dnn_jax.catalog import make_config
from dnn_jax.errors import ConfigError
from tests.conftest import ROOT


def test_every_shipped_experiment_says_its_command_run_time_and_expected_result():
  names = catalog.names()
  assert {'lenet', 'lenet_lr_sweep', 'linear', 'linear_with_replacement', 'linear_lr_sweep',
          'theory'} <= set(names)
  assert names == tuple(sorted(p.stem for p in (ROOT / 'experiments').glob('*.py')))
  for name in names:
    doc = catalog.load(name).doc
    assert 'Command:' in doc and 'Run time:' in doc and 'Expected:' in doc, name
    command = doc.split('Command:')[1].split('Run time:')[0]
    assert f'python main.py --experiment={name}' in command, name


@pytest.mark.parametrize('name', [n for n in catalog.names() if n != 'theory'])
def test_every_training_experiment_gives_a_valid_config(name):
  config = make_config(name)
  assert (config.experiment, config.task) == (name, catalog.load(name).task)


def test_bases_and_protocols_set_their_values_and_overrides_win():
  raw = make_config('linear', 'with_replacement')
  assert raw == make_config('linear_with_replacement')
  assert (raw.steps, raw.pixel_scale, raw.learning_rate, raw.bias, raw.sampling, raw.epochs) == (
      50_000, 'raw', 1e-4, True, 'with_replacement', 3)
  assert raw.variants == ('logistic',) and raw.experiment == 'linear_with_replacement'
  overridden = make_config('linear', 'with_replacement', learning_rate=0.5, loss='both')
  assert overridden.learning_rate == 0.5 and overridden.variants == ('logistic', 'sum_of_squares')
  assert make_config('linear', 'epochs') == make_config('linear')
  assert make_config('linear').steps == 0
  lenet = make_config('lenet', c3='both')
  assert lenet.variants == ('sparse', 'full') and lenet.batch_size == 100
  assert lenet.kernels in ('cpu', 'stock') and lenet.micro_batches >= 1  # auto resolved
  sweep = make_config('linear_lr_sweep')
  assert sweep.learning_rate == (1e-5, 3e-5, 1e-4, 3e-4, 1e-3) and sweep.num_models == 80
  assert (sweep.steps, sweep.bias) == (50_000, True)  # from its base


def test_an_experiment_file_of_ones_own_runs_by_its_path(tmp_path):
  path = tmp_path / 'my_lenet.py'
  path.write_text('"""Mine."""\nBASE = "lenet"\nSETTINGS = dict(epochs=2, learning_rate=0.2)\n')
  config = make_config(str(path))
  assert (config.experiment, config.task, config.epochs, config.learning_rate,
          config.batch_size) == (str(path), 'lenet', 2, 0.2, 100)


@pytest.mark.parametrize('text, message', [
    ('SETTINGS = 3\nTASK = "lenet"\n', 'must define SETTINGS (a dict) and one of TASK'),
    ('SETTINGS = {}\n', 'must define SETTINGS (a dict) and one of TASK'),
    ('SETTINGS = {}\nTASK = "resnet"\n',
     "TASK = 'resnet'; accepted: lenet, lenet1998, linear, theory"),
    ('SETTINGS = {\n', 'cannot be read (SyntaxError'),
])
def test_a_bad_experiment_file_is_one_line(tmp_path, text, message):
  path = tmp_path / 'bad.py'
  path.write_text(text)
  with pytest.raises(ConfigError, match=re.escape(message)):
    make_config(str(path))


@pytest.mark.parametrize('overrides, message', [
    (dict(experiment='resnet'),
     '--experiment=resnet: accepted: lenet, lenet1998, lenet1998_distorted, lenet_lr_sweep'),
    (dict(experiment='lenet', protocol='epochs'),
     '--protocol=epochs: accepted for --experiment=lenet: course'),
    (dict(experiment='theory'), '--experiment=theory trains nothing'),
    (dict(experiment='lenet', loss='logistic'), '--loss=logistic applies only to '
     '--experiment=linear'),
    (dict(experiment='lenet', lr=0.1), '--lr: no such setting; accepted: '),
])
def test_bad_names_are_config_errors(overrides, message):
  with pytest.raises(ConfigError, match=message):
    make_config(**overrides)
