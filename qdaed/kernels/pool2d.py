"""Max-pooling loops over (b, c) planes of x (B, C, H, W), in parallel: each plane of y, argmax
and dx has one owner, so the overlapping windows of the backward pass add up without races."""

from __future__ import annotations

from numba import prange

from qdaed.kernels import kernel


@kernel(parallel=True)
def max_pool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """y[b, c, ho, wo] = max over the window of x (padding never wins: it is −∞);
    argmax = flat index hi·W + wi of the first maximum in row-major window order (as PyTorch)."""
    nb, nc, h, w = x.shape
    ho_n, wo_n = y.shape[2], y.shape[3]
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        for ho in range(ho_n):
            h0 = ho * sh - ph
            i_lo = max(h0, 0)
            i_hi = min(h0 + kh, h)
            for wo in range(wo_n):
                w0 = wo * sw - pw
                j_lo = max(w0, 0)
                j_hi = min(w0 + kw, w)
                best = x[b, c, i_lo, j_lo]
                where = i_lo * w + j_lo
                for i in range(i_lo, i_hi):
                    for j in range(j_lo, j_hi):
                        v = x[b, c, i, j]
                        if v > best:
                            best = v
                            where = i * w + j
                y[b, c, ho, wo] = best
                argmax[b, c, ho, wo] = where


@kernel(parallel=True)
def max_pool_backward(dy, argmax, dx):
    """dx[b, c] = Σ over outputs whose argmax is that pixel of dy (dx overwritten)."""
    nb, nc, h, w = dx.shape
    ho_n, wo_n = dy.shape[2], dy.shape[3]
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        for i in range(h):
            for j in range(w):
                dx[b, c, i, j] = 0
        for ho in range(ho_n):
            for wo in range(wo_n):
                k = argmax[b, c, ho, wo]
                dx[b, c, k // w, k - (k // w) * w] += dy[b, c, ho, wo]
