"""im2col / col2im: the data movement that turns a 2-D convolution into one BLAS product.

Layout (batch-first, as PyTorch): x (B, C, H, W); columns (B, C·kh·kw, Ho·Wo) with row
r = (c·kh + i)·kw + j, the order of ``weight.reshape(O, C·kh·kw)``, and column p = ho·Wo + wo:

    cols[b, (c, i, j), (ho, wo)] = x[b, c, ho·sh − ph + i, wo·sw − pw + j]   (0 outside x)

col2im is its adjoint (transpose): every column entry is added back to the pixel it came from.
Both loop in parallel over the (b, c) planes: a plane of x (or dx) is read (or written) by one
iteration only, so the col2im accumulation has a single owner per pixel and no races.
Every inner loop runs over a 1-D view from index 0 (_zero, _copy, _add_into): Numba then sees
non-negative, unit-step indices and the loop vectorises; the same loops indexed cols[b, r,
base + wo] did not (at ResNet-50's layer1, B = 8: im2col 16 → 5 ms, col2im 18 → 5 ms).
"""

from __future__ import annotations

import numpy as np
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
                col = cols[b, (c * kh + i) * kw + j]   # one row of the column matrix
                w_lo, w_hi = _valid_range(wo_n, w, sw, pw, j)
                _zero(col[:h_lo * wo_n])
                _zero(col[h_hi * wo_n:])
                if sw == 1 and sh == 1 and wo_n == w:
                    # "Same" width, stride 1: rows h_lo..h_hi of the column are one contiguous
                    # run of x shifted by (i − ph)·W + (j − pw); copy it whole (the inner loop
                    # is then long even when W is small), then zero the wrapped-around edges.
                    shift = (i - ph) * w + (j - pw)
                    # Clamped to x's plane: the entries cut off are edge columns, zeroed below.
                    lo = max(h_lo * wo_n, -shift)
                    hi = min(h_hi * wo_n, h * w - shift)
                    if hi > lo:
                        _copy(xf[b, c, lo + shift:hi + shift], col[lo:hi])
                    for ho in range(h_lo, h_hi):
                        _zero(col[ho * wo_n:ho * wo_n + w_lo])
                        _zero(col[ho * wo_n + w_hi:(ho + 1) * wo_n])
                    continue
                for ho in range(h_lo, h_hi):
                    row = col[ho * wo_n:(ho + 1) * wo_n]
                    _zero(row[:w_lo])
                    _zero(row[w_hi:])
                    if w_hi > w_lo:
                        # x's row from its first valid input position, every sw-th entry.
                        _copy(x[b, c, ho * sh - ph + i, w_lo * sw - pw + j::sw][:w_hi - w_lo],
                              row[w_lo:w_hi])


@kernel(parallel=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dx):
    """dx (B, C, H, W) = adjoint of im2col applied to cols; dx is overwritten."""
    nb, nc, h, w = dx.shape
    ho_n = (h + 2 * ph - kh) // sh + 1
    wo_n = (w + 2 * pw - kw) // sw + 1
    same = sw == 1 and sh == 1 and wo_n == w
    # "Same" width, stride 1 (im2col's contiguous-run case): the entries of column row j that
    # came from x are the positions p with w_lo(j) ≤ p mod W < w_hi(j); inside[j, p] marks them,
    # so that each row is added back as one run with the padding entries skipped.
    inside = np.zeros((kw, ho_n * wo_n if same else 0), dtype=np.bool_)
    if same:
        for j in range(kw):
            w_lo, w_hi = _valid_range(wo_n, w, sw, pw, j)
            for ho in range(ho_n):
                for wo in range(w_lo, w_hi):
                    inside[j, ho * wo_n + wo] = True
    dxf = dx.reshape(nb, nc, h * w)
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        _zero(dxf[b, c])
        for i in range(kh):
            h_lo, h_hi = _valid_range(ho_n, h, sh, ph, i)
            for j in range(kw):
                col = cols[b, (c * kh + i) * kw + j]
                w_lo, w_hi = _valid_range(wo_n, w, sw, pw, j)
                if w_hi <= w_lo:
                    continue
                if same:
                    shift = (i - ph) * w + (j - pw)
                    lo = max(h_lo * wo_n, -shift)
                    hi = min(h_hi * wo_n, h * w - shift)
                    if hi > lo:
                        _add_into_where(col[lo:hi], inside[j, lo:hi],
                                        dxf[b, c, lo + shift:hi + shift])
                    continue
                for ho in range(h_lo, h_hi):
                    _add_into(col[ho * wo_n + w_lo:ho * wo_n + w_hi],
                              dx[b, c, ho * sh - ph + i, w_lo * sw - pw + j::sw][:w_hi - w_lo])


