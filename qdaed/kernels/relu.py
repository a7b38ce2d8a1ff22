"""ReLU loops on flat contiguous arrays, parallel over blocks of the flat index (one owner each)."""

from __future__ import annotations

from numba import prange

from qdaed.kernels import kernel

_BLOCK = 1 << 14


@kernel(parallel=True)
def relu_forward(x, y):
    """y = max(x, 0)."""
    n = x.size
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            v = x[i]
            y[i] = v if v > 0 else 0.0


@kernel(parallel=True)
def add_relu_forward(x, r, y):
    """y = max(x + r, 0)."""
    n = x.size
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            v = x[i] + r[i]
            y[i] = v if v > 0 else 0.0


@kernel(parallel=True)
def relu_backward(y, dy, dx):
    """dx = dy·[y > 0]."""
    n = y.size
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            dx[i] = dy[i] if y[i] > 0 else 0.0
