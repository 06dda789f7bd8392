"""The speed benchmark runs end to end in --quick mode (no timing is asserted)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, ours


@pytest.mark.slow
def test_quick_benchmark_writes_table_and_json(tmp_path):
  out = tmp_path / 'bench'
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.speed', '--quick', '--cases=linear',
       '--seed_counts=1,2', '--sweep_seeds=2', f'--out={out}'], cwd=ROOT, capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  rows = json.loads(out.with_suffix('.json').read_text())['rows']
  assert {(r['case'], r['variant'], r['grid'], r['num_seeds']) for r in rows} == {
      ('linear', variant, grid, n) for variant in ('logistic', 'sum_of_squares')
      for grid, n in ((1, 1), (1, 2), (5, 2))}
  for r in rows:
    assert r['epoch_s'] > 0 and r['compile_s'] > 0 and r['eval_images_per_s'] > 0
    assert r['run_s'] == r['epochs'] * r['epoch_s']
    # XLA's FLOPs for a batch-1 step: at least the 2 x 784 of the forward dot, per seed.
    assert r['step_flops'] >= 2 * 784 * r['num_models'] and 0 < r['share_of_matmul_peak']
    assert r['num_models'] == r['grid'] * r['num_seeds']
  table = out.with_suffix('.md').read_text()
  assert table.count('\n| ') == 1 + 6 and 'Device: ' in table  # header and 6 rows
  assert '| 5 x 2 |' in table and 'x one model' in table


def test_an_unknown_case_is_one_line_and_exit_2(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'benchmarks.speed', '--cases=resnet',
                           f'--out={tmp_path / "bench"}'], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 2 and ours(result.stderr).strip().count('\n') == 0
  assert '--cases=resnet' in result.stderr and 'linear_with_replacement' in result.stderr
