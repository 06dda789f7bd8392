"""The parent of a multi-process run's process: the runtime's aborts as one line, the rest of
the output passed through, signals passed on."""

import signal
import sys
import textwrap

import pytest

from dnn_jax.run import supervisor

# The children are forked (to be killed with their parent), after JAX was imported here.
pytestmark = pytest.mark.filterwarnings('ignore:os.fork')

# What JAX's runtime (jaxlib 0.10.2) prints before it aborts a process, in each case.
UNREACHABLE = """\
F1123 19:35:01.484749    9978 client.h:80] Terminating process because the JAX distributed service detected fatal errors. This most likely indicates that another task died; see the other task logs for more details. absl::Status: DEADLINE_EXCEEDED: Deadline Exceeded

RPC: /xla.coordination.CoordinationService/RegisterTask
*** Check failure stack trace: ***
    @     0x7fa897040634  absl::lts_20260107::log_internal::LogMessage::SendToLog()
"""
PEER_STOPPED = """\
E1123 19:33:00.115576    9411 coordination_service.cc:1549] [10612115493587901804] Use error polling to propagate the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
1, 3
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) to debug further. [type.googleapis.com/tensorflow.CoordinationServiceError='']
F1123 19:33:03.084831    9482 client.h:80] Terminating process because the JAX distributed service detected fatal errors.
"""
COORDINATOR_GONE = """\
E1123 19:33:03.084389    9482 coordination_service_agent.cc:289] Polled an error from coordination service (this can be an error from this or another task).
F1123 19:33:03.084831    9482 client.h:80] Terminating process because the JAX distributed service detected fatal errors. This most likely indicates that another task died; see the other task logs for more details. Disable Python buffering, i.e. `python -u`, to be sure to see all the previous output
Additional GRPC error information from remote target coordination_service while calling /xla.coordination.CoordinationService/PollForError:
:UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"Socket closed"}
"""


def test_each_abort_is_told_by_its_cause():
  assert supervisor.diagnose(UNREACHABLE, signal.SIGABRT, '10.0.0.1:1234', 60) == (
      'cannot reach the coordinator at 10.0.0.1:1234 within 60s; start process 0 first, check '
      '--coordinator_address, or raise --initialization_timeout')
  assert supervisor.diagnose(PEER_STOPPED, signal.SIGABRT, 'h:1', 60).startswith(
      'process 1, 3 of the run stopped; every process stops; rerun the same command')
  assert supervisor.diagnose(COORDINATOR_GONE, signal.SIGABRT, 'h:1', 60).startswith(
      'lost the coordinator (process 0, at h:1): it stopped')
  assert supervisor.diagnose('', signal.SIGKILL, 'h:1', 60).startswith('ended by signal SIGKILL')


CHILD = textwrap.dedent("""
    import os, sys
    print('[process 1/2] a line of the log', flush=True)
    print('[Gloo] Rank 1 is connected to 1 peer ranks.', flush=True)
    sys.stderr.write('[process 1/2] WARNING: a warning of the run\\n')
    sys.stderr.write('''{log}''')
    sys.stderr.flush()
    {end}
    """)


def test_an_abort_becomes_one_line_and_the_run_s_own_lines_pass(capfd):
  child = CHILD.format(log=COORDINATOR_GONE, end='os.abort()')
  assert supervisor.run([sys.executable, '-c', child], '[process 1/2] ', 'h:1', 60) == 1
  out, err = capfd.readouterr()
  assert out == '[process 1/2] a line of the log\n'
  assert err.splitlines() == [
      '[process 1/2] WARNING: a warning of the run',
      '[process 1/2] error: lost the coordinator (process 0, at h:1): it stopped; every process '
      'stops; rerun the same command on every process to resume from the last checkpoint']
  assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored


def test_an_exit_code_passes_through(capfd):
  assert supervisor.run([sys.executable, '-c', CHILD.format(log='', end='sys.exit(3)')],
                        '', 'h:1', 60) == 3
  assert 'error' not in capfd.readouterr().err


def test_the_child_knows_it_is_the_worker(capfd):
  code = 'import sys; from dnn_jax.run import supervisor; sys.exit(0 if supervisor.is_worker() else 5)'
  assert not supervisor.is_worker()
  assert supervisor.run([sys.executable, '-c', code], '', 'h:1', 60) == 0


def test_the_label_comes_from_the_flags_or_the_launcher(monkeypatch):
  monkeypatch.delenv('SLURM_PROCID', raising=False)
  monkeypatch.delenv('OMPI_COMM_WORLD_RANK', raising=False)
  assert supervisor.label(None, None) == ''
  assert supervisor.label(2, 4) == '[process 2/4] '
  monkeypatch.setenv('SLURM_PROCID', '3')
  monkeypatch.setenv('SLURM_NTASKS', '8')
  assert supervisor.label(None, None) == '[process 3/8] '
  assert supervisor.label(1, 2) == '[process 1/2] '
