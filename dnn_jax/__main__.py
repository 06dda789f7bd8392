"""The command line's entry (`python main.py`, `dnn-jax`, `python -m dnn_jax`): Ctrl-C or
SIGTERM while JAX is still importing ends it with one line; then `dnn_jax.cli` runs."""

import os
import signal
import sys


def _stopped_while_starting(signum, frame):
  del frame
  print(f'interrupted by signal {signum} while starting: nothing was written', file=sys.stderr)
  os._exit(128 + signum)  # pylint: disable=protected-access


def main() -> None:
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _stopped_while_starting)
  from dnn_jax import cli  # pylint: disable=import-outside-toplevel
  cli.run_command_line()


if __name__ == '__main__':
  main()
