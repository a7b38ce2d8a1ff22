"""qdaed.metrics: hand-computed cases, scikit-learn conformance, input checks."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.metrics import (average_precision, compute_metrics, equal_error_rate, roc_auc,
                           roc_curve, threshold_at_eer)
from tests.strategies import rng_from, seeds
from tests.helpers.references import sklearn_eer

# --------------------------------------------------------------------------- hand-computed


def test_ties_count_half_and_eer_interpolates_between_points():
    # positives {0.5, 0.8}, negatives {0.5, 0.2}: pairs 0.5~0.5 (tie, ½), 0.5>0.2, 0.8>0.5,
    # 0.8>0.2 → AUC = 3.5 / 4.
    # ROC: (0,0) → t=0.8: (FPR 0, TPR ½) → t=0.5: (½, 1) → t=0.2: (1, 1).
    # d = FPR+TPR−1: −½ at t=0.8, +½ at t=0.5 → λ = ½, EER = 0 + ½·(½ − 0) = ¼.
    # AP: t=0.8 → R ½, P 1; t=0.5 → R 1, P 2/3  → ½·1 + ½·2/3 = 5/6.
    # threshold: 0.8 + ½·(0.5 − 0.8) = 0.65.
    s = np.array([0.5, 0.5, 0.2, 0.8])
    y = np.array([1, 0, 0, 1])
    assert roc_auc(s, y) == pytest.approx(0.875, abs=1e-15)
    assert equal_error_rate(s, y) == pytest.approx(0.25, abs=1e-15)
    assert average_precision(s, y) == pytest.approx(5 / 6, abs=1e-15)
    assert threshold_at_eer(s, y) == pytest.approx(0.65, abs=1e-15)


def test_single_positive():
    # positive 0.6 beats 0.5, 0.3, 0.1 and loses to 0.9 → AUC ¾.
    # ROC: (0,0) → t=0.9: (¼, 0), d=−¾ → t=0.6: (¼, 1), d=+¼ → λ = ¾, EER = ¼ (vertical
    # segment: FPR stays ¼ while FNR falls from 1 to ¼).
    # AP: the only recall step is at t=0.6, precision ½.
    # threshold: 0.9 + ¾·(0.6 − 0.9) = 0.675.
    s = np.array([0.9, 0.3, 0.6, 0.1, 0.5])
    y = np.array([0, 0, 1, 0, 0])
    assert roc_auc(s, y) == pytest.approx(0.75, abs=1e-15)
    assert equal_error_rate(s, y) == pytest.approx(0.25, abs=1e-15)
    assert average_precision(s, y) == pytest.approx(0.5, abs=1e-15)
    assert threshold_at_eer(s, y) == pytest.approx(0.675, abs=1e-15)


def test_all_scores_equal_give_chance_level():
    # One threshold: ROC (0,0) → (1,1), crossing at its middle. AP = prevalence 2/5.
    s = np.full(5, 0.3)
    y = np.array([1, 0, 1, 0, 0])
    assert roc_auc(s, y) == 0.5
    assert equal_error_rate(s, y) == 0.5
    assert average_precision(s, y) == pytest.approx(0.4, abs=1e-15)
    assert threshold_at_eer(s, y) == 0.3


def test_perfect_separation():
    # ROC reaches (0, 1) at t=0.6 (d = 0 exactly), so EER 0 and the threshold is 0.6.
    s = np.array([0.9, 0.1, 0.6, 0.2, 0.3])
    y = np.array([1, 0, 1, 0, 0])
    assert roc_auc(s, y) == 1.0
    assert equal_error_rate(s, y) == 0.0
    assert average_precision(s, y) == 1.0
    assert threshold_at_eer(s, y) == 0.6


def test_reversed_separation():
    # every negative above every positive: ROC runs along FPR to (1, 0) first → EER 1.
    # AP: t=0.2 → R ½, P ¼; t=0.1 → R 1, P 2/5 → ½·¼ + ½·⅖ = 0.325.
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7])
    y = np.array([1, 0, 1, 0, 0])
    assert roc_auc(s, y) == 0.0
    assert equal_error_rate(s, y) == 1.0
    assert average_precision(s, y) == pytest.approx(0.325, abs=1e-15)


def test_all_positive_labels_give_ap_one_and_refuse_auc_eer():
    s = np.array([0.2, 0.7, 0.4])
    y = np.ones(3)
    assert average_precision(s, y) == 1.0
    with pytest.raises(InputError, match="without negatives"):
        roc_auc(s, y)
    with pytest.raises(InputError, match="without negatives"):
        equal_error_rate(s, y)
    with pytest.raises(InputError, match="without negatives"):
        threshold_at_eer(s, y)


def test_no_positive_labels_refused_by_single_class_functions():
    s = np.array([0.2, 0.7, 0.4])
    y = np.zeros(3)
    for fn in (roc_auc, equal_error_rate, average_precision, threshold_at_eer):
        with pytest.raises(InputError, match="without positives"):
            fn(s, y)


# --------------------------------------------------------------------------- properties


def _draw(seed, n, ties):
    """Scores with many ties (ties=True) or continuous, labels with both classes."""
    rng = rng_from(seed)
    s = rng.integers(0, 4, n) / 4.0 if ties else rng.standard_normal(n)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    return s, y


@pytest.mark.conformance
@given(seed=seeds, n=st.integers(2, 60), ties=st.booleans())
def test_matches_scikit_learn(seed, n, ties):
    sk = pytest.importorskip("sklearn.metrics")
    s, y = _draw(seed, n, ties)
    assert roc_auc(s, y) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)
    assert equal_error_rate(s, y) == pytest.approx(sklearn_eer(s, y), abs=1e-9)


@given(seed=seeds, n=st.integers(2, 60), ties=st.booleans())
def test_negating_scores_mirrors_auc_and_eer(seed, n, ties):
    # The ROC of −s is the ROC of s reflected through (½, ½), which maps the line
    # TPR = 1 − FPR onto itself.
    s, y = _draw(seed, n, ties)
    assert roc_auc(-s, y) == pytest.approx(1.0 - roc_auc(s, y), abs=1e-12)
    assert equal_error_rate(-s, y) == pytest.approx(1.0 - equal_error_rate(s, y), abs=1e-12)


@given(seed=seeds, n=st.integers(2, 60), ties=st.booleans())
def test_decisions_at_eer_threshold_bracket_the_eer(seed, n, ties):
    # The threshold's decisions land on an end of the EER segment, where FPR and FNR lie on
    # either side of the EER.
    s, y = _draw(seed, n, ties)
    eer, thr = equal_error_rate(s, y), threshold_at_eer(s, y)
    pred = s >= thr
    fpr = np.mean(pred[y == 0])
    fnr = np.mean(~pred[y == 1])
    assert min(fpr, fnr) - 1e-12 <= eer <= max(fpr, fnr) + 1e-12


# --------------------------------------------------------------------------- every class


def test_compute_metrics_per_class_and_mean():
    rng = rng_from(3)
    s = rng.standard_normal((30, 3)).astype(np.float32)
    y = rng.integers(0, 2, (30, 3))
    out = compute_metrics(s, y, ["dog", "baby_cry", "gunshot"])
    assert set(out) == {"auc", "eer", "ap"}
    singles = {"auc": roc_auc, "eer": equal_error_rate, "ap": average_precision}
    for m, fn in singles.items():
        assert list(out[m]) == ["dog", "baby_cry", "gunshot", "mean"]
        vals = [fn(s[:, k], y[:, k]) for k in range(3)]
        for k, name in enumerate(["dog", "baby_cry", "gunshot"]):
            assert out[m][name] == vals[k]
        assert out[m]["mean"] == pytest.approx(sum(vals) / 3, abs=1e-15)
        assert all(type(v) is float for v in out[m].values())


def test_compute_metrics_undefined_class_is_nan_and_left_out_of_mean():
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4], [0.6, 0.8, 0.7], [0.1, 0.2, 0.6]])
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])   # class b: no positives,
    out = compute_metrics(s, y, ["a", "b", "c"])                 # class c: no negatives
    assert math.isnan(out["auc"]["b"]) and math.isnan(out["auc"]["c"])
    assert math.isnan(out["eer"]["b"]) and math.isnan(out["eer"]["c"])
    assert math.isnan(out["ap"]["b"])
    assert out["ap"]["c"] == 1.0
    assert out["auc"]["a"] == 1.0 and out["eer"]["a"] == 0.0 and out["ap"]["a"] == 1.0
    assert out["auc"]["mean"] == 1.0 and out["eer"]["mean"] == 0.0
    assert out["ap"]["mean"] == 1.0                              # mean of a and c


def test_compute_metrics_no_defined_class_gives_nan_mean():
    out = compute_metrics(np.array([[0.1], [0.4]]), np.zeros((2, 1)))
    assert list(out["auc"]) == ["0", "mean"]
    assert all(math.isnan(out[m]["mean"]) for m in out)


def test_float32_and_float64_scores_agree():
    rng = rng_from(5)
    s = rng.standard_normal((25, 2)).astype(np.float32)
    y = rng.integers(0, 2, (25, 2)).astype(np.float32)
    assert compute_metrics(s, y) == compute_metrics(s.astype(np.float64), y.astype(bool))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("scores, labels, match", [
    (np.array([0.1, np.nan, 0.3]), np.array([0, 1, 1]), "scores: contains NaN"),
    (np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), "labels: expected only 0 and 1, found 2"),
    (np.array([0.1, 0.2, 0.3]), np.array([0, 1, 0.5]), "found 0.5"),
    (np.array([0.1, 0.2, 0.3]), np.array([0, 1]), r"labels: expected shape \(3,\)"),
    (np.array([0.1, 0.2, 0.3]), np.array(["a", "b", "c"]), "labels: expected a boolean"),
    (np.array([1, 2, 3]), np.array([0, 1, 1]), "scores: expected dtype float32 or float64"),
    (np.zeros((3, 1)), np.array([0, 1, 1]), "scores: expected 1 dimensions"),
    ([0.1, 0.2], np.array([0, 1]), "scores: expected a numpy array"),
])
def test_bad_single_class_input_is_refused(scores, labels, match):
    for fn in (roc_auc, equal_error_rate, average_precision, threshold_at_eer):
        with pytest.raises(InputError, match=match):
            fn(scores, labels)


@pytest.mark.parametrize("scores, labels, names, match", [
    (np.zeros(4), np.zeros(4), None, "scores: expected 2 dimensions"),
    (np.zeros((4, 2)), np.zeros((4, 3)), None, r"labels: expected shape \(4, 2\)"),
    (np.zeros((4, 2)), np.zeros((4, 2)), ["a"], "class_names: expected 2 names"),
    (np.zeros((4, 2)), np.zeros((4, 2)), ["a", "a"], "distinct names"),
    (np.zeros((4, 2)), np.zeros((4, 2)), ["a", "mean"], "other than 'mean'"),
    (np.zeros((4, 2)), np.zeros((4, 2)), ["a", 1], "expected strings"),
    (np.full((4, 2), np.inf), np.zeros((4, 2)), None, "scores: contains NaN or infinity"),
])
def test_bad_compute_metrics_input_is_refused(scores, labels, names, match):
    with pytest.raises(InputError, match=match):
        compute_metrics(scores, labels, names)


def test_roc_curve_points_by_hand():
    # scores 0.9(+) 0.8(-) 0.8(+) 0.1(-): thresholds 0.9, 0.8, 0.1
    t, fpr, tpr = roc_curve(np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0]))
    np.testing.assert_array_equal(t, [0.9, 0.8, 0.1])
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0, 1.0])


def test_decision_metrics_by_hand():
    from qdaed.metrics import decision_metrics

    s = np.array([[0.9, 0.1], [0.6, 0.2], [0.4, 0.3], [0.2, 0.05]])
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    m = decision_metrics(s, y, [0.5, 0.5], ["a", "b"])
    # a: decided {0, 1}, positives {0, 2}: TP 1, FP 1, FN 1
    assert m["precision"]["a"] == 0.5 and m["recall"]["a"] == 0.5 and m["f1"]["a"] == 0.5
    # b: nothing decided, no positives: every ratio undefined, left out of the mean
    assert all(np.isnan(m[k]["b"]) for k in ("precision", "recall", "f1"))
    assert m["f1"]["mean"] == 0.5
