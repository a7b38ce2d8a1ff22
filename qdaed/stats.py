"""Paired comparisons of two models: per-seed differences, t-intervals, clip and group
bootstrap.

Direction. Every difference here is **model minus reference**, b − a: for a metric where lower
is better (the EER), a negative difference means the model (b) is better than the reference
(a); e.g. ``paired_comparison(student, distilled)`` gives distilled − student.

Seeds. The pipeline trains both models of a comparison with the same seed s on the same split,
batch order and initialisation, so their results pair by seed: d_s = b_s − a_s, s = 1 … n.

t-interval (over seeds). With the mean d̄ = (1/n) Σ d_s and the sample standard deviation
sd = √(Σ (d_s − d̄)² / (n − 1)), the (1 − α) interval is

    d̄ ± t_{1−α/2, n−1} · sd / √n

and the p-value is the two-sided paired t-test of H₀: E[d] = 0 (``scipy.stats.ttest_rel``),
t = d̄ / (sd / √n) on n − 1 degrees of freedom. It needs n ≥ 2 seeds. When every d_s is the
same (sd = 0; scipy returns NaN there) we report the interval [d̄, d̄] and p = 1.0 if d̄ = 0
(no difference at all), else p = 0.0 (a constant non-zero difference).

Bootstrap (over test clips). The seeds measure training noise; the test set adds sampling
noise of its own. Each bootstrap resample r draws N indices i_1 … i_N with replacement from
the N test clips (``numpy.random.default_rng(seed).integers(0, N, size=(n_boot, N))``, row r
being resample r), the same indices for both models and every seed. On it

    Δ_r = (1/n) Σ_s [ EER̄_b(s, r) − EER̄_a(s, r) ],   EER̄ = mean over classes of the EER,

with the EER of :mod:`qdaed.metrics` (linearly interpolated ROC). The classes averaged are the
ones with both positives and negatives in the full test set (the others are undefined on
every resample and left out, as :func:`qdaed.metrics.compute_metrics` leaves them out of its
mean). A resample where one of those classes has no positives or no negatives is undefined:
it is skipped and counted. The (1 − α) interval is the percentile interval of the defined
Δ_r: the α/2 and 1 − α/2 quantiles (``numpy.percentile``, linear interpolation).

Bootstrap over source recordings (groups). Clips cut from one recording are not independent
(real corpora: slices of one Freesound file, cries of one app install), so resampling clips
understates the test set's sampling noise. :func:`group_bootstrap_mean_eer_difference` resamples
the G distinct groups of the test clips instead: resample r draws G group indices with
replacement (``numpy.random.default_rng(seed).integers(0, G, size=(n_boot, G))``, groups
numbered in sorted order of their keys), and holds every clip of a group drawn k times k times.
Δ_r, the skipped resamples and the percentile interval are as above.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from qdaed.errors import InputError
from qdaed.kernels import kernel
from qdaed.metrics import _check_labels
from qdaed.validate import check_array, check_int


# --------------------------------------------------------------------------- input checks

def _check_confidence(confidence):
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"confidence: expected a number in (0, 1), got {confidence!r}") from None
    if not 0.0 < c < 1.0:
        raise InputError(f"confidence: expected a number in (0, 1), e.g. 0.95, got {confidence!r}")
    return c


def _per_seed_values(name, values):
    """A 1-D float64 array of finite per-seed values (lists, tuples or arrays)."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a sequence of numbers (one per seed), "
                         f"got {values!r}") from None
    if v.ndim != 1:
        raise InputError(f"{name}: expected one value per seed (1 dimension), got shape {v.shape}")
    if v.size == 0:
        raise InputError(f"{name}: expected at least one seed, got none")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: contains NaN or infinity (an undefined metric cannot be "
                         f"compared)")
    return v


# --------------------------------------------------------------------------- over seeds

def paired_differences(a, b):
    """Per-seed differences d_s = b_s − a_s (model minus reference), as a float64 array.

    a: the reference's value for each seed, b: the model's, in the same seed order.
    For the EER, negative = the model has the lower EER = the model is better.
    """
    a = _per_seed_values("a", a)
    b = _per_seed_values("b", b)
    if a.size != b.size:
        raise InputError(f"a, b: expected one value per seed for both models, got {a.size} "
                         f"and {b.size} (pair the same seeds)")
    return b - a


def t_half_width(values, confidence=0.95):
    """Half-width of the t-interval of the mean of n ≥ 2 values:
    t_{(1+confidence)/2, n−1} · sd / √n (sd with ddof = 1)."""
    confidence = _check_confidence(confidence)
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise InputError(f"an interval needs at least 2 seeds, got {v.size}")
    return float(sps.t.ppf((1.0 + confidence) / 2.0, v.size - 1)) * float(
        np.std(v, ddof=1)) / math.sqrt(v.size)


