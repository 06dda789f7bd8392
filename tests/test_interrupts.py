"""Signals: the first asks for a stop, the second aborts; the previous handlers come back."""

import os
import signal
import time

import pytest

from dnn_jax.run import interrupts


def test_first_signal_requests_a_stop_and_second_aborts():
  messages = []
  before = signal.getsignal(signal.SIGTERM)
  with interrupts.stop_requests(messages.append) as stops:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # let the handler run
    assert stops == [signal.SIGTERM] and 'send it again to abort' in messages[0]
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
  assert signal.getsignal(signal.SIGTERM) is before
