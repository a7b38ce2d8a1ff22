"""Gradient-check cases for the losses and the quantizer's straight-through gradient.

Losses are scalars; each check scales them by a random upstream gradient (never 1) where the
op takes one. The quantizer itself has no useful derivative (Q is piecewise constant: zero
almost everywhere, undefined on the steps), so what is checked is the STE plumbing: the
gradient ``ste_backward`` hands to w equals the finite-difference gradient of a loss of the
dequantized weights ŵ = Q(w) with respect to ŵ. That is the estimator ∂L/∂w := ∂L/∂ŵ, not the
derivative of L(Q(w)) with respect to w.
"""

from __future__ import annotations

import numpy as np

from qdaed.gradcheck import Case, compare_gradients
from qdaed.nn import linear, losses, quant


def _logits(rng):
    b, c = rng.integers(1, 5, size=2)
    return 3.0 * rng.standard_normal((b, c)), 3.0 * rng.standard_normal((b, c)), rng.random((b, c))


def _hard(rng):
    z, _, y = _logits(rng)
    dloss = rng.uniform(0.5, 2.0)
    _, cache = losses.hard_forward(z, y)
    dz = losses.hard_backward(cache, dloss)
    return compare_gradients(lambda: dloss * losses.hard_forward(z, y)[0], {"z_student": z},
                             {"z_student": dz})


def _soft(rng):
    z, zt, _ = _logits(rng)
    t, dloss = rng.uniform(0.5, 6.0), rng.uniform(0.5, 2.0)
    _, cache = losses.soft_forward(z, zt, t)
    dz = losses.soft_backward(cache, dloss)
    return compare_gradients(lambda: dloss * losses.soft_forward(z, zt, t)[0],
                             {"z_student": z}, {"z_student": dz})


def _distillation(rng):
    z, zt, y = _logits(rng)
    t, lam = rng.uniform(0.5, 6.0), rng.uniform(0.05, 0.95)
    _, dz = losses.distillation_loss(z, zt, y, t, lam)
    return compare_gradients(lambda: losses.distillation_loss(z, zt, y, t, lam)[0],
                             {"z_student": z}, {"z_student": dz})


def _softmax_distillation(rng):
    z, zt, _ = _logits(rng)
    labels = rng.integers(0, z.shape[1], size=z.shape[0])
    t, lam = rng.uniform(0.5, 6.0), rng.uniform(0.05, 0.95)
    _, dz = losses.softmax_distillation_loss(z, zt, labels, t, lam)
    return compare_gradients(lambda: losses.softmax_distillation_loss(z, zt, labels, t, lam)[0],
                             {"z_student": z}, {"z_student": dz})


def _ste(rng):
    b, i, o = rng.integers(1, 5, size=3)
    bits = int(rng.integers(1, 9))
    group = ("tensor", "row", int(rng.integers(1, 4)))[rng.integers(3)]
    w = rng.standard_normal((o, i))
    qt = quant.quantize(w, bits, group=group)
    w_hat = qt.dequantize(np.float64)
    params = {"weight": w_hat, "bias": rng.standard_normal(o)}
    x, dy = rng.standard_normal((b, i)), rng.standard_normal((b, o))
    _, cache = linear.forward(params, x)
    _, grads = linear.backward(params, cache, dy)
    dw = quant.ste_backward(grads["weight"], qt)

    def loss():
        return float(np.sum(linear.forward(params, x)[0] * dy))

    return compare_gradients(loss, {"w_hat": w_hat}, {"w_hat": dw})


CASES = [
    Case("nn.losses.hard", _hard),
    Case("nn.losses.soft", _soft),
    Case("nn.losses.distillation", _distillation),
    Case("nn.losses.softmax_distillation", _softmax_distillation),
    Case("nn.quant.ste", _ste),
]