def paired_comparison(a_per_seed, b_per_seed, confidence=0.95):
    """Paired comparison of model b against reference a over n ≥ 2 seeds (module docstring).

    ::

        d_s = b_s − a_s,   d̄ = mean d_s,   sd = std d_s (ddof = 1)
        interval: d̄ ± t_{(1+confidence)/2, n−1} · sd / √n
        relative = (mean(b) − mean(a)) / mean(a)

    The p-value is that of ``scipy.stats.ttest_rel`` (two-sided). sd = 0 (all d_s equal):
    interval [d̄, d̄], p = 1.0 if d̄ = 0 else 0.0.

    Parameters
    ----------
    a_per_seed : array_like
        The reference's value for each seed.
    b_per_seed : array_like
        The model's value for each seed, in the same seed order.
    confidence : float
        Of the interval, 0.95 by default.

    Returns
    -------
    dict
        ``{n, per_seed, mean, std, ci_low, ci_high, p_value, relative, confidence}`` of Python
        floats (per_seed a list). Fewer than 2 seeds raise InputError: with one seed report the
        difference alone (``paired_differences``), without an interval.
    """
    confidence = _check_confidence(confidence)
    d = paired_differences(a_per_seed, b_per_seed)
    n = d.size
    if n < 2:
        raise InputError(f"an interval needs at least 2 seeds, got {n}: report the per-seed "
                         f"difference alone (run with more seeds for an interval)")
    a = np.asarray(a_per_seed, dtype=np.float64)
    b = np.asarray(b_per_seed, dtype=np.float64)
    mean = float(np.mean(d))
    if np.all(d == d[0]):
        mean, std, lo, hi = float(d[0]), 0.0, float(d[0]), float(d[0])
        p = 1.0 if d[0] == 0.0 else 0.0
    else:
        std = float(np.std(d, ddof=1))
        half = t_half_width(d, confidence)
        lo, hi = mean - half, mean + half
        p = float(sps.ttest_rel(b, a).pvalue)
    ref = float(np.mean(a))
    relative = (float(np.mean(b)) - ref) / ref if ref != 0.0 else None
    return {"n": int(n), "per_seed": [float(v) for v in d], "mean": mean, "std": std,
            "ci_low": lo, "ci_high": hi, "p_value": p, "relative": relative,
            "confidence": confidence}


# --------------------------------------------------------------------------- over test clips

@kernel
def _resampled_eers(order, last, y, counts, out):
    """EER of every class on every resample, the clips weighted by their multiplicity.

    order (C, N): clip indices by decreasing score of class c; last (C, N): True where sorted
    position i ends a run of equal scores; y (N, C): 0/1 labels; counts (B, N): how often
    resample b holds each clip; out (B, C): the EER, NaN without positives or negatives.

    A resample is the multiset of its clips, so its ROC counts are the weighted cumulative
    counts along the full sorted order. Runs of clips absent from the resample repeat the
    previous ROC point, which changes neither the first point with d ≥ 0 nor its predecessor's
    coordinates; the arithmetic is that of qdaed.metrics._eer (integer counts, then
    FPR = FP / FP_total, TPR = TP / TP_total, d = FPR + TPR − 1, λ, EER), so the values agree
    exactly.
    """
    n_boot, n = counts.shape
    n_cls = order.shape[0]
    for b in range(n_boot):
        for c in range(n_cls):
            pos = 0.0
            tot = 0.0
            for i in range(n):
                pos += counts[b, i] * y[i, c]
                tot += counts[b, i]
            neg = tot - pos
            if pos == 0.0 or neg == 0.0:
                out[b, c] = np.nan
                continue
            tp = 0.0
            fp = 0.0
            fpr_prev = 0.0
            d_prev = -1.0
            for i in range(n):
                k = order[c, i]
                w = counts[b, k]
                tp += w * y[k, c]
                fp += w * (1.0 - y[k, c])
                if last[c, i]:
                    fpr = fp / neg
                    d = fpr + tp / pos - 1.0
                    if d >= 0.0:
                        lam = -d_prev / (d - d_prev)
                        out[b, c] = fpr_prev + lam * (fpr - fpr_prev)
                        break
                    fpr_prev = fpr
                    d_prev = d


def _sort_runs(s):
    """Per class: indices by decreasing score (stable, as qdaed.metrics) and run-end flags."""
    order = np.argsort(-s, axis=0, kind="stable").T.copy()        # (C, N)
    s_sorted = np.take_along_axis(s.T, order, axis=1)
    last = np.ones(order.shape, dtype=np.bool_)
    last[:, :-1] = np.diff(s_sorted, axis=1) != 0.0
    return order, last


