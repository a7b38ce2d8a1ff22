"""Multi-label losses of docs/method/losses.md: sigmoid cross-entropy on hard labels, the soft-target
cross-entropy with temperature T, and the distillation loss that mixes them.

Notation: logits z (B, C) for B clips and C classes, σ the logistic sigmoid, and the
element-wise binary cross-entropy between a target p ∈ [0, 1] and σ(z)

    ℓ(z, p) = −p log σ(z) − (1 − p) log(1 − σ(z)),      ∂ℓ/∂z = σ(z) − p.

    L_hard = 1/(BC) Σ_{b,c} ℓ(z_s, y)                       y ∈ [0, 1]  (fractional allowed)
    L_soft = 1/(BC) Σ_{b,c} ℓ(z_s / T, q),   q = σ(z_t / T)
    L      = (1 − λ) L_hard + λ T² L_soft

    ∂L_hard/∂z_s = (σ(z_s) − y) / (BC)
    ∂L_soft/∂z_s = (σ(z_s / T) − q) / (T·BC)

The teacher is frozen (docs/method/schedules.md: its logits are computed once and cached), so no
gradient with respect to z_t is formed. Each loss is a ``*_forward(...) -> (loss, cache)`` /
``*_backward(cache, dloss) -> dz`` pair; ``distillation_loss`` is the one call training uses.
Losses are returned as Python floats (accumulated in float64), gradients in the logits' dtype.
At the end of the module, set apart: ``softmax_distillation_loss``, the single-label softmax/KL
form of distillation, an option for teaching that qdaed's multi-label pipeline does not use.

The loss form, the mean over B·C and the T² weight are qdaed's reading of the paper, which
gives none of them (docs/design/choices.md); T and λ are options of every training command.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.kernels import losses as _k
from qdaed.validate import check_array, check_float, check_same_dtype


# -- the mean sigmoid cross-entropy both losses share (unchecked; callers validate) ----------

def _mean_bce_forward(z, p):
    """Σ ℓ(z, p) / (BC) for logits z and targets p of one shape; cache (z, p, 1/(BC))."""
    inv_n = 1.0 / z.size  # the mean over B·C: the only place the 1/(BC) factor enters
    return inv_n * _k.sigmoid_bce_sum(z.reshape(-1), p.reshape(-1)), (z, p, inv_n)


def _mean_bce_backward(cache, dloss):
    """dz = dloss · (σ(z) − p) / (BC)."""
    z, p, inv_n = cache
    dz = np.empty_like(z)
    _k.scaled_sigmoid_minus_target(z.reshape(-1), p.reshape(-1), dloss * inv_n, dz.reshape(-1))
    return dz


def sigmoid(z):
    """σ(z) = 1 / (1 + e^−z), element-wise and overflow-free, in the dtype of z."""
    out = np.empty_like(z)
    _k.sigmoid(z.reshape(-1), out.reshape(-1))
    return out


# -- argument checks ---------------------------------------------------------------------

def _check_logits(name, z, like=None):
    if like is None:
        return check_array(name, z, ndim=2)
    z = check_array(name, z, shape=like.shape)
    check_same_dtype(**{"z_student": like, name: z})
    return z


def _check_targets(y, z):
    y = _check_logits("y", y, like=z)
    if y.min() < 0.0 or y.max() > 1.0:
        raise InputError(f"y: expected targets in [0, 1], got values in "
                         f"[{y.min():.6g}, {y.max():.6g}]")
    return y


def _check_dloss(dloss):
    return check_float("dloss", dloss)


# -- hard labels ---------------------------------------------------------------------------

def hard_forward(z_student, y):
    """L_hard = 1/(BC) Σ_{b,c} ℓ(z_s[b,c], y[b,c]).

    z_student: logits z_s (B, C), float32/float64.  y: targets (B, C) in [0, 1], same dtype
    (fractional values, e.g. label smoothing, are allowed).
    Returns (L_hard as a float, cache).
    """
    z = _check_logits("z_student", z_student)
    y = _check_targets(y, z)
    return _mean_bce_forward(z, y)


def hard_backward(cache, dloss=1.0):
    """∂/∂z_s of dloss · L_hard = dloss · (σ(z_s) − y) / (BC), shape (B, C)."""
    return _mean_bce_backward(cache, _check_dloss(dloss))


# -- soft targets from the teacher ------------------------------------------------------

def soft_forward(z_student, z_teacher, temperature):
    """L_soft = 1/(BC) Σ_{b,c} ℓ(z_s[b,c] / T, q[b,c]),  q = σ(z_t / T).

    z_student: z_s (B, C); z_teacher: z_t (B, C), same dtype; temperature: T > 0.
    Returns (L_soft as a float, cache). L_soft carries no T² (distillation_loss applies it).
    """
    z = _check_logits("z_student", z_student)
    zt = _check_logits("z_teacher", z_teacher, like=z)
    t = check_float("temperature", temperature, lo=0.0, lo_open=True)
    return _soft_forward(z, zt, t)


def soft_backward(cache, dloss=1.0):
    """∂/∂z_s of dloss · L_soft = dloss · (σ(z_s / T) − q) / (T·BC), shape (B, C).

    The 1/T is the chain rule through u = z_s / T: ∂ℓ(u, q)/∂u = σ(u) − q, ∂u/∂z_s = 1/T.
    """
    return _soft_backward(cache, _check_dloss(dloss))


def _soft_forward(z, zt, t):
    loss, inner = _mean_bce_forward(z / t, sigmoid(zt / t))
    return loss, (inner, t)


def _soft_backward(cache, dloss):
    inner, t = cache
    return _mean_bce_backward(inner, dloss) / t


# -- the loss training minimises -----------------------------------------------------------

def distillation_loss(z_student, z_teacher, y, temperature, lam):
    """The distillation loss L = (1 − λ) L_hard + λ T² L_soft and its gradient ∂L/∂z_s.

    With ℓ(z, p) = −p log σ(z) − (1 − p) log(1 − σ(z)) element-wise and q = σ(z_t / T)::

        L_hard = 1/(BC) Σ_{b,c} ℓ(z_s, y)
        L_soft = 1/(BC) Σ_{b,c} ℓ(z_s / T, q)
        ∂L/∂z_s = (1 − λ) (σ(z_s) − y)/(BC) + λ T² (σ(z_s/T) − q)/(T·BC)

    With z_teacher None or λ = 0 the result is the hard loss alone, L = L_hard (the baseline
    student of docs/method/schedules.md). T² keeps the soft gradient's scale independent of T
    for large T (Hinton et al. 2015: (σ(a/T) − σ(b/T))·T → (a − b)/4); dropping it is a known bug.

    Transfer rows (an unlabelled transfer set, Hinton et al. 2015 §2; Buciluǎ et al. 2006):
    y may label only the first B_l ≤ B rows of the batch (B_l = 0: y is None). The other
    B − B_l rows have no labels and enter only the soft term; the hard term is the mean over
    the labelled rows, L_hard = 1/(B_l C) Σ_{b < B_l} ℓ(z_s[b], y[b]) (0 when B_l = 0), so a
    transfer row never reaches the hard loss.

    Parameters
    ----------
    z_student : ndarray
        z_s (B, C) float32/float64, the student's logits.
    z_teacher : ndarray or None
        z_t (B, C) of the same dtype, the frozen teacher's logits.
    y : ndarray or None
        Hard targets (B_l, C) in [0, 1] (fractional allowed), same dtype.
    temperature : float
        T > 0.
    lam : float
        λ ∈ [0, 1], the weight of the soft term.

    Returns
    -------
    loss : float
        L, accumulated in float64.
    dz_student : ndarray
        ∂L/∂z_s (B, C), in z_student's dtype.
    """
    z = _check_logits("z_student", z_student)
    t = check_float("temperature", temperature, lo=0.0, lo_open=True)
    lam = check_float("lam", lam, lo=0.0, hi=1.0)
    if y is None:
        n_lab = 0
    else:
        y = check_array("y", y, shape=(None, z.shape[1]))
        n_lab = y.shape[0]
        if n_lab > z.shape[0]:
            raise InputError(f"y: labels {n_lab} rows but the batch has {z.shape[0]}")
        y = _check_targets(y, z[:n_lab])
    if z_teacher is not None:
        z_teacher = _check_logits("z_teacher", z_teacher, like=z)
    if z_teacher is None or lam == 0.0:
        if n_lab < z.shape[0]:
            raise InputError("y: every row needs a label when there is no soft term "
                             "(z_teacher None or lam = 0)")
        loss, cache = _mean_bce_forward(z, y)
        return loss, _mean_bce_backward(cache, 1.0)

    soft_weight = lam * t * t  # λ T²: the only place the T² enters
    soft, soft_cache = _soft_forward(z, z_teacher, t)
    dz = _soft_backward(soft_cache, soft_weight)
    loss = soft_weight * soft
    if n_lab > 0 and lam < 1.0:
        hard, hard_cache = _mean_bce_forward(z[:n_lab], y)
        loss += (1.0 - lam) * hard
        dz[:n_lab] += _mean_bce_backward(hard_cache, 1.0 - lam)
    return loss, dz


# -- optional, for teaching: single-label softmax distillation (not qdaed's default) -------------
#
# Hinton et al. 2015 for tasks with exactly one label per example (qdaed's AED task is
# multi-label and uses the sigmoid losses above). With p_s = softmax(z_s), r_s = softmax(z_s/T)
# and p_t = softmax(z_t/T), rows b = 1..B, integer labels y_b:
#
#     L_ce = −1/B Σ_b log p_s[b, y_b]                     ∂L_ce/∂z_s = (p_s − onehot(y)) / B
#     L_kl =  1/B Σ_b Σ_c p_t (log p_t − log r_s)         ∂L_kl/∂z_s = (r_s − p_t) / (T·B)
#     L    = (1 − λ) L_ce + λ T² L_kl
#
# Mean over B, as PyTorch's cross_entropy (reduction="mean") and kl_div(reduction="batchmean").

def _log_softmax(z):
    out = np.empty_like(z)
    _k.log_softmax_rows(z, out)
    return out


def softmax_distillation_loss(z_student, z_teacher, labels, temperature, lam):
    """L = (1 − λ) L_ce + λ T² L_kl (single-label; equations above) and ∂L/∂z_s.

    z_student: z_s (B, C) float32/float64; z_teacher: z_t (B, C) same dtype, or None (then
    L = L_ce); labels: integer class indices (B,) in [0, C); temperature: T > 0; lam: λ ∈ [0, 1].
    Returns (L as a float, dz_student (B, C) in z_student's dtype).
    """
    z = _check_logits("z_student", z_student)
    bsz, ncls = z.shape
    if (not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu"
            or labels.shape != (bsz,)):
        raise InputError(f"labels: expected an integer array of shape ({bsz},), got "
                         f"{getattr(labels, 'shape', type(labels).__name__)} "
                         f"{getattr(labels, 'dtype', '')}")
    if labels.min() < 0 or labels.max() >= ncls:
        raise InputError(f"labels: expected class indices in [0, {ncls}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    t = check_float("temperature", temperature, lo=0.0, lo_open=True)
    lam = check_float("lam", lam, lo=0.0, hi=1.0)
    if z_teacher is not None:
        z_teacher = _check_logits("z_teacher", z_teacher, like=z)
    if z_teacher is None:
        lam = 0.0

    inv_b = 1.0 / bsz  # the mean over the batch: the only place the 1/B factor enters
    rows = np.arange(bsz)
    logp = _log_softmax(z)
    ce = -inv_b * float(logp[rows, labels].astype(np.float64).sum())
    dz = np.exp(logp)
    dz[rows, labels] -= 1.0
    dz *= (1.0 - lam) * inv_b
    if lam == 0.0:
        return ce, dz
    soft_weight = lam * t * t  # λ T²: the only place the T² enters
    log_r, log_pt = _log_softmax(z / t), _log_softmax(z_teacher / t)
    p_t = np.exp(log_pt)
    kl = inv_b * float((p_t * (log_pt - log_r)).astype(np.float64).sum())
    dz += (soft_weight * inv_b / t) * (np.exp(log_r) - p_t)
    return (1.0 - lam) * ce + soft_weight * kl, dz
