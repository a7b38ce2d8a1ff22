"""2-D convolution (cross-correlation, as PyTorch's ``nn.Conv2d``), zero padding, any stride.

Layout as PyTorch: x (B, C, H, W), weight (O, C, kh, kw), optional bias (O), y (B, O, Ho, Wo),

    Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1,   Wo = ⌊(W + 2·pw − kw) / sw⌋ + 1.

Implementation: im2col + one BLAS product per sample (``np.matmul`` on the stacked columns,
which hands each sample's (O, C·kh·kw) × (C·kh·kw, Ho·Wo) product to the BLAS GEMM).
Measured choice (AMD EPYC, 2 threads, float32, ResNet-50 shapes at B=8 on a 1000×64 input):
the GEMM route runs at 90–200 GFLOP/s, while a direct Numba loop over (o, c, i, j, ho, wo)
(parallel over samples and output channels, contiguous inner loop over wo) reached only 5–10
GFLOP/s on the same shapes, stem 7×7 with C=1 included, so every convolution goes through im2col.
A 1×1 convolution with stride 1 and no padding needs no im2col at all: x itself,
viewed as (B, C, H·W), is the column matrix. Otherwise the columns are built a few samples at a
time (``COLUMN_CHUNK_BYTES``, 8 MiB) into one reused buffer, each chunk's products run on it
while it is still in the last-level cache, and the backward pass rebuilds them instead of
caching them. Measured at layer1 of ResNet-50 (B = 8, 64 channels, 250 × 16), against all eight
samples' 74 MB of columns at once: forward 17 → 12 ms, backward 37 → 31 ms, and the columns
no longer page-fault a fresh 74 MB per call.
"""

from __future__ import annotations

import functools

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels import conv as kconv
from qdaed.validate import check_array, check_int, check_same_dtype


# Samples are turned into columns a chunk at a time, into one buffer of at most this many bytes
# (or one sample's columns, if larger): it stays in the last-level cache between im2col and
# the products that read it, and, being reused, costs no fresh pages per call.
COLUMN_CHUNK_BYTES = 8 << 20


def _pair(name, v, lo):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise InputError(f"{name}: expected an integer or a pair of integers, got {v!r}")
        return check_int(name, v[0], lo=lo), check_int(name, v[1], lo=lo)
    v = check_int(name, v, lo=lo)
    return v, v


def output_size(n, k, stride, pad):
    """⌊(n + 2·pad − k) / stride⌋ + 1, the output length of one spatial axis."""
    return (n + 2 * pad - k) // stride + 1


def forward(params, x, stride=1, padding=0, *, check_finite=True):
    """2-D convolution (cross-correlation): y and the cache.

    ::

        y[b, o, ho, wo] = Σ_{c,i,j} W[o, c, i, j] · x_pad[b, c, ho·sh + i, wo·sw + j] (+ bias[o])

    As a product: Y_b = W₂ · cols(x)_b with W₂ = W.reshape(O, C·kh·kw).

    Parameters
    ----------
    params : dict of ndarray
        ``weight`` W (O, C, kh, kw), ``bias`` (O) or absent (the default in a ResNet).
    x : ndarray
        (B, C, H, W) float32/float64.
    stride, padding : int or (int, int)
        Per axis (h, w) or one for both.
    check_finite : bool
        False skips the scan for NaN and infinity (a network checks its input once and passes
        it inside, where every value is computed from checked ones).

    Returns
    -------
    y : ndarray
        (B, O, Ho, Wo), Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1 (likewise Wo).
    cache : tuple
        (x, stride, padding), for ``backward``.
    """
    w = check_array("weight", params["weight"], ndim=4, finite=check_finite)
    x = check_array("x", x, ndim=4, finite=check_finite)
    b = params.get("bias")
    if b is not None:
        b = check_array("bias", b, shape=(w.shape[0],), finite=check_finite)
    check_same_dtype(x=x, weight=w, bias=b)
    stride = _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    o, c, kh, kw = w.shape
    nb, cx, h, wd = x.shape
    if cx != c:
        raise InputError(f"x: expected {c} input channels (weight is {w.shape}), got {cx} "
                         f"(x shape {x.shape})")
    ho, wo = output_size(h, kh, stride[0], padding[0]), output_size(wd, kw, stride[1], padding[1])
    if ho < 1 or wo < 1:
        raise InputError(f"x: spatial size {h}×{wd} is smaller than the {kh}×{kw} kernel with "
                         f"padding {padding}; the output would be empty")
    w2 = w.reshape(o, c * kh * kw)
    y = np.empty((nb, o, ho * wo), dtype=x.dtype)
    for b0, b1, cols in _column_chunks(x, kh, kw, stride, padding, ho, wo):
        np.matmul(w2, cols, out=y[b0:b1])
    if b is not None:
        y += b[:, None]
    return y.reshape(nb, o, ho, wo), (x, stride, padding)


