"""Bit-exact conformance: TFLite Micro running the exported .tflite file gives, on every output
and every intermediate tensor between ops (each LSTM layer's output, the pooled mean, the
logits, the scores), exactly the integers of qdaed's integer path — 0 LSB.

Cases are seeded: int8 weights and quantization drawn directly (random_student: weights at
the int8 extremes, saturated gates, cell scales 2^-20..2^2), and students calibrated from float
and k-bit StudentLSTMs. The default run covers H ∈ {1, 8, 32, 128} × 1, 2 layers × T ∈ {1, 2,
100} × B ∈ {1, 4}; the slow test draws over a thousand more, up to H = 512 and T = 1000.
"""

import itertools

import numpy as np
import pytest

from qdaed.formats.tflite_export import export_tflite
from qdaed.integer.calibrate import calibrate
from qdaed.models.quantized import QuantSpec
from qdaed.models.student import StudentLSTM
from tests.integer.cases import random_student, run_tflm

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

VARIANTS = [dict(), dict(extreme="pm"), dict(saturate=True), dict(extreme="max"),
            dict(per_channel=False), dict(extreme="min", saturate=True)]


def _inputs(rng, B, T, F, kind):
    if kind == "extremes":
        return rng.choice(np.array([-128, 127], np.int8), size=(B, T, F))
    if kind == "constant":
        return np.full((B, T, F), int(rng.integers(-128, 128)), np.int8)
    return rng.integers(-128, 128, (B, T, F)).astype(np.int8)


def assert_bit_exact(student, x):
    """Every tensor TFLite Micro computes for x equals qdaed's (0 LSB); also the LSTM-only
    sub-graph. Returns the number of tensors compared."""
    B, T, _ = x.shape
    L = len(student.layers)
    mine = student.forward(x)
    theirs = run_tflm(runtime, export_tflite(student, T, B, outputs="all"), [x], L + 3)
    names = [f"lstm layer {k}" for k in range(L)] + ["pooled", "logits", "scores"]
    for name, a, b in zip(names, [*mine.layers, mine.pooled, mine.logits, mine.scores], theirs):
        assert a.dtype == b.dtype == np.int8 and a.shape == b.shape, name
        if not np.array_equal(a, b):
            diff = np.abs(a.astype(np.int64) - b)
            raise AssertionError(f"{name}: {int((diff > 0).sum())} of {a.size} values differ, "
                                 f"up to {int(diff.max())} LSB")
    (top,) = run_tflm(runtime, export_tflite(student, T, B, outputs="lstm"), [x])
    np.testing.assert_array_equal(top, mine.layers[-1])
    (scores,) = run_tflm(runtime, export_tflite(student, T, B), [x])
    np.testing.assert_array_equal(scores, mine.scores)
    return L + 4


GRID = list(itertools.product([1, 8, 32, 128], [1, 2], [1, 2, 100], [1, 4]))


@pytest.mark.parametrize("index", range(0, len(GRID), 8))
def test_exported_model_is_bit_exact_with_tflite_micro_on_the_default_grid(index):
    """48 seeded cases in 6 groups: every tensor of every case 0 LSB."""
    for i in range(index, min(index + 8, len(GRID))):
        H, L, T, B = GRID[i]
        rng = np.random.default_rng(1000 + i)
        F, C = int(rng.integers(1, 12)), int(rng.integers(1, 5))
        student = random_student(rng, F, H, L, C, **VARIANTS[i % len(VARIANTS)])
        x = _inputs(rng, B, T, F, ("random", "extremes", "constant")[i % 3])
        assert_bit_exact(student, x)


@pytest.mark.parametrize("bits", [None, 2, 4])
def test_calibrated_float_and_k_bit_students_are_bit_exact_with_tflite_micro(bits):
    rng = np.random.default_rng(7 + (bits or 0))
    model = StudentLSTM(12, 16, 2, 3, seed=int(rng.integers(1000)))
    quantized = QuantSpec(bits).quantize(model.params) if bits else None
    clips = rng.standard_normal((6, 40, 12)).astype(np.float32)
    student = calibrate(model, clips, quantized)
    for B, T in [(1, 40), (4, 40), (2, 1)]:
        x = student.quantize_input(rng.standard_normal((B, T, 12)) * 1.5)
        assert_bit_exact(student, x)


@pytest.mark.slow
def test_exported_model_is_bit_exact_with_tflite_micro_on_over_a_thousand_cases():
    """1,024 seeded cases over H ∈ {1, 2, 8, 32, 64, 128}, 1–2 layers, T ∈ {1, 2, 3, 17, 100},
    B ∈ {1, 2, 4}, every variant and input kind; then 8 large ones: H = 512 with T = 100 and
    T = 1000, and H = 128 with T = 1000."""
    compared = 0
    for i in range(1024):
        rng = np.random.default_rng(50_000 + i)
        H = int(rng.choice([1, 2, 8, 32, 64, 128]))
        L, T, B = int(rng.integers(1, 3)), int(rng.choice([1, 2, 3, 17, 100])), int(
            rng.choice([1, 2, 4]))
        F, C = int(rng.integers(1, 20)), int(rng.integers(1, 8))
        student = random_student(rng, F, H, L, C, **VARIANTS[i % len(VARIANTS)])
        compared += assert_bit_exact(student, _inputs(rng, B, T, F,
                                                      ("random", "extremes", "constant")[i % 3]))
    for i, (H, T, B, L) in enumerate([(512, 100, 1, 1), (512, 100, 4, 2), (512, 1000, 1, 1),
                                      (512, 1000, 1, 2), (128, 1000, 4, 2), (128, 1000, 1, 1),
                                      (512, 1000, 2, 1), (512, 2, 4, 2)]):
        rng = np.random.default_rng(90_000 + i)
        student = random_student(rng, 64, H, L, 10, **VARIANTS[i % len(VARIANTS)])
        compared += assert_bit_exact(student, _inputs(rng, B, T, 64, "random"))
    assert compared > 1032 * 5


def test_h512_two_layer_case_where_the_multiplier_product_precision_decides_a_tie():
    """A seeded H = 512, T = 100, B = 4, 2-layer case in which one recurrent gate sum lands
    within 2^-8 of a rounding tie: only multipliers from double-precision scale products give
    TFLite Micro's integers (a float32 product puts one h of layer 2 1 LSB off)."""
    rng = np.random.default_rng(90_001)
    student = random_student(rng, 64, 512, 2, 10, **VARIANTS[1])
    assert_bit_exact(student, _inputs(rng, 4, 100, 64, "random"))
