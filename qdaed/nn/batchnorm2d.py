"""2-D batch normalisation, as PyTorch's ``nn.BatchNorm2d`` (affine, tracking running statistics).

x (B, C, H, W); statistics per channel c over the N = B·H·W values of that channel.
params: ``weight`` γ (C), ``bias`` β (C).  buffers: ``running_mean`` (C), ``running_var`` (C),
updated in place by a training-mode forward, exactly as PyTorch does.

``relu=True`` fuses the ReLU that follows every batch-norm but the last of a residual block:
y = max(BN(x), 0) in one pass, with the backward masking dy by [y > 0] inside the same loops.
It computes what ``relu.forward(batchnorm2d.forward(x))`` computes (a test checks this), one
memory pass cheaper in each direction.

``residual=r`` fuses the end of a residual block, y = max(BN(x) + r, 0), into the same pass
(what ``relu.forward(batchnorm2d.forward(x), residual=r)`` computes). Its backward is split
as the sum is: the caller turns dy into g = dy·[y > 0] with ``relu.backward`` on (y,) — g is
the shortcut's gradient too — and passes g to ``backward``, which then differentiates
the batch-norm alone.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels import batchnorm as kbn
from qdaed.validate import check_array, check_float, check_same_dtype

MOMENTUM = 0.1
EPS = 1e-5


def forward(params, x, buffers, train, momentum=MOMENTUM, eps=EPS, relu=False, residual=None,
            check_finite=True):
    """Batch normalisation per channel, as PyTorch's ``nn.BatchNorm2d``: y and the cache.

    Training (train=True), with batch statistics over the N = B·H·W values of channel c::

        μ_c = (1/N) Σ x,   σ²_c = (1/N) Σ (x − μ_c)²              (biased, used to normalise)
        x̂ = (x − μ_c) / √(σ²_c + eps),   y = γ_c x̂ + β_c
        running_mean ← (1 − m)·running_mean + m·μ_c
        running_var  ← (1 − m)·running_var  + m·σ²_c·N/(N − 1)    (unbiased, as PyTorch)

    Evaluation (train=False): x̂ = (x − running_mean) / √(running_var + eps), y = γ x̂ + β.

    Parameters
    ----------
    params : dict of ndarray
        ``weight`` γ (C), ``bias`` β (C).
    x : ndarray
        (B, C, H, W).
    buffers : dict of ndarray
        ``running_mean`` (C), ``running_var`` (C); updated in place when training.
    train : bool
        Batch statistics (True) or running statistics (False).
    momentum, eps : float
        m = 0.1 and eps = 1e-5 by default, as PyTorch.
    relu : bool
        Return max(y, 0) instead of y (the fused ReLU of a residual block).
    residual : ndarray, optional
        r (B, C, H, W): return max(y + r, 0) and a cache whose backward takes the gradient at
        the sum (module docstring).
    check_finite : bool
        False skips the scan for NaN and infinity (a network checks its input once and passes
        it inside, where every value is computed from checked ones).

    Returns
    -------
    y : ndarray
        (B, C, H, W).
    cache : tuple
        For ``backward``.
    """
    x = check_array("x", x, ndim=4, finite=check_finite)
    nb, nc, h, w = x.shape
    gamma = check_array("weight", params["weight"], shape=(nc,))
    beta = check_array("bias", params["bias"], shape=(nc,))
    rm = check_array("running_mean", buffers["running_mean"], shape=(nc,))
    rv = check_array("running_var", buffers["running_var"], shape=(nc,))
    check_same_dtype(x=x, weight=gamma, bias=beta, running_mean=rm, running_var=rv)
    if residual is not None:
        if relu:
            raise InputError("relu: the residual form applies its own ReLU after the sum; "
                             "pass relu=False with residual")
        residual = check_array("residual", residual, shape=x.shape, dtype=x.dtype,
                               finite=check_finite)
    momentum = check_float("momentum", momentum, 0.0, 1.0)
    eps = check_float("eps", eps, 0.0, lo_open=True)
    if not isinstance(train, (bool, np.bool_)):
        raise InputError(f"train: expected True or False, got {train!r}")
    n = nb * h * w
    x3 = x.reshape(nb, nc, h * w)
    if train:
        if n < 2:
            raise InputError(f"x: batch-norm in training mode needs more than one value per "
                             f"channel to estimate a variance, got B·H·W = {n} (shape {x.shape})")
        mean = np.empty(nc)
        var = np.empty(nc)
        kbn.channel_mean_var(x3, mean, var)
        # In place, so that the caller's buffer dict (a model's state) sees the update.
        rm *= 1.0 - momentum
        rm += momentum * mean
        rv *= 1.0 - momentum
        rv += momentum * var * (n / (n - 1))
        buffers["running_mean"], buffers["running_var"] = rm, rv
    else:
        if np.any(rv < 0):
            raise InputError("running_var: contains negative values")
        mean = rm.astype(np.float64)
        var = rv.astype(np.float64)
    invstd = 1.0 / np.sqrt(var + eps)
    scale = gamma * invstd
    shift = beta - mean * scale
    y = np.empty_like(x)
    if residual is None:
        kbn.scale_shift(x3, scale.astype(x.dtype), shift.astype(x.dtype), bool(relu),
                        y.reshape(x3.shape))
    else:
        kbn.scale_shift_add_relu(x3, scale.astype(x.dtype), shift.astype(x.dtype),
                                 residual.reshape(x3.shape), y.reshape(x3.shape))
    return y, (x, mean, invstd, y if relu else None, bool(train), bool(relu))


def backward(params, cache, dy):
    """Batch-norm backward: dx and grads.

    With g = dy (or dy·[y > 0] when relu), sums over the N values of channel c::

        dβ_c = Σ g,   dγ_c = Σ g·x̂
        training:   dx = γ_c/√(σ²_c + eps) · (g − (1/N) Σ g − x̂·(1/N) Σ g·x̂)
        evaluation: dx = γ_c/√(running_var_c + eps) · g

    Parameters
    ----------
    params : dict of ndarray
        ``weight`` γ (C), ``bias`` β (C), as in the forward pass.
    cache : tuple
        The cache the forward pass returned.
    dy : ndarray
        (B, C, H, W) ∂L/∂y.

    Returns
    -------
    dx : ndarray
        (B, C, H, W) ∂L/∂x.
    grads : dict of ndarray
        ``weight`` dγ (C) and ``bias`` dβ (C).
    """
    x, mean, invstd, y, train, relu = cache
    nb, nc, h, w = x.shape
    dy = check_array("dy", dy, shape=x.shape, dtype=x.dtype, finite=False)
    gamma = params["weight"]
    x3, dy3 = x.reshape(nb, nc, h * w), dy.reshape(nb, nc, h * w)
    y3 = dy3 if y is None else y.reshape(x3.shape)   # unused unless relu
    sum_g = np.empty(nc)
    sum_g_xhat = np.empty(nc)
    kbn.grad_sums(x3, mean, invstd, dy3, y3, relu, sum_g, sum_g_xhat)
    k = (gamma * invstd).astype(x.dtype)
    dx = np.empty_like(x)
    if train:
        n = nb * h * w
        kbn.train_input_grad(x3, mean.astype(x.dtype), invstd.astype(x.dtype), dy3, y3, relu, k,
                             (sum_g / n).astype(x.dtype), (sum_g_xhat / n).astype(x.dtype),
                             dx.reshape(x3.shape))
    else:
        kbn.eval_input_grad(dy3, y3, relu, k, dx.reshape(x3.shape))
    grads = {"weight": sum_g_xhat.astype(x.dtype), "bias": sum_g.astype(x.dtype)}
    return dx, grads
