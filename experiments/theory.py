"""The course's theory results, checked against what JAX computes: convolution as
cross-correlation, the mean filter, 1x1 convolutions and their multiply counts, pooling and
monotone activations, the backprop formulas.

Command:  python main.py --experiment=theory
Run time: about 10 s on 2 CPU cores.
Expected: 6 of 6 checks pass (result 3 in two parts); writes theory.md and filters.png to
          --workdir; exits non-zero if a check fails.
"""

TASK = 'theory'
SETTINGS = dict(seed=0)
