"""Global average pooling over the spatial axes (``nn.AdaptiveAvgPool2d(1)`` + flatten)."""

from __future__ import annotations

import numpy as np

from qdaed.validate import check_array


def forward(params, x):
    """y[b, c] = (1 / (H·W)) Σ_{h,w} x[b, c, h, w].

    params: none (pass {}).  x (B, C, H, W).  Returns y (B, C) and the cache (x shape,).
    """
    x = check_array("x", x, ndim=4)
    nb, nc, h, w = x.shape
    return x.reshape(nb, nc, h * w).mean(axis=2), (x.shape,)


def backward(params, cache, dy):
    """dx[b, c, h, w] = dy[b, c] / (H·W).  Returns dx (B, C, H, W) and grads {}."""
    (shape,) = cache
    nb, nc, h, w = shape
    dy = check_array("dy", dy, shape=(nb, nc), finite=False)
    dx = np.empty(shape, dtype=dy.dtype)
    dx[...] = (dy / (h * w))[:, :, None, None]
    return dx, {}