def _counts_from_indices(indices, n):
    """counts[b, i] = how often clip i occurs in row b of indices (B, N)."""
    n_boot = indices.shape[0]
    flat = (indices + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.int64)


def _eers_from_counts(s, y, counts):
    order, last = _sort_runs(s)
    out = np.full((counts.shape[0], s.shape[1]), np.nan)
    _resampled_eers(order, last, y, counts, out)
    return out


def bootstrap_class_eers(scores, labels, indices):
    """EER of each class on each resample: out[r, c] = EER of (scores[idx_r, c], labels[idx_r, c])
    with idx_r = indices[r], as :func:`qdaed.metrics.equal_error_rate` computes it (equal to it
    exactly); NaN where the resample has no positives or no negatives of class c.

    scores (N, C) float32/float64, labels (N, C) of 0/1, indices (B, N) integers in [0, N).
    Each resample is evaluated in O(N) per class on one sort of the full scores.
    """
    s = check_array("scores", scores, ndim=2).astype(np.float64)
    y = _check_labels("labels", labels, s.shape)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise InputError(f"indices: expected an integer numpy array (resamples, {s.shape[0]})")
    if indices.ndim != 2 or indices.shape[1] != s.shape[0] or indices.shape[0] == 0:
        raise InputError(f"indices: expected shape (resamples, {s.shape[0]}), "
                         f"got {indices.shape}")
    if indices.min() < 0 or indices.max() >= s.shape[0]:
        raise InputError(f"indices: expected clip indices in [0, {s.shape[0]}), "
                         f"got values in [{indices.min()}, {indices.max()}]")
    return _eers_from_counts(s, y, _counts_from_indices(indices.astype(np.int64), s.shape[0]))


def _check_score_lists(scores_a, scores_b, shape):
    for name, lst in (("scores_a", scores_a), ("scores_b", scores_b)):
        if not isinstance(lst, (list, tuple)) or len(lst) == 0:
            raise InputError(f"{name}: expected a non-empty list of (N, C) score arrays, one "
                             f"per seed, got {type(lst).__name__}")
    if len(scores_a) != len(scores_b):
        raise InputError(f"scores_a, scores_b: expected the same seeds for both models, got "
                         f"{len(scores_a)} and {len(scores_b)} score arrays")
    out = []
    for name, lst in (("scores_a", scores_a), ("scores_b", scores_b)):
        out.append([check_array(f"{name}[{i}]", x, shape=shape).astype(np.float64)
                    for i, x in enumerate(lst)])
    return out


def bootstrap_mean_eer_difference(scores_a, scores_b, labels, n_boot=1000, seed=0,
                                  confidence=0.95):
    """Clip-level bootstrap interval of the mean-EER difference b − a (module docstring).

    scores_a, scores_b: lists, one (N, C) test-score array per seed, paired by position;
    labels: (N, C) of 0/1, the same test clips for every seed and both models.
    Resample r draws indices ``default_rng(seed).integers(0, N, size=(n_boot, N))[r]``; on it
    Δ_r = mean over seeds of (mean-over-classes EER of b − that of a), over the classes
    defined (positives and negatives) in the full test set. Resamples where such a class lacks
    positives or negatives are skipped.

    Returns ``{"ci_low", "ci_high", "confidence", "n_boot", "seed", "undefined_fraction"}``:
    the percentile interval of the defined Δ_r (None, None when every resample is undefined)
    and the fraction of resamples skipped.
    """
    confidence, n_boot, seed, y, sa, sb, defined = _check_bootstrap_input(
        scores_a, scores_b, labels, n_boot, seed, confidence)
    n = y.shape[0]
    indices = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo, hi, undefined = _difference_interval(sa, sb, y, defined,
                                             _counts_from_indices(indices, n), confidence)
    return {"ci_low": lo, "ci_high": hi, "confidence": confidence, "n_boot": n_boot,
            "seed": seed, "undefined_fraction": undefined}


def _check_bootstrap_input(scores_a, scores_b, labels, n_boot, seed, confidence):
    """(confidence, n_boot, seed, labels, scores_a, scores_b, defined classes), checked."""
    confidence = _check_confidence(confidence)
    n_boot = check_int("n_boot", n_boot, 1)
    seed = check_int("seed", seed, 0)
    if not isinstance(labels, np.ndarray) or labels.ndim != 2:
        raise InputError(f"labels: expected a (N, C) numpy array, got "
                         f"{getattr(labels, 'shape', type(labels).__name__)}")
    y = _check_labels("labels", labels, labels.shape)
    if y.size == 0:
        raise InputError(f"labels: expected a non-empty array, got shape {y.shape}")
    sa, sb = _check_score_lists(scores_a, scores_b, y.shape)
    pos = y.sum(axis=0)
    defined = (pos > 0) & (pos < y.shape[0])
    if not defined.any():
        raise InputError("labels: no class has both positives and negatives in the test set, "
                         "so the mean EER is undefined")
    return confidence, n_boot, seed, y, sa, sb, defined


