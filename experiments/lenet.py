"""LeNet-5 as the course trained it: the paper's sparse C3 (Table I) against a full C3.

tanh, average pooling, a linear F7 with softmax cross-entropy; SGD at 0.1, batch 100,
10 epochs, [0, 1] pixels, a new shuffle each epoch.

Command:  python main.py --experiment=lenet --c3=both
Run time: 20-40 s of training per variant on 2 CPU cores, plus about 4 s compiling and 3 s
          evaluating after each epoch.
Expected: seed 0: sparse 98.67% (test loss 0.0408, 60,806 parameters), full 98.71% (0.0411,
          61,706 parameters). With --num_seeds=8: 98.65 +- 0.09% sparse, 98.70 +- 0.14% full.
          The course reported 98.41% / 98.64% sparse and 98.67% / 98.71% full.
"""

TASK = 'lenet'
PROTOCOL = 'course'
SETTINGS = dict(c3='sparse', epochs=10, batch_size=100, learning_rate=0.1, pixel_scale='unit',
                sampling='shuffle')
