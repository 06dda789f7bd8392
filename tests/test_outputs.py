"""What a run writes: results.json with the table, the table itself, and the loss figure."""

import json

from dnn_jax import driver
from tests.conftest import small_config


def test_outputs_are_written(tmp_path):
  results = driver.train_and_evaluate(small_config(), tmp_path, log=lambda s: None)
  saved = json.loads((tmp_path / 'results.json').read_text())
  assert saved == json.loads(json.dumps(results))
  assert saved['variance_table'] == (tmp_path / 'variance_table.md').read_text().strip()
  assert '| 5 |' in saved['variance_table']  # seeds 3, 4, 5
  assert set(saved['statistics']) == {'logistic', 'sum_of_squares', 'difference'}
  assert len(results['variants']['logistic']['collapsed']) == 3
  assert saved['config']['protocol'] == 'epochs'
  png = (tmp_path / 'loss_curve.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 10_000
