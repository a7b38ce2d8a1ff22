"""Pooling over time, (B, T, H) → (B, H): the student's clip-level summary (docs/method/lstm.md).

Modes (``MODES``):
    mean  p_b = (1/T) Σ_t x_{b,t}                 (the default)
    last  p_b = x_{b,T−1}
    max   p_{b,k} = max_t x_{b,t,k}, per feature k

No parameters: ``params`` is accepted for the op-pair signature and must be None or empty;
the returned ``grads`` is always ``{}``.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.validate import check_array, check_choice

MODES = ("mean", "last", "max")


def _check_no_params(params):
    if params:
        raise InputError(f"params: temporal pooling has no parameters, got keys {sorted(params)}")


def forward(params, x, mode="mean"):
    """p = pool_t(x).   x: (B, T, H) float32/float64;  mode: 'mean', 'last' or 'max'.

    Returns p (B, H) and the cache. For 'max', ties go to the earliest time step
    (``np.argmax``), which is where the gradient is routed.
    """
    _check_no_params(params)
    check_choice("mode", mode, MODES)
    x = check_array("x", x, ndim=3)
    batch, steps, hidden = x.shape
    if mode == "mean":
        return x.mean(axis=1), (mode, x.shape, x.dtype, None)
    if mode == "last":
        return x[:, -1, :].copy(), (mode, x.shape, x.dtype, None)
    arg = np.argmax(x, axis=1)  # (B, H)
    return np.take_along_axis(x, arg[:, None, :], axis=1)[:, 0, :], (mode, x.shape, x.dtype, arg)


def backward(params, cache, dp):
    """∂L/∂x from ∂L/∂p (B, H):

        mean  dx_{b,t} = dp_b / T             for every t
        last  dx_{b,T−1} = dp_b,  0 elsewhere
        max   dx_{b,t,k} = dp_{b,k} if t = argmax_t x_{b,t,k},  0 elsewhere

    Returns dx (B, T, H) and grads = {}.
    """
    _check_no_params(params)
    mode, shape, dtype, arg = cache
    batch, steps, hidden = shape
    dp = check_array("dp", dp, shape=(batch, hidden), dtype=dtype, finite=False)
    if mode == "mean":
        dx = np.empty(shape, dtype)
        dx[...] = (dp / steps)[:, None, :]
    else:
        dx = np.zeros(shape, dtype)
        if mode == "last":
            dx[:, -1, :] = dp
        else:
            np.put_along_axis(dx, arg[:, None, :], dp[:, None, :], axis=1)
    return dx, {}
