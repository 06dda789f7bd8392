"""The course's LeNet-5 over five learning rates x 8 seeds, both C3 variants.

Command:  python main.py --experiment=lenet_lr_sweep
Run time: about 11 minutes per variant on 2 CPU cores (40 LeNets of 10 epochs each).
Expected: mean test accuracy sparse / full: 96.45 / 96.70% at 0.02, 98.17 / 98.24% at 0.05,
          98.65 / 98.70% at 0.1, 98.85 / 98.85% at 0.2, 98.88 / 98.87% at 0.5 (the best);
          sparse - full between -0.25 and +0.01 points, no Welch p under 0.05; no seed
          collapses or diverges.
"""

BASE = 'lenet'
SETTINGS = dict(c3='both', num_seeds=8, learning_rate=[0.02, 0.05, 0.1, 0.2, 0.5])