def _difference_interval(sa, sb, y, defined, counts, confidence):
    """(low, high, undefined fraction): the percentile interval of Δ_r over the resamples
    ``counts`` (B, N) (module docstring); low, high None when every resample is undefined."""
    n_boot = counts.shape[0]
    y_def = np.ascontiguousarray(y[:, defined])
    delta = np.zeros(n_boot)
    undefined = np.zeros(n_boot, dtype=bool)
    for a, b in zip(sa, sb):
        ea = _eers_from_counts(np.ascontiguousarray(a[:, defined]), y_def, counts)
        eb = _eers_from_counts(np.ascontiguousarray(b[:, defined]), y_def, counts)
        undefined |= np.isnan(ea).any(axis=1)
        delta += eb.mean(axis=1) - ea.mean(axis=1)
    delta /= len(sa)
    ok = delta[~undefined]
    if ok.size:
        alpha = 1.0 - confidence
        lo, hi = (float(v) for v in np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    else:
        lo = hi = None
    return lo, hi, float(undefined.mean())


def _group_numbers(groups, n):
    """(number of each clip's group in sorted order of the keys, G); InputError when groups is
    not one key per clip."""
    if isinstance(groups, np.ndarray) and groups.ndim != 1:
        raise InputError(f"groups: expected one key per clip (1 dimension), got shape "
                         f"{groups.shape}")
    groups = list(groups)
    if len(groups) != n:
        raise InputError(f"groups: expected one key per test clip ({n}), got {len(groups)}")
    if any(g is None for g in groups):
        raise InputError("groups: a clip has no group (None); give every clip its source "
                         "recording (a clip of its own: a key of its own)")
    try:
        keys = sorted(set(groups))
    except TypeError:
        raise InputError("groups: expected keys of one sortable type (e.g. strings)") from None
    number = {k: i for i, k in enumerate(keys)}
    return np.array([number[g] for g in groups], dtype=np.int64), len(keys)


def _group_counts(number, g, n_boot, seed):
    draws = np.random.default_rng(seed).integers(0, g, size=(n_boot, g))
    return _counts_from_indices(draws, g)[:, number]


def group_bootstrap_counts(groups, n_boot=1000, seed=0):
    """counts (n_boot, N): how often resample r holds clip i when the groups are resampled
    (module docstring): ``default_rng(seed).integers(0, G, size=(n_boot, G))`` draws the
    groups (numbered in sorted key order), and every clip counts as often as its group."""
    n_boot = check_int("n_boot", n_boot, 1)
    seed = check_int("seed", seed, 0)
    number, g = _group_numbers(groups, len(groups))
    return _group_counts(number, g, n_boot, seed)


def group_bootstrap_mean_eer_difference(scores_a, scores_b, labels, groups, n_boot=1000,
                                        seed=0, confidence=0.95):
    """Bootstrap interval of the mean-EER difference b − a that resamples source recordings,
    not clips (module docstring).

    scores_a, scores_b, labels: as :func:`bootstrap_mean_eer_difference`; groups: one key per
    test clip (its source recording, e.g. a manifest's ``group``), sortable. Resample r holds
    the clips of the groups ``default_rng(seed).integers(0, G, size=(n_boot, G))[r]`` (see
    :func:`group_bootstrap_counts`); Δ_r and the interval as the clip bootstrap's.

    Returns ``{"ci_low", "ci_high", "confidence", "n_boot", "seed", "undefined_fraction",
    "groups"}``, ``groups`` being G. With every clip its own group it is a clip bootstrap (with
    its own draws, so not the same numbers as :func:`bootstrap_mean_eer_difference`).
    """
    confidence, n_boot, seed, y, sa, sb, defined = _check_bootstrap_input(
        scores_a, scores_b, labels, n_boot, seed, confidence)
    number, g = _group_numbers(groups, y.shape[0])
    lo, hi, undefined = _difference_interval(sa, sb, y, defined,
                                             _group_counts(number, g, n_boot, seed), confidence)
    return {"ci_low": lo, "ci_high": hi, "confidence": confidence, "n_boot": n_boot,
            "seed": seed, "undefined_fraction": undefined, "groups": g}


__all__ = ["paired_differences", "paired_comparison", "bootstrap_class_eers",
           "bootstrap_mean_eer_difference", "group_bootstrap_counts",
           "group_bootstrap_mean_eer_difference"]
