"""qdaed.stats: paired t-intervals against scipy and by hand, the clip bootstrap, input checks."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from qdaed.errors import InputError
from qdaed.metrics import compute_metrics, equal_error_rate
from qdaed.stats import (bootstrap_class_eers, bootstrap_mean_eer_difference, paired_comparison,
                         paired_differences)
from tests.strategies import rng_from, seeds

# --------------------------------------------------------------------------- over seeds


def test_differences_one_to_four_by_hand():
    # d = b − a = [1, 2, 3, 4]: mean 2.5, sd² = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3,
    # half width = t_{0.975, 3} · √(5/3) / √4;  t = 2.5 / (√(5/3) / 2) = √15 ≈ 3.873.
    a = [10.0, 20.0, 30.0, 40.0]
    b = [11.0, 22.0, 33.0, 44.0]
    out = paired_comparison(a, b)
    sd = math.sqrt(5 / 3)
    half = sps.t.ppf(0.975, 3) * sd / 2
    assert out["n"] == 4
    assert out["per_seed"] == [1.0, 2.0, 3.0, 4.0]
    assert out["mean"] == 2.5
    assert out["std"] == pytest.approx(sd, rel=1e-15)
    assert out["ci_low"] == pytest.approx(2.5 - half, rel=1e-14)
    assert out["ci_high"] == pytest.approx(2.5 + half, rel=1e-14)
    assert half == pytest.approx(3.182446305284263 * sd / 2, rel=1e-12)   # t table, 3 df
    assert out["p_value"] == pytest.approx(sps.ttest_rel(b, a).pvalue, rel=1e-12)
    assert out["p_value"] == pytest.approx(2 * sps.t.sf(math.sqrt(15), 3), rel=1e-12)
    assert out["relative"] == pytest.approx((27.5 - 25.0) / 25.0, rel=1e-15)
    assert out["confidence"] == 0.95
    assert all(type(out[k]) is float for k in ("mean", "std", "ci_low", "ci_high", "p_value"))


def test_other_confidence_uses_its_quantile():
    a, b = [0.0, 0.0, 0.0], [1.0, 2.0, 6.0]      # mean 3, sd √7
    out = paired_comparison(a, b, confidence=0.9)
    half = sps.t.ppf(0.95, 2) * math.sqrt(7) / math.sqrt(3)
    assert out["ci_low"] == pytest.approx(3 - half, rel=1e-14)
    assert out["ci_high"] == pytest.approx(3 + half, rel=1e-14)


def test_sign_is_model_minus_reference():
    student = [0.30, 0.40]          # reference a
    distilled = [0.20, 0.35]        # model b: lower EER on both seeds
    out = paired_comparison(student, distilled)
    assert out["per_seed"] == pytest.approx([-0.10, -0.05], abs=1e-15)
    assert out["mean"] < 0 and out["ci_low"] < out["mean"] < out["ci_high"]
    assert out["relative"] == pytest.approx((0.275 - 0.35) / 0.35, rel=1e-14)
    np.testing.assert_allclose(paired_differences(student, distilled), [-0.10, -0.05],
                               atol=1e-15)


@pytest.mark.parametrize("a", [[0.5], np.array([0.5])])
def test_one_seed_has_no_interval(a):
    with pytest.raises(InputError, match="an interval needs at least 2 seeds, got 1"):
        paired_comparison(a, [0.75])
    assert paired_differences(a, [0.75]).tolist() == [0.25]


def test_constant_nonzero_difference():
    # exactly representable: d = 0.125 on every seed, sd = 0 (scipy's t-test gives NaN here).
    a = [0.5, 0.25, 0.75]
    out = paired_comparison(a, [0.625, 0.375, 0.875])
    assert out["std"] == 0.0 and out["mean"] == 0.125
    assert out["ci_low"] == out["ci_high"] == 0.125
    assert out["p_value"] == 0.0


def test_identical_models():
    out = paired_comparison([0.3, 0.4, 0.2], [0.3, 0.4, 0.2])
    assert out["per_seed"] == [0.0, 0.0, 0.0]
    assert (out["mean"], out["std"], out["ci_low"], out["ci_high"]) == (0.0, 0.0, 0.0, 0.0)
    assert out["p_value"] == 1.0


def test_relative_is_none_when_the_reference_is_zero():
    assert paired_comparison([0.0, 0.0], [0.1, 0.3])["relative"] is None


@pytest.mark.parametrize("a, b, kw, match", [
    ([0.1, 0.2, 0.3], [0.1, 0.2], {}, "got 3 and 2"),
    ([0.1, float("nan")], [0.1, 0.2], {}, "a: contains NaN"),
    ([0.1, 0.2], [0.1, float("inf")], {}, "b: contains NaN or infinity"),
    ([[0.1, 0.2]], [[0.1, 0.2]], {}, "1 dimension"),
    ([], [], {}, "at least one seed"),
    (["x", "y"], [0.1, 0.2], {}, "a: expected a sequence of numbers"),
    ([0.1, 0.2], [0.1, 0.3], {"confidence": 0.0}, r"confidence: expected a number in \(0, 1\)"),
    ([0.1, 0.2], [0.1, 0.3], {"confidence": 1.0}, "confidence"),
    ([0.1, 0.2], [0.1, 0.3], {"confidence": 95}, "confidence"),
    ([0.1, 0.2], [0.1, 0.3], {"confidence": "high"}, "confidence"),
])
def test_bad_paired_input_is_refused(a, b, kw, match):
    with pytest.raises(InputError, match=match):
        paired_comparison(a, b, **kw)


# --------------------------------------------------------------------------- bootstrap


def _data(seed, n=40, c=3, ties=False):
    rng = rng_from(seed)
    y = rng.integers(0, 2, (n, c))
    y[0], y[1] = 0, 1
    s = rng.integers(0, 4, (n, c)) / 4.0 if ties else rng.standard_normal((n, c))
    return s, y


@given(seed=seeds, n=st.integers(2, 30), ties=st.booleans())
def test_resampled_eers_equal_the_metrics_eer(seed, n, ties):
    s, y = _data(seed, n, 2, ties)
    idx = rng_from(seed + 1).integers(0, n, (25, n))
    out = bootstrap_class_eers(s, y, idx)
    assert out.shape == (25, 2)
    for r in range(25):
        for k in range(2):
            yy = y[idx[r], k]
            if 0 < yy.sum() < n:
                assert out[r, k] == equal_error_rate(s[idx[r], k], yy), (r, k)
            else:
                assert np.isnan(out[r, k])


def test_resampled_eers_of_the_identity_resample_and_hand_case():
    # the metrics module's hand case: EER ¼ (tests/test_metrics.py); as one resample of
    # itself, and of a clip set where clip 3 (0.8, positive) is drawn twice.
    s = np.array([[0.5], [0.5], [0.2], [0.8]])
    y = np.array([[1], [0], [0], [1]])
    out = bootstrap_class_eers(s, y, np.array([[0, 1, 2, 3], [3, 3, 1, 2]]))
    assert out[0, 0] == 0.25
    assert out[1, 0] == 0.0          # positives {0.8, 0.8} above negatives {0.5, 0.2}


def test_identical_models_give_a_zero_interval():
    s, y = _data(1)
    scores = [s, s + 0.0, s * 2.0]        # a monotone map leaves every EER unchanged
    out = bootstrap_mean_eer_difference(scores, [x.copy() for x in scores], y, n_boot=200)
    assert (out["ci_low"], out["ci_high"]) == (0.0, 0.0)
    assert out["n_boot"] == 200 and out["seed"] == 0 and out["confidence"] == 0.95


def test_perfect_model_beats_random_scores():
    rng = rng_from(2)
    y = rng.integers(0, 2, (60, 3))
    random = [rng.random((60, 3)) for _ in range(2)]
    perfect = [y.astype(np.float64)] * 2                   # EER 0 on every resample
    out = bootstrap_mean_eer_difference(random, perfect, y, n_boot=300, seed=4)
    assert out["ci_low"] <= out["ci_high"] < 0.0
    assert out["ci_low"] > -1.0
    swapped = bootstrap_mean_eer_difference(perfect, random, y, n_boot=300, seed=4)
    assert swapped["ci_low"] == pytest.approx(-out["ci_high"], abs=1e-15)
    assert swapped["ci_high"] == pytest.approx(-out["ci_low"], abs=1e-15)


def test_bootstrap_is_deterministic_given_its_seed():
    s, y = _data(3)
    t, _ = _data(4)
    first = bootstrap_mean_eer_difference([s], [t], y, n_boot=200, seed=7)
    assert bootstrap_mean_eer_difference([s], [t], y, n_boot=200, seed=7) == first
    other = bootstrap_mean_eer_difference([s], [t], y, n_boot=200, seed=8)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])


def test_bootstrap_matches_a_plain_loop_over_resamples():
    # Independent computation: draw the documented indices, evaluate every resample with
    # compute_metrics, skip resamples where a class defined on the full set is undefined.
    # Class 3 has no positives at all: undefined everywhere, left out of every mean.
    # Class 2 has one positive, which a resample misses with probability (11/12)^12 ≈ 0.35.
    rng = rng_from(5)
    n = 12
    y = rng.integers(0, 2, (n, 4))
    y[:, 3] = 0
    y[0, :2], y[1, :2] = 0, 1
    y[:, 2] = 0
    y[5, 2] = 1
    sa = [rng.random((n, 4)) for _ in range(3)]
    sb = [rng.random((n, 4)) for _ in range(3)]
    n_boot, seed = 150, 11
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    deltas, skipped = [], 0
    for r in range(n_boot):
        yy = y[idx[r]]
        pos = yy[:, :3].sum(axis=0)
        if np.any((pos == 0) | (pos == n)):
            skipped += 1
            continue
        d = [compute_metrics(b[idx[r]], yy)["eer"]["mean"]
             - compute_metrics(a[idx[r]], yy)["eer"]["mean"] for a, b in zip(sa, sb)]
        deltas.append(np.mean(d))
    assert 0 < skipped < n_boot
    out = bootstrap_mean_eer_difference(sa, sb, y, n_boot=n_boot, seed=seed, confidence=0.8)
    assert out["undefined_fraction"] == skipped / n_boot
    lo, hi = np.percentile(deltas, [10, 90])
    assert out["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert out["ci_high"] == pytest.approx(hi, abs=1e-12)


def test_undefined_resamples_are_counted_and_all_undefined_gives_no_interval():
    # Two clips, one positive: a resample is defined iff it draws both clips.
    y = np.array([[0], [1]])
    s = np.array([[0.1], [0.9]])
    idx = np.random.default_rng(0).integers(0, 2, size=(50, 2))
    defined = int(np.sum(idx[:, 0] != idx[:, 1]))
    out = bootstrap_mean_eer_difference([s], [s], y, n_boot=50, seed=0)
    assert out["undefined_fraction"] == (50 - defined) / 50
    assert (out["ci_low"], out["ci_high"]) == (0.0, 0.0)
    # a seed whose 3 resamples each draw one clip twice: nothing left to take quantiles of
    seed = next(k for k in range(1000)
                if np.all(np.diff(np.random.default_rng(k).integers(0, 2, size=(3, 2))) == 0))
    out = bootstrap_mean_eer_difference([s], [s], y, n_boot=3, seed=seed)
    assert out["undefined_fraction"] == 1.0
    assert out["ci_low"] is None and out["ci_high"] is None


def test_bootstrap_of_a_large_run_is_fast():
    # the size of a demo run: 5 seeds × 200 clips × 3 classes, 1000 resamples; the pipeline
    # does about 12 of these. Generous bound (shared CI machines): well under a second each.
    import time

    rng = rng_from(6)
    y = rng.integers(0, 2, (200, 3))
    sa = [rng.random((200, 3)) for _ in range(5)]
    sb = [rng.random((200, 3)) for _ in range(5)]
    bootstrap_mean_eer_difference(sa, sb, y, n_boot=10)      # compile / load the kernel
    t0 = time.perf_counter()
    bootstrap_mean_eer_difference(sa, sb, y)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("make, match", [
    (lambda s, y: ([s, s], [s], y, {}), "expected the same seeds for both models, got 2 and 1"),
    (lambda s, y: ([], [], y, {}), "scores_a: expected a non-empty list"),
    (lambda s, y: (s, [s], y, {}), "scores_a: expected a non-empty list"),
    (lambda s, y: ([s[:-1]], [s], y, {}), r"scores_a\[0\]: expected shape \(40, 3\)"),
    (lambda s, y: ([s], [np.where(s > 1, np.nan, s)], y, {}), r"scores_b\[0\]: contains NaN"),
    (lambda s, y: ([s], [s], y[:, 0], {}), r"labels: expected a \(N, C\) numpy array"),
    (lambda s, y: ([s], [s], y * 2, {}), "labels: expected only 0 and 1"),
    (lambda s, y: ([s], [s], np.zeros_like(y), {}), "no class has both positives and negatives"),
    (lambda s, y: ([s], [s], y, {"confidence": 1.2}), r"confidence: expected a number in \(0, 1\)"),
    (lambda s, y: ([s], [s], y, {"n_boot": 0}), "n_boot: expected an integer in"),
    (lambda s, y: ([s], [s], y, {"seed": -1}), "seed: expected an integer in"),
    (lambda s, y: ([s.astype(int)], [s], y, {}), "scores_a\\[0\\]: expected dtype float32"),
])
def test_bad_bootstrap_input_is_refused(make, match):
    s, y = _data(0)
    a, b, labels, kw = make(s, y)
    with pytest.raises(InputError, match=match):
        bootstrap_mean_eer_difference(a, b, labels, **kw)


@pytest.mark.parametrize("idx, match", [
    (np.zeros((2, 3), dtype=np.int64), r"indices: expected shape \(resamples, 4\)"),
    (np.full((2, 4), 4), r"indices: expected clip indices in \[0, 4\)"),
    (np.zeros((2, 4)), "indices: expected an integer numpy array"),
])
def test_bad_indices_are_refused(idx, match):
    s = np.array([[0.5], [0.5], [0.2], [0.8]])
    y = np.array([[1], [0], [0], [1]])
    with pytest.raises(InputError, match=match):
        bootstrap_class_eers(s, y, idx)


# --------------------------------------------------------------------------- over groups
# Two recordings of two clips each, one class: A = (positive, negative), B = (positive,
# negative). Model a ranks A right (0.9 > 0.1) and B wrong (0.2 < 0.8); model b ranks both
# right. Per resample of the two groups (by hand, EER of qdaed.metrics):
#   (A, A): a 0, b 0 → Δ = 0;   (B, B): a 1, b 0 → Δ = −1;
#   (A, B) or (B, A): a's ranking 0.9+ 0.8− 0.2+ 0.1− → ROC (0, .5), (.5, .5) → EER 0.5 → Δ = −0.5.
GROUP_LABELS = np.array([[1], [0], [1], [0]])
GROUP_A = [np.array([[0.9], [0.1], [0.2], [0.8]])]
GROUP_B = [np.array([[0.9], [0.1], [0.8], [0.2]])]
HAND_DELTA = {(0, 0): 0.0, (0, 1): -0.5, (1, 0): -0.5, (1, 1): -1.0}


def test_group_bootstrap_matches_the_hand_enumeration_on_its_own_draws():
    from qdaed.stats import group_bootstrap_mean_eer_difference

    n_boot, seed = 200, 7
    draws = np.random.default_rng(seed).integers(0, 2, size=(n_boot, 2))   # the documented draws
    deltas = np.array([HAND_DELTA[tuple(d)] for d in draws])
    want = np.percentile(deltas, [2.5, 97.5])
    got = group_bootstrap_mean_eer_difference(GROUP_A, GROUP_B, GROUP_LABELS,
                                              ["A", "A", "B", "B"], n_boot=n_boot, seed=seed)
    assert (got["ci_low"], got["ci_high"]) == (float(want[0]), float(want[1]))
    assert got["groups"] == 2 and got["undefined_fraction"] == 0.0
    # the exact distribution has atoms 1/4, 1/2, 1/4 at −1, −0.5, 0: its 2.5% and 97.5%
    # quantiles are −1 and 0, which 200 draws reach (P(no (B, B) draw) = 0.75^200)
    assert (got["ci_low"], got["ci_high"]) == (-1.0, 0.0)


def test_group_keys_are_numbered_in_sorted_order_not_first_seen():
    from qdaed.stats import group_bootstrap_mean_eer_difference

    # the same clips with the rows reordered (B's clips first): the same groups are drawn
    a = [GROUP_A[0][[2, 3, 0, 1]]]
    b = [GROUP_B[0][[2, 3, 0, 1]]]
    got = group_bootstrap_mean_eer_difference(a, b, GROUP_LABELS[[2, 3, 0, 1]],
                                              ["B", "B", "A", "A"], n_boot=50, seed=3)
    ref = group_bootstrap_mean_eer_difference(GROUP_A, GROUP_B, GROUP_LABELS,
                                              ["A", "A", "B", "B"], n_boot=50, seed=3)
    assert (got["ci_low"], got["ci_high"]) == (ref["ci_low"], ref["ci_high"])


def test_group_resamples_keep_a_groups_clips_together():
    from qdaed.stats import group_bootstrap_counts

    groups = ["x", "y", "x", "z", "z", "z"]
    counts = group_bootstrap_counts(groups, n_boot=30, seed=1)
    assert counts.shape == (30, 6)
    assert (counts[:, 0] == counts[:, 2]).all() and (counts[:, 3] == counts[:, 4]).all() \
        and (counts[:, 4] == counts[:, 5]).all()
    # each resample draws 3 groups: the multiplicities of x, y, z sum to 3
    assert (counts[:, [0, 1, 3]].sum(axis=1) == 3).all()
    draws = np.random.default_rng(1).integers(0, 3, size=(30, 3))       # x=0, y=1, z=2
    assert (counts[:, 1] == (draws == 1).sum(axis=1)).all()


def test_group_resamples_without_a_class_are_skipped_and_counted():
    from qdaed.stats import group_bootstrap_mean_eer_difference

    # group A holds the only positive: resamples without A have no positive, and A, A, A no
    # negative → both undefined
    labels = np.array([[1], [0], [0], [0]])
    a = [np.array([[0.9], [0.1], [0.2], [0.3]])]
    got = group_bootstrap_mean_eer_difference(a, a, labels, ["A", "B", "B", "C"], n_boot=400,
                                              seed=0)
    draws = np.random.default_rng(0).integers(0, 3, size=(400, 3))
    undefined = ~(draws == 0).any(axis=1) | (draws == 0).all(axis=1)
    assert got["undefined_fraction"] == float(undefined.mean()) > 0
    assert (got["ci_low"], got["ci_high"]) == (0.0, 0.0)      # identical models


@pytest.mark.parametrize("groups, match", [
    (["A", "A", "B"], "one key per test clip"),
    (["A", None, "B", "B"], "no group"),
    (["A", 1, "B", "B"], "sortable"),
    (np.array([["A", "A"], ["B", "B"]]), "1 dimension"),
])
def test_bad_groups_are_refused(groups, match):
    from qdaed.stats import group_bootstrap_mean_eer_difference

    with pytest.raises(InputError, match=match):
        group_bootstrap_mean_eer_difference(GROUP_A, GROUP_B, GROUP_LABELS, groups, n_boot=5)
