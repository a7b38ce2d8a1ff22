"""Gradient-check cases for the student's ops: linear, LSTM, temporal pooling, StudentLSTM."""

from __future__ import annotations

import numpy as np

from qdaed.gradcheck import Case, compare_gradients
from qdaed.nn import linear


def _linear(rng):
    b, i, o = rng.integers(1, 4, size=3)
    params = {"weight": rng.standard_normal((o, i)), "bias": rng.standard_normal(o)}
    x = rng.standard_normal((b, i))
    dy = rng.standard_normal((b, o))
    _, cache = linear.forward(params, x)
    dx, grads = linear.backward(params, cache, dy)

    def loss():
        return float(np.sum(linear.forward(params, x)[0] * dy))

    return compare_gradients(loss, {"x": x, **params}, {"x": dx, **grads})


CASES = [
    Case("nn.linear", _linear),
]
