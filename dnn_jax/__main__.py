"""The command line's entry (`python main.py`, `dnn-jax`, `python -m dnn_jax`): Ctrl-C or
SIGTERM while JAX is still importing ends it with one line, and so do process limits too low
for a run; then `dnn_jax.cli` runs."""

import os
import signal
import sys

from dnn_jax import limits


def _stopped_while_starting(signum, frame):
  del frame
  print(f'interrupted by signal {signum} while starting, before anything was read or written',
        file=sys.stderr)
  os._exit(128 + signum)  # pylint: disable=protected-access


def main() -> None:
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _stopped_while_starting)
  too_low = limits.check()
  if too_low:
    print(f'error: {too_low}', file=sys.stderr)
    sys.exit(1)
  from dnn_jax import cli  # pylint: disable=import-outside-toplevel
  cli.run_command_line()


if __name__ == '__main__':
  main()
