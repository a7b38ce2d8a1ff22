"""im2col / col2im: the data movement that turns a 2-D convolution into one BLAS product.

Layout (batch-first, as PyTorch): x (B, C, H, W); columns (B, C·kh·kw, Ho·Wo) with row
r = (c·kh + i)·kw + j, the order of ``weight.reshape(O, C·kh·kw)``, and column p = ho·Wo + wo:

    cols[b, (c, i, j), (ho, wo)] = x[b, c, ho·sh − ph + i, wo·sw − pw + j]   (0 outside x)

col2im is its adjoint (transpose): every column entry is added back to the pixel it came from.
Both loop in parallel over the (b, c) planes: a plane of x (or dx) is read (or written) by one
iteration only, so the col2im accumulation has a single owner per pixel and no races.
"""

from __future__ import annotations

from numba import prange

from qdaed.kernels import kernel


@kernel
def _valid_range(n_out, n_in, stride, pad, offset):
    """[lo, hi): output positions o whose input position o·stride − pad + offset is in [0, n_in)."""
    lo = 0
    while lo < n_out and lo * stride - pad + offset < 0:
        lo += 1
    hi = n_out
    while hi > lo and (hi - 1) * stride - pad + offset >= n_in:
        hi -= 1
    return lo, hi


@kernel(parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw, cols):
    """Fill cols (B, C·kh·kw, Ho·Wo) from x (B, C, H, W); see the module docstring."""
    nb, nc, h, w = x.shape
    ho_n = (h + 2 * ph - kh) // sh + 1
    wo_n = (w + 2 * pw - kw) // sw + 1
    xf = x.reshape(nb, nc, h * w)
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        for i in range(kh):
            h_lo, h_hi = _valid_range(ho_n, h, sh, ph, i)
            for j in range(kw):
                r = (c * kh + i) * kw + j
                w_lo, w_hi = _valid_range(wo_n, w, sw, pw, j)
                for p in range(h_lo * wo_n):
                    cols[b, r, p] = 0
                for p in range(h_hi * wo_n, ho_n * wo_n):
                    cols[b, r, p] = 0
                if sw == 1 and sh == 1 and wo_n == w:
                    # "Same" width, stride 1: rows h_lo..h_hi of the column are one contiguous
                    # run of x shifted by (i − ph)·W + (j − pw); copy it whole (the inner loop
                    # is then long even when W is small), then zero the wrapped-around edges.
                    shift = (i - ph) * w + (j - pw)
                    # Clamped to x's plane: the entries cut off are edge columns, zeroed below.
                    for p in range(max(h_lo * wo_n, -shift), min(h_hi * wo_n, h * w - shift)):
                        cols[b, r, p] = xf[b, c, p + shift]
                    for ho in range(h_lo, h_hi):
                        base = ho * wo_n
                        for wo in range(w_lo):
                            cols[b, r, base + wo] = 0
                        for wo in range(w_hi, wo_n):
                            cols[b, r, base + wo] = 0
                    continue
                for ho in range(h_lo, h_hi):
                    base = ho * wo_n
                    hi = ho * sh - ph + i
                    for wo in range(w_lo):
                        cols[b, r, base + wo] = 0
                    for wo in range(w_lo, w_hi):
                        cols[b, r, base + wo] = x[b, c, hi, wo * sw - pw + j]
                    for wo in range(w_hi, wo_n):
                        cols[b, r, base + wo] = 0


@kernel(parallel=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dx):
    """dx (B, C, H, W) = adjoint of im2col applied to cols; dx is overwritten."""
    nb, nc, h, w = dx.shape
    ho_n = (h + 2 * ph - kh) // sh + 1
    wo_n = (w + 2 * pw - kw) // sw + 1
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        for hh in range(h):
            for ww in range(w):
                dx[b, c, hh, ww] = 0
        for i in range(kh):
            h_lo, h_hi = _valid_range(ho_n, h, sh, ph, i)
            for j in range(kw):
                r = (c * kh + i) * kw + j
                w_lo, w_hi = _valid_range(wo_n, w, sw, pw, j)
                for ho in range(h_lo, h_hi):
                    hi = ho * sh - ph + i
                    base = ho * wo_n
                    for wo in range(w_lo, w_hi):
                        dx[b, c, hi, wo * sw - pw + j] += cols[b, r, base + wo]
