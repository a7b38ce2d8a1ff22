"""Detection metrics of docs/method/metrics.md: per-class ROC AUC, equal error rate, average precision.

Every metric takes the scores of one class s (N) — any real numbers, larger meaning "more
likely present" — and binary labels y (N) in {0, 1}; P positives, N₀ = N − P negatives.

ROC AUC, as a rank statistic (Mann–Whitney U), ties counted as average ranks::

    AUC = (Σ_{i: y_i = 1} rank(s_i) − P(P + 1)/2) / (P · N₀)

i.e. the probability that a random positive scores above a random negative, a tie counting ½.

EER. The ROC curve is built from the distinct score values t_1 > t_2 > … > t_m: point j is
(FPR_j, TPR_j) for the decision "positive iff s ≥ t_j", preceded by point 0 = (0, 0) (nothing
positive). Consecutive points are joined by straight lines. With FNR = 1 − TPR, the function

    d_j = FPR_j − FNR_j = FPR_j + TPR_j − 1

rises strictly from d_0 = −1 to d_m = +1 (every distinct threshold admits at least one more
clip, so FPR or TPR grows). Let j be the first point with d_j ≥ 0. The EER point is where the
segment from point j−1 to point j crosses d = 0:

    λ = −d_{j−1} / (d_j − d_{j−1})  ∈ (0, 1],      EER = FPR_{j−1} + λ (FPR_j − FPR_{j−1})

and there FPR = FNR = EER (both are linear along the segment). This is the intersection of the
piecewise-linear ROC with the line TPR = 1 − FPR, the usual definition (e.g. the
``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`` idiom on scikit-learn's roc_curve).
All scores equal gives EER ½; perfect separation 0; perfectly reversed 1.

The threshold at the EER point (:func:`threshold_at_eer`) is interpolated along the same
segment, ``t_{j−1} + λ (t_j − t_{j−1})``, with t_0 (the "+∞" of point 0) replaced by t_1, the
largest score. On the data it was chosen on, a decision ``s ≥ threshold`` then lands on point j
when λ = 1 or j = 1, and on point j−1 otherwise; placing it between the two scores rather than
on one of them keeps it away from either score on new data.

Average precision, as scikit-learn's ``average_precision_score`` (no interpolation): over the
distinct thresholds in decreasing order, with precision P_n and recall R_n at threshold n and
R_0 = 0,

    AP = Σ_n (R_n − R_{n−1}) P_n.

Undefined cases (our choice, tested). AUC and EER need at least one positive and one negative;
AP needs at least one positive (with no negatives it is 1). The single-class functions
(:func:`roc_auc`, :func:`equal_error_rate`, :func:`average_precision`, :func:`threshold_at_eer`)
raise :class:`~qdaed.errors.InputError` on such input, because a caller asking for one number
must not receive a silent NaN. :func:`compute_metrics`, which reports every class of a test set,
instead gives NaN for a class where a metric is undefined and leaves that class out of the
"mean" (NaN if no class is defined); a results writer should print NaN as ``null`` in JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from qdaed.errors import InputError
from qdaed.validate import check_array

METRICS = ("auc", "eer", "ap")


# --------------------------------------------------------------------------- input checks

def _check_labels(name, labels, shape):
    """Labels as a float64 array of 0.0/1.0 with ``shape``; bool, integer or float dtypes."""
    if not isinstance(labels, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(labels).__name__}")
    if labels.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected a boolean, integer or float array, got {labels.dtype}")
    if labels.shape != shape:
        raise InputError(f"{name}: expected shape {shape} (like scores), got {labels.shape}")
    y = labels.astype(np.float64)
    if not np.all((y == 0.0) | (y == 1.0)):
        bad = np.unique(y[(y != 0.0) & (y != 1.0)])[:5]
        raise InputError(f"{name}: expected only 0 and 1, found {', '.join(map(str, bad))}")
    return y


def _check_binary(scores, labels):
    s = check_array("scores", scores, ndim=1).astype(np.float64)
    y = _check_labels("labels", labels, s.shape)
    return s, y


def _require_both_classes(what, y):
    p = int(y.sum())
    if p == 0 or p == y.size:
        kind = "positives" if p == 0 else "negatives"
        raise InputError(f"labels: {what} is undefined without {kind} "
                         f"(got {p} positives among {y.size})")


# --------------------------------------------------------------------------- ROC machinery

def _counts(s, y):
    """True and false positive counts over distinct thresholds, in decreasing order.

    Returns thresholds t (m), TP (m), FP (m): TP_j, FP_j count the clips with s ≥ t_j.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores: the decision "s ≥ t" admits the whole run.
    last = np.flatnonzero(np.diff(s_sorted) != 0.0)
    last = np.append(last, s_sorted.size - 1)
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    return s_sorted[last], tp, fp