def backward(params, cache, dy, input_grad=True):
    """Convolution backward: dx and grads.

    With W₂ = W.reshape(O, C·kh·kw) and cols(x)_b the im2col matrix of sample b::

        dW = Σ_b dY_b · cols(x)_bᵀ,   dx = col2im(W₂ᵀ · dY_b),   dbias = Σ_{b,ho,wo} dy

    Parameters
    ----------
    params : dict of ndarray
        ``weight`` (O, C, kh, kw) and optional ``bias`` (O), as in the forward pass.
    cache : tuple
        The cache the forward pass returned.
    dy : ndarray
        (B, O, Ho, Wo) ∂L/∂y.
    input_grad : bool
        False skips dx (returned as None) where x is data, as for a network's first layer.

    Returns
    -------
    dx : ndarray or None
        (B, C, H, W) ∂L/∂x.
    grads : dict of ndarray
        ``weight`` and, with a bias, ``bias``.
    """
    x, stride, padding = cache
    w = params["weight"]
    o, c, kh, kw = w.shape
    nb, _, h, wd = x.shape
    ho, wo = output_size(h, kh, stride[0], padding[0]), output_size(wd, kw, stride[1], padding[1])
    dy = check_array("dy", dy, shape=(nb, o, ho, wo), dtype=x.dtype, finite=False)
    dy3 = dy.reshape(nb, o, ho * wo)
    w2 = w.reshape(o, c * kh * kw)
    dw = np.zeros_like(w2)
    tmp = np.empty_like(w2)
    grads = {"weight": dw.reshape(w.shape)}
    if params.get("bias") is not None:
        grads["bias"] = dy3.sum(axis=(0, 2))
    pointwise = _is_pointwise(kh, kw, stride, padding)
    dx = np.empty_like(x) if input_grad else None
    for b0, b1, cols in _column_chunks(x, kh, kw, stride, padding, ho, wo):
        for i in range(b1 - b0):
            # One (O, L) · (L, C·kh·kw) product per sample, summed in sample order: no
            # (B, O, C·kh·kw) temporary.
            np.matmul(dy3[b0 + i], cols[i].T, out=tmp)
            dw += tmp
        if not input_grad:
            continue
        if pointwise:   # the columns are x itself: dx is their gradient
            np.matmul(w2.T, dy3[b0:b1], out=dx.reshape(nb, c, h * wd)[b0:b1])
        else:           # the chunk's columns are no longer needed: their gradient overwrites them
            dcols = np.matmul(w2.T, dy3[b0:b1], out=cols)
            if _use_scatter(h, wd, stride, wo):
                kconv.col2im_scatter(dcols, _gather_index(h, wd, kh, kw, stride, padding),
                                     dx[b0:b1])
            else:
                kconv.col2im(dcols, kh, kw, stride[0], stride[1], padding[0], padding[1],
                             dx[b0:b1])
    return dx, grads


def _is_pointwise(kh, kw, stride, padding):
    return kh == 1 and kw == 1 and stride == (1, 1) and padding == (0, 0)


# The route of the columns (kernels/conv.py; both give the same arrays to the bit). im2col's
# copies of contiguous runs win on wide planes with stride 1 and "same" width; everywhere else
# (a stride, or planes narrower than this) the table lookup of im2col_gather wins, by 2-10x
# on the late stages of a ResNet (docs/results/performance.md). col2im likewise, but its runs
# stay ahead down to smaller planes: the scatter only for strides and planes of at most
# SCATTER_MAX_PIXELS.
GATHER_BELOW_WIDTH = 16
SCATTER_MAX_PIXELS = 64


def _use_gather(h, wd, stride, wo):
    return not (stride == (1, 1) and wo == wd and wd >= GATHER_BELOW_WIDTH)


def _use_scatter(h, wd, stride, wo):
    return not (stride == (1, 1) and wo == wd) or h * wd <= SCATTER_MAX_PIXELS


@functools.lru_cache(maxsize=256)
def _gather_index(h, wd, kh, kw, stride, padding):
    """kconv.gather_index for one geometry, made once (read-only: it is shared)."""
    index = kconv.gather_index(h, wd, kh, kw, stride[0], stride[1], padding[0], padding[1])
    index.flags.writeable = False
    return index


def _column_chunks(x, kh, kw, stride, padding, ho, wo):
    """Yield (b0, b1, cols): the columns of samples b0..b1−1, (b1 − b0, C·kh·kw, Ho·Wo), filled
    by im2col into one buffer reused from chunk to chunk (valid until the next chunk). A
    pointwise convolution's columns are x itself, viewed as (B, C, H·W): one chunk, no copy."""
    nb, c, h, wd = x.shape
    if _is_pointwise(kh, kw, stride, padding):
        yield 0, nb, x.reshape(nb, c, h * wd)
        return
    per_sample = c * kh * kw * ho * wo * x.itemsize
    n = max(1, min(nb, COLUMN_CHUNK_BYTES // per_sample))
    buf = np.empty((n, c * kh * kw, ho * wo), dtype=x.dtype)
    index = _gather_index(h, wd, kh, kw, stride, padding) if _use_gather(h, wd, stride, wo) \
        else None
    for b0 in range(0, nb, n):
        b1 = min(nb, b0 + n)
        cols = buf[:b1 - b0]
        if index is not None:
            kconv.im2col_gather(x[b0:b1], index, cols)
        else:
            kconv.im2col(x[b0:b1], kh, kw, stride[0], stride[1], padding[0], padding[1], cols)
        yield b0, b1, cols
