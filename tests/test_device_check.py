"""The device check runs end to end in its small mode, on any machine, and writes what it
would write on a GPU: every stage's findings in results.json, report.md and log.txt."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_device_check_s_small_mode_writes_every_stage(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'benchmarks.device_check', '--small',
                           f'--out={tmp_path}', f'--peer={tmp_path / "none.py"}'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['log.txt', 'report.md', 'results.json']
  found = json.loads((tmp_path / 'results.json').read_text())
  stages = ['environment', 'precision', 'determinism', 'course', 'tests', 'speed', 'peer']
  assert set(found) == {*stages, 'verdicts'}
  assert all(found[stage]['stage_exit_code'] == 0 for stage in stages), found
  assert found['precision']['float32']['regression_within_1e_5']
  for deterministic in ('True', 'False'):  # the CPU is deterministic either way
    run = found['determinism'][f'deterministic={deterministic}']
    assert run['exit_codes'] == [0, 0] and run['same_numbers']
    assert run['evaluation_repeats_training']
  assert all(found['course'][name]['evaluation_repeats_training'] for name in ('lenet', 'linear'))
  assert found['tests']['exit_code'] == 0
  assert {row['case'] for row in found['speed']['rows']} == {'lenet', 'linear'}
  assert 'skipped' in found['peer']
  assert found['verdicts'] == 'small: slices, no targets'