def _roc_points(s, y):
    """ROC over distinct thresholds (needs both classes): t (m), FPR (m + 1), TPR (m + 1),
    index 0 of FPR and TPR being the (0, 0) point."""
    t, tp, fp = _counts(s, y)
    fpr = np.concatenate(([0.0], fp / fp[-1]))
    tpr = np.concatenate(([0.0], tp / tp[-1]))
    return t, fpr, tpr


def roc_curve(scores: ArrayLike, labels: ArrayLike
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC of one class over distinct thresholds (needs both classes).

    Returns thresholds t (m, decreasing), FPR (m + 1) and TPR (m + 1), index 0 being (0, 0):
    point j ≥ 1 is the decision "positive iff s ≥ t_j".
    """
    s, y = _check_binary(scores, labels)
    _require_both_classes("the ROC curve", y)
    return _roc_points(s, y)


def _eer_segment(fpr, tpr):
    """(j, λ) of the crossing d = FPR + TPR − 1 = 0 on the segment from point j−1 to point j."""
    d = fpr + tpr - 1.0
    j = int(np.argmax(d >= 0.0))          # d_0 = −1 < 0 and d_m = +1, so 1 ≤ j ≤ m
    lam = -d[j - 1] / (d[j] - d[j - 1])
    return j, lam


# --------------------------------------------------------------------------- single class

def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """ROC AUC of one class, as a rank statistic (Mann–Whitney U), ties as average ranks.

    ::

        AUC = (Σ_{i: y_i = 1} rank(s_i) − P(P + 1)/2) / (P · N₀)

    with P positives and N₀ negatives: the probability that a random positive scores above a
    random negative, a tie counting ½.

    Parameters
    ----------
    scores : array_like
        (N) scores of one class.
    labels : array_like
        (N) binary labels in {0, 1}, with at least one of each.

    Returns
    -------
    float
        The AUC in [0, 1].
    """
    s, y = _check_binary(scores, labels)
    _require_both_classes("ROC AUC", y)
    return _auc(s, y)


def _auc(s, y):
    pos = y == 1.0
    p = float(pos.sum())
    n = float(y.size) - p
    ranks = rankdata(s, method="average")
    return float((ranks[pos].sum() - p * (p + 1.0) / 2.0) / (p * n))


def equal_error_rate(scores: ArrayLike, labels: ArrayLike) -> float:
    """EER of one class: FPR = FNR on the linearly interpolated ROC (module docstring).

    With d_j = FPR_j + TPR_j − 1 over the ROC points (point 0 = (0, 0)) and j the first point
    with d_j ≥ 0::

        λ = −d_{j−1} / (d_j − d_{j−1}),     EER = FPR_{j−1} + λ (FPR_j − FPR_{j−1})

    Parameters
    ----------
    scores : array_like
        (N) scores of one class, larger meaning "more likely present".
    labels : array_like
        (N) binary labels in {0, 1}, with at least one of each.

    Returns
    -------
    float
        The EER in [0, 1].
    """
    s, y = _check_binary(scores, labels)
    _require_both_classes("the EER", y)
    return _eer(s, y)


def _eer(s, y):
    _, fpr, tpr = _roc_points(s, y)
    j, lam = _eer_segment(fpr, tpr)
    return float(fpr[j - 1] + lam * (fpr[j] - fpr[j - 1]))


def threshold_at_eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Decision threshold at the EER point: ``s ≥ threshold`` means "present".

    Interpolated between the two scores that bound the EER segment (module docstring).
    """
    s, y = _check_binary(scores, labels)
    _require_both_classes("the EER threshold", y)
    t, fpr, tpr = _roc_points(s, y)
    j, lam = _eer_segment(fpr, tpr)
    t_prev = t[j - 2] if j >= 2 else t[0]
    return float(t_prev + lam * (t[j - 1] - t_prev))


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """AP = Σ_n (R_n − R_{n−1}) P_n over distinct thresholds (scikit-learn's definition)."""
    s, y = _check_binary(scores, labels)
    if y.sum() == 0:
        raise InputError(f"labels: average precision is undefined without positives "
                         f"(got 0 positives among {y.size})")
    return _ap(s, y)


def _ap(s, y):
    _, tp, fp = _counts(s, y)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


# --------------------------------------------------------------------------- every class

def compute_metrics(scores: ArrayLike, labels: ArrayLike,
                    class_names: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Per-class AUC, EER and AP and their mean over classes.

    scores: (N, C) float32/float64, finite.  labels: (N, C) of 0/1.
    class_names: C distinct strings (not "mean"); default "0", "1", ….
    Returns ``{"auc": {name: v, …, "mean": v}, "eer": {…}, "ap": {…}}`` of Python floats.
    A class lacking positives (all three undefined) or negatives (AUC and EER undefined) gets
    NaN there and is left out of that metric's mean; the mean is NaN if no class is defined.
    """
    s = check_array("scores", scores, ndim=2).astype(np.float64)
    y = _check_labels("labels", labels, s.shape)
    c = s.shape[1]
    if class_names is None:
        class_names = [str(k) for k in range(c)]
    class_names = list(class_names)
    if len(class_names) != c:
        raise InputError(f"class_names: expected {c} names (one per score column), "
                         f"got {len(class_names)}")
    if not all(isinstance(n, str) for n in class_names):
        raise InputError(f"class_names: expected strings, got {class_names!r}")
    if len(set(class_names)) != c or "mean" in class_names:
        raise InputError(f"class_names: expected distinct names other than 'mean', "
                         f"got {class_names!r}")

    out: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    for k, name in enumerate(class_names):
        sk, yk = s[:, k], y[:, k]
        p = yk.sum()
        both = 0 < p < yk.size
        out["auc"][name] = _auc(sk, yk) if both else float("nan")
        out["eer"][name] = _eer(sk, yk) if both else float("nan")
        out["ap"][name] = _ap(sk, yk) if p > 0 else float("nan")
    for m in METRICS:
        vals = np.array([out[m][n] for n in class_names])
        defined = vals[~np.isnan(vals)]
        out[m]["mean"] = float(defined.mean()) if defined.size else float("nan")
    return out


DECISION_METRICS = ("precision", "recall", "f1")


def decision_metrics(scores, labels, thresholds, class_names=None):
    """Precision, recall and F1 per class of the decisions ``s ≥ threshold`` (the thresholds a
    model stores) and their mean over classes:

        P = TP / (TP + FP),  R = TP / (TP + FN),  F1 = 2TP / (2TP + FP + FN)

    NaN where undefined (P with no clip decided positive, R with no positive clip, F1 with
    neither), and left out of the mean. Returns ``{"precision": {name: v, …, "mean": v}, …}``.
    """
    s = check_array("scores", scores, ndim=2).astype(np.float64)
    y = _check_labels("labels", labels, s.shape).astype(bool)
    th = np.asarray(thresholds, dtype=np.float64)
    if th.shape != (s.shape[1],):
        raise InputError(f"thresholds: expected {s.shape[1]} values, got shape {th.shape}")
    names = list(class_names) if class_names is not None else [str(k) for k in range(s.shape[1])]
    d = s >= th[None, :]
    out = {m: {} for m in DECISION_METRICS}
    for k, name in enumerate(names):
        tp = int((d[:, k] & y[:, k]).sum())
        fp = int((d[:, k] & ~y[:, k]).sum())
        fn = int((~d[:, k] & y[:, k]).sum())
        out["precision"][name] = tp / (tp + fp) if tp + fp else float("nan")
        out["recall"][name] = tp / (tp + fn) if tp + fn else float("nan")
        out["f1"][name] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    for m in DECISION_METRICS:
        vals = np.array([out[m][n] for n in names])
        defined = vals[~np.isnan(vals)]
        out[m]["mean"] = float(defined.mean()) if defined.size else float("nan")
    return out


__all__ = ["METRICS", "DECISION_METRICS", "roc_auc", "equal_error_rate", "threshold_at_eer",
           "average_precision", "compute_metrics", "decision_metrics"]
