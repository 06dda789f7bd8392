"""The course's second linear classifier: 50,000 uniform single draws on raw 0..255 pixels,
learning rate 1e-4, with a bias.

Command:  python main.py --experiment=linear_with_replacement --loss=both --num_seeds=5
          (the same as --experiment=linear --protocol=with_replacement)
Run time: about a second of training on 2 CPU cores.
Expected: logistic 96.35 +- 0.60%; sum of squares collapses to one class (49.32%) in 4 of
          5 seeds. The course reported 95.54 +- 1.72% and 93.87 +- 2.87% over 5 runs.
"""

BASE = 'linear'
PROTOCOL = 'with_replacement'
SETTINGS = dict(sampling='with_replacement', steps=50_000, pixel_scale='raw',
                learning_rate=1e-4, bias=True)
