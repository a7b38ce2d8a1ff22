"""ReLU, optionally applied to a residual sum (the end of a ResNet block).

y = max(x + r, 0) with r the residual (or 0); the gradient reaches x and r alike.
"""

from __future__ import annotations

import numpy as np

from qdaed.kernels import relu as krelu
from qdaed.validate import check_array, check_same_dtype


def forward(params, x, residual=None):
    """y = max(x + r, 0), element-wise; r = ``residual`` (same shape as x) or 0.

    params: none (pass {}).  x: any shape, float32/float64.  Returns y and the cache (y,).
    """
    x = check_array("x", x)
    y = np.empty_like(x)
    if residual is None:
        krelu.relu_forward(x.reshape(-1), y.reshape(-1))
    else:
        r = check_array("residual", residual, shape=x.shape)
        check_same_dtype(x=x, residual=r)
        krelu.add_relu_forward(x.reshape(-1), r.reshape(-1), y.reshape(-1))
    return y, (y,)


def backward(params, cache, dy):
    """dx = dr = dy·[y > 0] (the subgradient 0 at y = 0, as PyTorch).

    Returns dx and grads {} (no parameters); with a residual, dx is also its gradient.
    """
    (y,) = cache
    dy = check_array("dy", dy, shape=y.shape, dtype=y.dtype, finite=False)
    dx = np.empty_like(y)
    krelu.relu_backward(y.reshape(-1), dy.reshape(-1), dx.reshape(-1))
    return dx, {}
