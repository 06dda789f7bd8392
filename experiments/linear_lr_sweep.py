"""The with-replacement protocol over five learning rates x 16 seeds, both losses.

Command:  python main.py --experiment=linear_lr_sweep
Run time: about 4 s of training on 2 CPU cores (80 models per loss).
Expected: sum of squares collapses in 0, 1, 6, 14 and 15 of 16 seeds at 1e-5, 3e-5, 1e-4,
          3e-4 and 1e-3 (mean accuracy 95.23, 92.45, 76.11, 55.12, 51.04%); logistic collapses
          in none and stays near 96% at every rate.
"""

BASE = 'linear_with_replacement'
SETTINGS = dict(loss='both', num_seeds=16, learning_rate=[1e-5, 3e-5, 1e-4, 3e-4, 1e-3])
