"""dnn_jax: the course's MNIST experiments as pure JAX functions. Its Python API (see api.py):

    import dnn_jax
    r = dnn_jax.train('lenet', c3='both', num_seeds=2, train_examples=6000, epochs=1)
    print(r.table)

The API is imported on first use, so that the command line can start (and take Ctrl-C) before
JAX is imported.
"""

from dnn_jax.version import __version__  # noqa: F401  (dnn_jax.__version__)

__all__ = ['ConfigError', 'Results', 'check_theory', 'evaluate', 'experiments', 'train']


def __getattr__(name: str):
  if name in __all__:
    from dnn_jax import api  # pylint: disable=import-outside-toplevel
    return getattr(api, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted([*globals(), *__all__])
