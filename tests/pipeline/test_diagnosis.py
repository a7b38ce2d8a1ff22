"""`qdaed diagnose`: calibration figures on hand cases, and the report of a tiny run."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats as sps

from qdaed.cli import main
from qdaed.errors import InputError
from qdaed.pipeline.diagnosis import (calibration, diagnose, gradient_scales,
                                      validation_comparisons)


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def test_calibration_on_a_hand_case():
    q = np.array([[0.9, 0.2], [0.6, 0.05]])
    y = np.array([[1.0, 0.0], [0.0, 0.0]])
    c = calibration(logit(q), y)
    assert c["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.0025) / 4)
    assert c["mean_abs"] == pytest.approx((0.1 + 0.2 + 0.6 + 0.05) / 4)
    assert c["disagree"] == pytest.approx(0.25)          # only |0.6 - 0| > 0.5
    # bins: 0.05 -> 0, 0.2 -> 2, 0.6 -> 6, 0.9 -> 9; each bin holds one value
    assert c["ece"] == pytest.approx((0.05 + 0.2 + 0.6 + 0.1) / 4)


def test_a_perfect_teacher_has_zero_brier_and_mean_abs():
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    c = calibration(np.where(y > 0, 40.0, -40.0), y)
    assert c["brier"] < 1e-30 and c["mean_abs"] < 1e-15 and c["mean_eer"] == 0.0


def test_gradient_scales_weight_the_terms_by_one_minus_lambda_and_lambda_t2():
    rng = np.random.default_rng(0)
    z, zt = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y = (rng.random((4, 3)) < 0.5).astype(float)
    a = gradient_scales(z, zt, y, 2.0, 0.0)
    b = gradient_scales(z, zt, y, 2.0, 0.5)
    assert a["soft"] == 0.0 and b["hard"] == pytest.approx(0.5 * a["hard"])


def test_diagnose_a_tiny_run_writes_its_report(tiny_run):
    out, _ = tiny_run
    d = diagnose(out)
    assert set(d["teacher_calibration"]) >= {"train (observed labels)",
                                             "validation (observed labels)",
                                             "train (clean truth)"}
    assert len(d["early_stopping"]) == 2            # student and distilled, one seed
    assert json.loads((out / "diagnosis.json").read_text())["n_train"] == d["n_train"]
    md = (out / "diagnosis.md").read_text()
    assert "## Early stopping" in md and "## The teacher's margin" in md
    assert set(d["teacher_margin"]) == {"observed labels", "clean truth"}


def test_diagnose_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(InputError, match="not a finished"):
        diagnose(tmp_path)
    assert main(["diagnose", str(tmp_path)]) == 2


def test_the_report_says_when_no_positive_is_missing():
    from qdaed.pipeline.diagnosis import diagnosis_markdown

    d = {"run": "r", "n_train": 1, "n_val": 1, "recipe": "transfer", "teacher_calibration": {},
         "missing_positives": {"count": 0, "mean_q_teacher_on_its_training_clips": None,
                               "mean_q_soft_targets_used": None,
                               "mean_q_labelled_positives": 0.5, "mean_q_true_negatives": 0.1},
         "gradient_scales_at_init": [], "early_stopping": []}
    assert "No positive is missing" in diagnosis_markdown(d)


def test_teacher_margin_on_a_hand_case():
    from qdaed.pipeline.diagnosis import teacher_margin

    y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=float)
    teacher = np.array([[0.9, 0.9], [0.8, 0.1], [0.2, 0.8], [0.1, 0.2]])    # both classes exact
    # class 0: one student exact (EER 0), one inverted (EER 1) -> mean 0.5;
    # class 1: both students inverted -> 1.0
    s_exact0 = np.array([[0.9, 0.1], [0.8, 0.9], [0.2, 0.2], [0.1, 0.8]])
    s_inv = np.array([[0.1, 0.1], [0.2, 0.9], [0.8, 0.2], [0.9, 0.8]])
    m = teacher_margin(teacher, [s_exact0, s_inv], y, ["a", "b"])
    assert m["a"] == {"teacher": 0.0, "student": 0.5, "relative": 1.0}
    assert m["b"] == {"teacher": 0.0, "student": 1.0, "relative": 1.0}
    assert m["mean"]["student"] == pytest.approx(0.75)
    # the teacher worse than the students: a negative margin; students at EER 0: no ratio
    worse = teacher_margin(s_inv, [teacher], y, ["a", "b"])
    assert worse["mean"] == {"teacher": 1.0, "student": 0.0, "relative": None}


def test_teacher_margin_leaves_out_a_class_without_negatives():
    from qdaed.pipeline.diagnosis import teacher_margin

    y = np.array([[1, 1], [1, 0], [1, 1], [1, 0]], dtype=float)   # class a: no negatives
    t = np.array([[0.5, 0.9], [0.5, 0.1], [0.5, 0.8], [0.5, 0.2]])
    s = np.array([[0.5, 0.4], [0.5, 0.6], [0.5, 0.7], [0.5, 0.3]])  # class b: EER 0.5
    m = teacher_margin(t, [s], y, ["a", "b"])
    assert set(m) == {"b", "mean"} and m["mean"]["relative"] == pytest.approx(1.0)
    assert m["b"]["student"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="at least one student"):
        teacher_margin(t, [], y, ["a", "b"])


def test_validation_comparisons_pair_the_best_validation_eer_of_each_seed(tmp_path):
    hist = {0: {"student": [0.30, 0.20, 0.25], "distilled": [0.18, 0.16]},
            1: {"student": [0.24, 0.22], "distilled": [0.21, 0.19, 0.20],
                "qd-4bit": [0.19]}}
    for seed, models in hist.items():
        d = tmp_path / "models" / f"seed{seed}"
        d.mkdir(parents=True)
        for name, curve in models.items():
            (d / f"{name}.history.json").write_text(json.dumps({"val_mean_eer": curve}))
    cfg = SimpleNamespace(seed_list=[0, 1], quant=SimpleNamespace(bits=(4,)))
    rows = validation_comparisons(tmp_path, cfg)
    first = rows[0]
    assert (first["model"], first["reference"], first["seeds"]) == ("distilled", "student",
                                                                   [0, 1])
    # best epochs: student 0.20, 0.22; distilled 0.16, 0.19 → Δ −0.04, −0.03
    assert first["mean"] == pytest.approx(-0.035)
    half = sps.t.ppf(0.975, 1) * np.std([-0.04, -0.03], ddof=1) / np.sqrt(2)
    assert first["ci95"] == pytest.approx([-0.035 - half, -0.035 + half])
    assert first["relative"] == pytest.approx((0.175 - 0.21) / 0.21)
    qd = rows[1]                          # one seed only: a difference, no interval
    assert (qd["model"], qd["seeds"], qd["ci95"]) == ("qd-4bit", [1], None)
    assert qd["mean"] == pytest.approx(0.19 - 0.19)
    assert len(rows) == 2                 # no qat-4bit history: no row
