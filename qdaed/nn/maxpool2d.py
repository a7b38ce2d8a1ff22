"""2-D max pooling, as PyTorch's ``nn.MaxPool2d`` (padding counts as −∞, floor output size).

x (B, C, H, W) → y (B, C, Ho, Wo),  Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1 (likewise Wo).
The ResNet stem uses kernel 3, stride 2, padding 1.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels import pool2d as kpool
from qdaed.nn.conv2d import output_size
from qdaed.validate import check_array, check_int


def forward(params, x, kernel_size=3, stride=2, padding=1, *, check_finite=True):
    """2-D max pooling, as PyTorch's ``nn.MaxPool2d``: y and the cache.

    ::

        y[b, c, ho, wo] = max_{i<kh, j<kw} x[b, c, ho·sh − ph + i, wo·sw − pw + j]

    over the positions inside x; the position of the (first) maximum is kept for the backward
    pass, which routes each output's gradient to it.

    Parameters
    ----------
    params : dict
        None (pass {}).
    x : ndarray
        (B, C, H, W).
    kernel_size, stride, padding : int
        Square kernel, stride and padding; padding ≤ kernel_size/2 (PyTorch's rule: every
        window then holds at least one real value). The ResNet stem uses 3, 2, 1.
    check_finite : bool
        False skips the scan for NaN and infinity.

    Returns
    -------
    y : ndarray
        (B, C, Ho, Wo), Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1 (likewise Wo).
    cache : tuple
        (x shape, argmax), for ``backward``.
    """
    x = check_array("x", x, ndim=4, finite=check_finite)
    k = check_int("kernel_size", kernel_size, lo=1)
    s = check_int("stride", stride, lo=1)
    p = check_int("padding", padding, lo=0)
    if 2 * p > k:
        raise InputError(f"padding: must be at most half the kernel size {k}, got {p}")
    nb, nc, h, w = x.shape
    ho, wo = output_size(h, k, s, p), output_size(w, k, s, p)
    if ho < 1 or wo < 1:
        raise InputError(f"x: spatial size {h}×{w} is smaller than the {k}×{k} pooling window "
                         f"with padding {p}; the output would be empty")
    y = np.empty((nb, nc, ho, wo), dtype=x.dtype)
    argmax = np.empty((nb, nc, ho, wo), dtype=np.int64)
    kpool.max_pool_forward(x, k, k, s, s, p, p, y, argmax)
    return y, (x.shape, argmax)


def backward(params, cache, dy):
    """Max-pooling backward: each output routes its gradient to the input that won.

    ::

        dx[b, c, argmax[b, c, ho, wo]] += dy[b, c, ho, wo]      (overlapping windows add)

    Parameters
    ----------
    params : dict
        None (pass {}).
    cache : tuple
        The cache the forward pass returned (input shape, argmax).
    dy : ndarray
        (B, C, Ho, Wo) ∂L/∂y.

    Returns
    -------
    dx : ndarray
        (B, C, H, W) ∂L/∂x.
    grads : dict
        Empty: max pooling has no parameters.
    """
    shape, argmax = cache
    dy = check_array("dy", dy, shape=argmax.shape, finite=False)
    dx = np.empty(shape, dtype=dy.dtype)
    kpool.max_pool_backward(dy, argmax, dx)
    return dx, {}
