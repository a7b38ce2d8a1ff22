"""Rescales and the int16 sigmoid/tanh against exact-rational references (tests/naive.py), hand
values at rounding ties, and every int16 input against TFLite Micro's LOGISTIC and TANH."""

import math

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.formats.tflite_export import ModelBuilder
from qdaed.integer import quantize_multiplier, rescale, sigmoid_int16, tanh_int16
from qdaed.integer.fixedpoint import tanh_input_params
from tests import naive
from tests.integer.cases import run_tflm

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize("real", [1.0, 0.5, 0.75, 2.0 ** -12, 2.0 ** -30, 2.0 ** -31,
                                  2.0 ** -32, 1e-10, 3.0, 12345.678, 1 - 2.0 ** -33,
                                  0.0, 0.1, 1 / 3, 2.0 ** -31 * (1 - 2.0 ** -40)])
def test_quantize_multiplier_equals_exact_rational_rounding(real):
    assert quantize_multiplier(real) == naive.quantize_multiplier(real)


def test_quantize_multiplier_renormalises_a_mantissa_that_rounds_up_to_one():
    # q = 1 − 2^-33 rounds to 2^31, which must become (2^30, e + 1)
    assert quantize_multiplier(1 - 2.0 ** -33) == (1 << 30, 1)


def test_quantize_multiplier_on_random_reals_matches_naive():
    rng = np.random.default_rng(0)
    for real in np.exp(rng.uniform(-21, 10, 300)):
        m, s = quantize_multiplier(real)
        assert (m, s) == naive.quantize_multiplier(float(real))
        assert 2 ** 30 <= m < 2 ** 31
        assert abs(m * 2.0 ** (s - 31) - real) <= 2.0 ** (s - 32)


def test_quantize_multiplier_refuses_negative_and_non_finite():
    for bad in (-1.0, math.nan, math.inf, "x"):
        with pytest.raises(InputError):
            quantize_multiplier(bad)


def test_rescale_rounds_srdhm_ties_up_and_power_of_two_ties_away_from_zero():
    # m = 2^30 is one half: srdhm(x, 2^30) = x/2 with ties toward +inf
    assert rescale(np.array([3, -3, 5, -5, 1, -1]), 1 << 30, 0).tolist() == [2, -1, 3, -2, 1, 0]
    # then a rounding right shift by 1 (ties away from zero): x/4 overall
    # 6 → 3 → 1.5 → 2;  −6 → −3 → −1.5 → −2;  2 → 1 → 0.5 → 1;  −2 → −1 → −0.5 → −1
    assert rescale(np.array([6, -6, 2, -2, 4, -4]), 1 << 30, -1).tolist() == [2, -2, 1, -1, 1, -1]


def test_rescale_left_shift_wraps_like_int32():
    # x·2^2 = 2^32 wraps to 0 in int32 before the multiply
    assert rescale(np.array([1 << 30]), 1 << 30, 2).tolist() == [0]
    assert rescale(np.array([3]), 1 << 30, 2).tolist() == [6]


def test_rescale_matches_naive_on_ties_extremes_and_random_values():
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, 300), [-2 ** 31, 2 ** 31 - 1, 0, 1, -1],
                         np.arange(-40, 41)]).astype(np.int64)
    for m, s in [(1 << 30, 0), (1 << 30, -1), (1 << 30, -14), ((1 << 31) - 1, -31),
                 (1518500250, -5), (1 << 30, 3), (2 ** 31 - 1, 0), (1234567890, 7), (0, 0)]:
        got = rescale(xs.astype(np.int32), m, s).tolist()
        assert got == [naive.rescale(int(x), m, s) for x in xs], (m, s)


def test_rescale_refuses_out_of_range_arguments():
    with pytest.raises(InputError):
        rescale(np.array([1.5]), 1 << 30, 0)
    with pytest.raises(InputError):
        rescale(np.array([2 ** 31]), 1 << 30, 0)
    with pytest.raises(InputError):
        rescale(np.array([1]), 1 << 30, 31)


def test_sigmoid_int16_every_input_matches_naive_table_interpolation():
    got = sigmoid_int16(ALL_INT16).astype(np.int64)
    want = np.array([naive.sigmoid_int16(int(x)) for x in ALL_INT16])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("power", [-12, -11])
def test_tanh_int16_every_input_matches_naive_table_interpolation(power):
    mult, shift = tanh_input_params(power)
    got = tanh_int16(ALL_INT16, power).astype(np.int64)
    want = np.array([naive.tanh_int16(int(x), mult, shift) for x in ALL_INT16])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("power", [-20, -15, -13, -8, 0, 2])
def test_tanh_int16_other_cell_scales_match_naive(power):
    mult, shift = tanh_input_params(power)
    xs = np.concatenate([ALL_INT16[::37], ALL_INT16[:3], ALL_INT16[-3:], np.arange(-9, 10)])
    got = tanh_int16(xs.astype(np.int16), power).astype(np.int64)
    np.testing.assert_array_equal(got, [naive.tanh_int16(int(x), mult, shift) for x in xs])


def test_sigmoid_and_tanh_int16_are_within_table_accuracy_of_float():
    x = ALL_INT16.astype(np.float64) / 4096
    np.testing.assert_allclose(sigmoid_int16(ALL_INT16) / 32768, 1 / (1 + np.exp(-x)), atol=2e-4)
    np.testing.assert_allclose(tanh_int16(ALL_INT16) / 32768, np.tanh(x), atol=4e-4)
    assert sigmoid_int16(np.array([0], np.int16))[0] == 16384
    assert tanh_int16(np.array([0], np.int16))[0] == 0
    # the ends of Q3.12: σ(±8) = 0.99966, 0.00034 (inside the table, which reaches 10.6)
    assert sigmoid_int16(np.array([32767, -32768], np.int16)).tolist() == [32757, 11]
    # past the table (±16 at scale 2^-11): tanh saturates to ±32767
    assert tanh_int16(np.array([32767, -32768], np.int16), -11).tolist() == [32767, -32767]


def _int16_activation_model(op, input_scale):
    mb = ModelBuilder()
    x = mb.tensor("x", ALL_INT16.shape, np.int16, scales=input_scale, zero_points=0)
    y = mb.tensor("y", ALL_INT16.shape, np.int16, scales=2.0 ** -15, zero_points=0)
    mb.operator(op, [x], [y])
    return mb.finish([x], [y])


def test_sigmoid_int16_every_input_matches_tflite_micro_logistic():
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    (want,) = run_tflm(runtime, _int16_activation_model("LOGISTIC", 2.0 ** -12), [ALL_INT16])
    np.testing.assert_array_equal(sigmoid_int16(ALL_INT16), want)


@pytest.mark.parametrize("power", [-12, -11])
def test_tanh_int16_every_input_matches_tflite_micro_tanh(power):
    # TFLite Micro's TANH op takes the LSTM's power-of-two path for input scales 2^-12, 2^-11
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    (want,) = run_tflm(runtime, _int16_activation_model("TANH", 2.0 ** power), [ALL_INT16])
    np.testing.assert_array_equal(tanh_int16(ALL_INT16, power), want)