def gather_index(h, w, kh, kw, sh, sw, ph, pw):
    """The im2col gather table of one plane: (kh·kw, Ho·Wo) int64, entry [i·kw + j, ho·Wo + wo]
    = the flat position (ho·sh − ph + i)·W + (wo·sw − pw + j) in the H × W plane, or −1 where
    that position is padding. The same table serves every sample and channel."""
    ho_n = (h + 2 * ph - kh) // sh + 1
    wo_n = (w + 2 * pw - kw) // sw + 1
    r = (np.arange(ho_n) * sh - ph)[None, None, :, None] + np.arange(kh)[:, None, None, None]
    c = (np.arange(wo_n) * sw - pw)[None, None, None, :] + np.arange(kw)[None, :, None, None]
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    return np.where(inside, r * w + c, -1).reshape(kh * kw, ho_n * wo_n).astype(np.int64)


@kernel(parallel=True)
def im2col_gather(x, index, cols):
    """Fill cols (B, C·kh·kw, Ho·Wo) from x (B, C, H, W) through ``gather_index``'s table:
    cols[b, c·kh·kw + r, p] = x[b, c].flat[index[r, p]], or 0 where index[r, p] = −1.

    The same columns as :func:`im2col`, entry for entry, by another route: one table lookup
    per entry instead of copying runs of x. It wins where the runs are short — strided
    convolutions and the small planes of a ResNet's late stages, where :func:`im2col` spends
    its time on per-row bookkeeping (measured in docs/results/performance.md)."""
    nb, nc, h, w = x.shape
    kk, npos = index.shape
    xf = x.reshape(nb, nc, h * w)
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        plane = xf[b, c]
        for r in range(kk):
            col = cols[b, c * kk + r]
            taps = index[r]
            for p in range(npos):
                v = taps[p]
                col[p] = plane[v] if v >= 0 else 0


@kernel(parallel=True)
def col2im_scatter(cols, index, dx):
    """dx (B, C, H, W) = the adjoint of :func:`im2col_gather`: every column entry added to
    the pixel ``index`` names (none for −1); dx is overwritten.

    Each pixel receives its terms in the order of the table's rows r = i·kw + j, the order
    :func:`col2im` adds them in, so the sums are the same to the bit."""
    nb, nc, h, w = dx.shape
    kk, npos = index.shape
    dxf = dx.reshape(nb, nc, h * w)
    for bc in prange(nb * nc):
        b = bc // nc
        c = bc - b * nc
        plane = dxf[b, c]
        _zero(plane)
        for r in range(kk):
            col = cols[b, c * kk + r]
            taps = index[r]
            for p in range(npos):
                v = taps[p]
                if v >= 0:
                    plane[v] += col[p]


@kernel
def _zero(a):
    """a[:] = 0 for a 1-D view (a zero-based loop, which the compiler vectorises)."""
    for q in range(a.shape[0]):
        a[q] = 0


@kernel
def _copy(src, dst):
    """dst[:] = src for 1-D views of one length."""
    for q in range(dst.shape[0]):
        dst[q] = src[q]


@kernel
def _add_into(src, dst):
    """dst[:] += src for 1-D views of one length."""
    for q in range(dst.shape[0]):
        dst[q] += src[q]


@kernel
def _add_into_where(src, mask, dst):
    """dst[q] += src[q] where mask[q], for 1-D views of one length (vectorised as masked adds)."""
    for q in range(dst.shape[0]):
        if mask[q]:
            dst[q] += src[q]
