"""metrics.jsonl and the TensorBoard events: a line per call of the epoch function, derived
from the checkpointed history, so that a resumed run never duplicates or loses a line."""

import json
import struct

import numpy as np

from dnn_jax.core import models
from dnn_jax.run import metrics
from dnn_jax.run.history import History
from tests.conftest import make_spec, small_config


def spec_and_history(steps_per_epoch=30, total_steps=75, chunk=7, num_models=2):
  spec = make_spec(models.LinearClassifier(), 'logistic', steps_per_epoch, total_steps,
                   checkpoint_every_steps=chunk, num_seeds=num_models)
  history = History.empty(num_models, spec)
  history.step_losses[:] = np.arange(total_steps) + np.arange(num_models)[:, None]
  history.epoch_times[:] = 1.0
  history.test_accuracy[:, :2] = [[0.9, 0.95], [0.8, np.nan]]
  history.test_loss[:, :2] = 0.1
  return spec, history


def test_call_ends_are_each_chunk_and_each_epoch_end():
  spec, _ = spec_and_history()
  assert metrics.call_ends(spec) == [7, 14, 21, 28, 30, 37, 44, 51, 58, 60, 67, 74, 75]


def test_a_line_is_the_epoch_so_far():
  spec, history = spec_and_history()
  line = metrics.record('logistic', spec, history, 44, 2)
  assert (line['epoch'], line['epoch_end'], line['train_time_s']) == (2, False, 2.0)
  assert line['train_loss'] == [np.mean(np.arange(30, 44)), np.mean(np.arange(31, 45))]
  assert 'test_accuracy' not in line  # tested at epoch ends only
  end = metrics.record('logistic', spec, history, 60, 2)
  assert end['epoch_end'] and end['test_accuracy'] == [0.949999988079071, None]
  assert end['test_accuracy_mean'] == 0.949999988079071  # a model not tested is left out
  assert json.loads(json.dumps(end)) == end  # no NaN in the file
  assert 'train_accuracy' not in end  # the task does not evaluate the training set
  history.train_accuracy[:, 1] = [0.5, 0.75]  # where it does (tasks.lenet1998.TRAIN_ERROR)
  end = metrics.record('logistic', spec, history, 60, 2)
  assert end['train_accuracy'] == [0.5, 0.75] and end['train_accuracy_mean'] == 0.625


def test_a_resumed_variant_rewrites_exactly_the_lines_its_checkpoint_holds(tmp_path):
  config = small_config(num_seeds=2)
  spec, history = spec_and_history()
  log = metrics.MetricsLog(tmp_path, config)
  log.start('logistic', spec, history, 0, 2)
  for step in (7, 14, 21, 28):
    log.append(metrics.record('logistic', spec, history, step, 2))
  log.close()
  with open(tmp_path / metrics.METRICS_FILE, 'a') as f:
    f.write('{"variant": "logistic", "step": 3')  # a line cut short by a kill
  written = [json.loads(l) for l in (tmp_path / metrics.METRICS_FILE).read_text().splitlines()[:4]]

  log.start('logistic', spec, history, 14, 2)  # the checkpoint at 14: lines 21 and 28 go
  lines = [json.loads(l) for l in (tmp_path / metrics.METRICS_FILE).read_text().splitlines()]
  assert lines == written[:2]  # times kept
  log.start('logistic', spec, history, 37, 2)  # lines 21..37 missing: made from the history
  lines = [json.loads(l) for l in (tmp_path / metrics.METRICS_FILE).read_text().splitlines()]
  log.close()
  assert [l['step'] for l in lines] == [7, 14, 21, 28, 30, 37]
  assert lines[:2] == written[:2] and lines[2]['time'] is None
  assert [l for l in lines if l['epoch_end']] == [dict(metrics.record(
      'logistic', spec, history, 30, 2), time=None)]


def tensorboard_scalars(folder):
  """{tag: [(step, value)]} of the event files under `folder` (TFRecord framing: length,
  its crc, the Event proto, its crc)."""
  from tensorboardX.proto import event_pb2
  scalars = {}
  for path in sorted(folder.glob('events.out.tfevents.*')):
    data, offset = path.read_bytes(), 0
    while offset < len(data):
      length, = struct.unpack('<Q', data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        if value.HasField('simple_value'):
          scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_tensorboard_has_each_line_per_variant_and_model(tmp_path):
  config = small_config(num_seeds=2)
  spec, history = spec_and_history()
  log = metrics.MetricsLog(tmp_path, config)
  log.start('logistic', spec, history, 0, 2)
  for step in metrics.call_ends(spec)[:5]:
    log.append(metrics.record('logistic', spec, history, step, 2))
  log.close()
  scalars = tensorboard_scalars(tmp_path / metrics.TENSORBOARD_DIR / 'logistic')
  assert [s for s, _ in scalars['train_loss/mean']] == [7, 14, 21, 28, 30]
  assert scalars['test_accuracy/seed_4'] == [(30, 0.800000011920929)]  # seeds 3 and 4
  assert scalars['test_accuracy/mean'] == [(30, 0.8500000238418579)]
