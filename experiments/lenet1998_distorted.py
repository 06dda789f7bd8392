"""The 1998 paper's LeNet-5 (experiments/lenet1998.py) trained on randomly distorted digits:
each training example, each time it is drawn, moved by a random planar affine map (shifts,
scaling, squeezing, horizontal shearing; the ranges in dnn_jax/core/distortions.py).

Command:  python main.py --experiment=lenet1998_distorted --num_seeds=8
Run time: about 1,800 s of training for the 8 seeds on 2 CPU cores, plus 30 s compiling and
          20-40 s evaluating after each pass.
Expected: test error 0.84 +- 0.05% over seeds 0-7 (min 0.77%, max 0.93%); the paper reports
          0.8% with distortions.
"""

BASE = 'lenet1998'
SETTINGS = dict(distortions=True)
