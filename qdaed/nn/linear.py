"""Fully connected layer, PyTorch's ``nn.Linear`` layout: weight (O, I), bias (O)."""

from __future__ import annotations

import numpy as np

from qdaed.validate import check_array, check_same_dtype


def forward(params, x):
    """y = x Wᵀ + b.

    params: ``weight`` W (O, I), ``bias`` b (O) or absent.
    x: (..., I) float32/float64.  Returns y (..., O) and the cache (x,).
    """
    w = check_array("weight", params["weight"], ndim=2)
    x = check_array("x", x, shape=(*([None] * (np.ndim(x) - 1)), w.shape[1]))
    b = params.get("bias")
    if b is not None:
        b = check_array("bias", b, shape=(w.shape[0],))
    check_same_dtype(x=x, weight=w, bias=b)
    y = x @ w.T
    if b is not None:
        y += b
    return y, (x,)


def backward(params, cache, dy):
    """dx = dy W,   dW = Σ_n dy_nᵀ x_n,   db = Σ_n dy_n   (n runs over every leading index).

    dy: (..., O) like y.  Returns dx (..., I) and grads {``weight``, ``bias``}.
    """
    (x,) = cache
    w = params["weight"]
    dy = check_array("dy", dy, shape=(*x.shape[:-1], w.shape[0]), dtype=x.dtype, finite=False)
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    grads = {"weight": dy2.T @ x2}
    if params.get("bias") is not None:
        grads["bias"] = dy2.sum(axis=0)
    return dy @ w, grads
