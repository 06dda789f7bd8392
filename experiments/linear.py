"""The course's first linear classifier: MNIST 4 (-1) vs 9 (+1), logistic against
sum-of-squares loss on the two-class softmax.

Batch-1 SGD for 3 epochs at 0.0255 on [0, 1] pixels, no bias, a new shuffle each epoch.

Command:  python main.py --experiment=linear --loss=both
Run time: under a second of training on 2 CPU cores.
Expected: seed 0: logistic 96.79%, sum of squares 96.69%. With --num_seeds=5: logistic
          96.65 +- 0.56%, sum of squares 96.83 +- 0.49% (Welch p = 0.62). The course reported
          96.74% and 97.09%, one run each.
"""

TASK = 'linear'
PROTOCOL = 'epochs'
SETTINGS = dict(loss='logistic', epochs=3, batch_size=1, learning_rate=255e-4,
                pixel_scale='unit', sampling='shuffle', bias=False)
