"""dnn_jax: the course's MNIST experiments as pure JAX functions. Its Python API (see api.py):

    import dnn_jax
    r = dnn_jax.train('lenet', c3='both', num_seeds=2, train_examples=6000, epochs=1)
    print(r.table)
"""

from dnn_jax.api import ConfigError, Results, check_theory, evaluate, protocols, train

__all__ = ['ConfigError', 'Results', 'check_theory', 'evaluate', 'protocols', 'train']
