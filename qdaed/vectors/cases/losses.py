"""Golden cases of the multi-label losses (docs/method/losses.md, ``qdaed.nn.losses``).

    L_hard = mean BCE(y, σ(z_s)),   L_soft = mean BCE(σ(z_t/T), σ(z_s/T))
    L      = (1 − λ) L_hard + λ T² L_soft,   means over B·C

Inputs ``z_student`` (B, C), ``z_teacher`` (B, C), ``y`` (B, C) in [0, 1] (fractional values
included); outputs the loss values as 0-d tensors (``loss``, and for the distillation loss its
parts ``loss_hard`` and ``loss_soft``, the latter without T²) and ``dz`` = ∂L/∂z_s. "logits_1e4"
cases put logits of ±1e4 in: a stable implementation (log1p(exp(−|z|)) form) gives finite,
exact-to-rounding values where the naive log σ(z) overflows.
"""

from __future__ import annotations

import numpy as np

from qdaed.nn import losses
from qdaed.vectors.cases import register


def _logits(b, big):
    z = b.normal(4, 3, scale=2.0)
    if big:
        z[0, 0], z[1, 1], z[2, 2], z[3, 0] = 1e4, -1e4, 1e4, -1e4
    return z


def _targets(b):
    y = (b.rng.random((4, 3)) < 0.5).astype(np.float64)
    y[1, 0], y[2, 1] = 0.25, 0.9  # fractional (label smoothing) targets are allowed
    return y


def _hard(b, big):
    z = b.input("z_student", _logits(b, big))
    y = b.input("y", _targets(b))
    loss, cache = losses.hard_forward(z, y)
    b.output("loss", np.array(loss), "reduction")
    b.output("dz", losses.hard_backward(cache), "elementwise")


def _soft(b, temperature, big):
    b.options["temperature"] = temperature
    z = b.input("z_student", _logits(b, big))
    zt = b.input("z_teacher", _logits(b, big)[::-1].copy())
    loss, cache = losses.soft_forward(z, zt, temperature)
    b.output("loss", np.array(loss), "reduction", "no T^2 in L_soft itself")
    b.output("dz", losses.soft_backward(cache), "elementwise")


def _distill(b, temperature, lam, big):
    b.options.update(temperature=temperature, lam=lam)
    z = b.input("z_student", _logits(b, big))
    zt = b.input("z_teacher", _logits(b, big)[::-1].copy())
    y = b.input("y", _targets(b))
    loss, dz = losses.distillation_loss(z, zt, y, temperature, lam)
    hard, _ = losses.hard_forward(z, y)
    soft, _ = losses.soft_forward(z, zt, temperature)
    b.output("loss", np.array(loss), "reduction", "(1 - lam) L_hard + lam T^2 L_soft")
    b.output("loss_hard", np.array(hard), "reduction")
    b.output("loss_soft", np.array(soft), "reduction", "without the T^2")
    b.output("dz", dz, "elementwise")


register("loss_hard", "loss_hard", "mean BCE-with-logits over B*C = 4*3 with fractional "
         "targets; loss, dz", _hard, big=False)
register("loss_hard_logits_1e4", "loss_hard", "as loss_hard with logits of +-1e4 (stable "
         "form needed)", _hard, big=True)
for _t, _big in ((1.0, False), (2.0, False), (4.0, False), (2.0, True)):
    register(f"loss_soft_T{_t:g}" + ("_logits_1e4" if _big else ""), "loss_soft",
             f"mean BCE(sigmoid(z_t / T), sigmoid(z_s / T)) at T = {_t:g}"
             + (" with logits of +-1e4" if _big else "") + "; loss (no T^2), dz", _soft,
             temperature=_t, big=_big)
for _t, _lam, _big in ((1.0, 0.5, False), (2.0, 0.9, False), (4.0, 0.3, False),
                       (3.0, 1.0, False), (1.0, 0.0, False), (2.0, 0.7, True),
                       (8.0, 0.5, True)):
    register(f"loss_distillation_T{_t:g}_lam{_lam:g}" + ("_logits_1e4" if _big else ""),
             "loss_distillation",
             f"(1 - lam) L_hard + lam T^2 L_soft at T = {_t:g}, lam = {_lam:g}"
             + (" with logits of +-1e4" if _big else "") + "; loss, its two parts, dz",
             _distill, temperature=_t, lam=_lam, big=_big)
