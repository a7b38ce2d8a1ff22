"""A learnable toy split and the small training configuration of the training tests."""

import numpy as np

from qdaed.train import schedules as S
from qdaed.train.loop import TrainConfig

STUDENT = {"hidden_size": 6, "num_layers": 1, "pooling": "mean"}


def learnable_split(n=48, t=32, f=32, seed=0):
    """Class c present ⇔ a burst of energy in bins 8c..8c+7 for a few frames."""
    rng = np.random.default_rng(seed)

    def make(m):
        y = (rng.random((m, 3)) < 0.5).astype(np.float32)
        x = rng.standard_normal((m, t, f)).astype(np.float32)
        for i in range(m):
            for c in range(3):
                if y[i, c]:
                    s = rng.integers(0, t - 8)
                    x[i, s:s + 8, 8 * c:8 * c + 8] += 2.0
        return x, y

    (xt, yt), (xv, yv) = make(n), make(n // 2)
    return S.Split(xt, yt, xv, yv)


def cfg(epochs=8, lr=3e-2, **kw):
    return TrainConfig(epochs=epochs, batch_size=16, lr=lr, patience=epochs, **kw)
