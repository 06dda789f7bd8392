"""One process of a multi-process run, watched from a parent: JAX's runtime ends a process
whose peer or coordinator is gone with an abort and a C++ stack trace (and so it does when
the coordinator cannot be reached); the parent turns that into one line naming the cause.

The parent runs the same command as a child, passes its output through (keeping the
runtime's own log lines apart, for the diagnosis), forwards Ctrl-C and SIGTERM to it, and
takes it down with it if the parent is killed."""

from __future__ import annotations

import collections
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from typing import Sequence

WORKER = 'DNN_JAX_WORKER'  # set in the child's environment
# A line the runtime (XLA, CUDA, Gloo) logs on its own, not one of this project's.
RUNTIME_LINE = re.compile(r'^([IWEF]\d{4} \d\d:\d\d:\d\d|\[Gloo\]|terminate called|'
                          r'WARNING: All log messages before absl::InitializeLog)')
_OURS = re.compile(r'^(\[process \d+/\d+\] |Traceback )')


def is_worker() -> bool:
  return os.environ.get(WORKER) == '1'


# Where a cluster's launcher says which process this is (what jax.distributed reads too).
_ENVIRONMENTS = (('SLURM_PROCID', 'SLURM_NTASKS'), ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'))


def process_label(index: int | str, count: int | str) -> str:
  """'[process 1/4] ': what every line of a process of a multi-process run starts with."""
  return f'[process {index}/{count}] '


def label(process_id: int | None, num_processes: int | None) -> str:
  """`process_label` from the flags, or else the launcher's environment ('' if neither says)."""
  for index, count in _ENVIRONMENTS:
    if process_id is None and index in os.environ and count in os.environ:
      process_id, num_processes = os.environ[index], os.environ[count]
  return process_label(process_id, num_processes) if process_id is not None else ''


def _die_with_parent() -> None:
  """In the child: SIGKILL when the parent dies (Linux), so no process outlives its run."""
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def run(command: Sequence[str], label: str, coordinator: str, init_timeout: int) -> int:
  """Run `command` as a worker and return its exit code; where the runtime aborted it, print
  one line (prefixed with `label`) saying why, and return 1."""
  child = subprocess.Popen(list(command), env={**os.environ, WORKER: '1'},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors='replace', start_new_session=True,
                           preexec_fn=_die_with_parent)
  previous = {signum: signal.signal(signum, lambda s, _: child.send_signal(s))
              for signum in (signal.SIGINT, signal.SIGTERM)}

  def pass_output():  # all but the runtime's own lines (Gloo's "Rank 0 is connected...")
    for line in child.stdout:
      if not RUNTIME_LINE.match(line):
        sys.stdout.write(line)
        sys.stdout.flush()

  output = threading.Thread(target=pass_output, daemon=True)
  output.start()
  runtime = collections.deque(maxlen=400)
  in_runtime_block = False
  for line in child.stderr:
    if RUNTIME_LINE.match(line):
      in_runtime_block = True
    elif _OURS.match(line):
      in_runtime_block = False
    if in_runtime_block:
      runtime.append(line)
    else:
      sys.stderr.write(line)
      sys.stderr.flush()
  code = child.wait()
  output.join()
  for signum, handler in previous.items():
    signal.signal(signum, handler)
  if code >= 0:
    return code
  print(f'{label}error: {diagnose("".join(runtime), -code, coordinator, init_timeout)}',
        file=sys.stderr, flush=True)
  return 1


def diagnose(runtime_log: str, signum: int, coordinator: str, init_timeout: int) -> str:
  """Why the runtime ended the worker, from its log lines; and what to do."""
  rerun = 'rerun the same command on every process to resume from the last checkpoint'
  coordinator = coordinator or "the cluster's address"
  if 'RegisterTask' in runtime_log or 'connect to the coordination service' in runtime_log:
    return (f'cannot reach the coordinator at {coordinator} within {init_timeout}s; start '
            'process 0 first, check --coordinator_address, or raise --initialization_timeout')
  unhealthy = re.search(r'stopped sending heartbeats\):\s*([\d,\s]+?)\s*(The tasks|$)',
                        runtime_log)
  if unhealthy:
    tasks = ', '.join(re.findall(r'\d+', unhealthy.group(1)))
    return f'process {tasks} of the run stopped; every process stops; {rerun}'
  if 'Socket closed' in runtime_log:
    return (f'lost the coordinator (process 0, at {coordinator}): it stopped; every process '
            f'stops; {rerun}')
  if 'Terminating process' in runtime_log:
    return f'another process of the run stopped; every process stops; {rerun}'
  return f'ended by signal {signal.Signals(signum).name}; {rerun}'
