"""Run an experiment: `python main.py --experiment=lenet --c3=sparse`.

`--experiment` names a file of experiments/ (its docstring gives its command and expected
result); the flags, listed by `--help`, override its settings. The same command line is
installed as `dnn-jax` (see dnn_jax/cli.py).
"""

from dnn_jax.__main__ import main

if __name__ == '__main__':
  main()
