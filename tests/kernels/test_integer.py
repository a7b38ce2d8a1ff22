"""The integer student's array kernels (qdaed/kernels/integer.py) called directly, against
tests/naive.py's Python-integer references (every rounding written as the real number it
rounds). The int8 LSTM layer kernel is compared with naive.int8_lstm_layer through
qdaed.integer.ops (tests/integer/test_ops.py): its folded zero points and traces are set up
there."""

import math
from fractions import Fraction

import numpy as np
import pytest

from qdaed.kernels import integer as ki
from tests import naive

I32 = [-2 ** 31, -2 ** 31 + 1, -65536, -3, -1, 0, 1, 2, 3, 12345, 2 ** 30, 2 ** 31 - 1]


@pytest.mark.parametrize("m, s", [(2 ** 30, 0), (2 ** 31 - 1, -31), (1518500250, -5),
                                  (2 ** 30 + 1, 3), (1073741824, 30), (0, 0), (1, 1)])
def test_rescale_int32_equals_the_exact_rational_rounding(m, s):
    x = np.array(I32 + list(np.random.default_rng(m % 97).integers(-2 ** 31, 2 ** 31, 50)),
                 np.int32)
    out = np.empty(x.size, np.int64)
    ki.rescale_int32(x, m, s, out)
    assert out.tolist() == [naive.rescale(int(v), m, s) for v in x]


def _int16_sample():
    edges = [-32768, -32767, -12289, -12288, -1, 0, 1, 511, 512, 12287, 12288, 32766, 32767]
    return np.array(edges + list(np.random.default_rng(5).integers(-32768, 32768, 300)),
                    np.int16)


@pytest.mark.parametrize("mult, shift", [(0, 0), (3, 1), (0, 2)])
def test_sigmoid_and_tanh_int16_arrays_equal_the_table_interpolation(mult, shift):
    x = _int16_sample()
    out = np.empty(x.size, np.int16)
    ki.sigmoid_int16_array(x, mult, shift, out)
    assert out.tolist() == [naive.sigmoid_int16(int(v), mult, shift) for v in x]
    ki.tanh_int16_array(x, mult, shift, out)
    assert out.tolist() == [naive.tanh_int16(int(v), mult, shift) for v in x]


@pytest.mark.parametrize("B, T, H", [(1, 1, 1), (2, 5, 3), (1, 300, 2)])
def test_mean_over_time_kernels_equal_the_reference(B, T, H):
    rng = np.random.default_rng(T)
    x = rng.integers(-128, 128, (B, T, H)).astype(np.int8)
    x[0, :, 0] = 127                                     # a constant, extreme row
    sums = np.empty((B, H), np.int64)
    ki.int8_sum_over_time(x, sums)
    np.testing.assert_array_equal(sums, x.astype(np.int64).sum(axis=1))
    z_in, z_out, (m, s) = -3, 5, naive.quantize_multiplier(Fraction(7, 10 * T))
    out = np.empty((B, H), np.int8)
    ki.int8_requantize_sums(sums, T, z_in, m, s, z_out, out)
    want = [[naive._sat(z_out + naive.rescale(int(sums[b, j]) - z_in * T, m, s), -128, 127)
             for j in range(H)] for b in range(B)]
    assert out.tolist() == want


@pytest.mark.parametrize("B, D, C", [(1, 1, 1), (2, 6, 3), (1, 64, 3)])
def test_int8_fully_connected_equals_the_reference_with_the_zero_point_unfolded(B, D, C):
    rng = np.random.default_rng(D)
    x = rng.integers(-128, 128, (B, D)).astype(np.int8)
    w = rng.integers(-127, 128, (C, D)).astype(np.int8)
    w[0] = 127                                               # a row of extreme weights
    bias = rng.integers(-5000, 5000, C).astype(np.int64)
    z_in, z_out = 11, -4
    pairs = [naive.quantize_multiplier(r) for r in rng.uniform(1e-4, 2e-2, C)]
    folded = bias - z_in * w.astype(np.int64).sum(axis=1)      # the kernel's documented bias
    out = np.empty((B, C), np.int8)
    ki.int8_fully_connected(x, w, folded, np.array([m for m, _ in pairs]),
                            np.array([s for _, s in pairs]), z_out, out)
    np.testing.assert_array_equal(out, naive.int8_fully_connected(x, w, bias, z_in, z_out, pairs))


@pytest.mark.parametrize("scale, z_in", [(0.05, -10), (1 / 256, 0), (0.5, 3)])
def test_int8_logistic_equals_the_reference_on_every_input(scale, z_in):
    # TFLite's parameters, as the reference derives them: m·2^(e − 31) = scale·2^27 (rounded
    # half away), radius = ⌊15·2^27 / 2^e⌋.
    q, e = math.frexp(scale * 2.0 ** 27)
    m = naive.round_half_away(Fraction(q) * 2 ** 31)
    radius = math.floor(15 * 2 ** 27 / 2 ** e)
    x = np.arange(-128, 128, dtype=np.int8)
    out = np.empty(x.size, np.int8)
    ki.int8_logistic(x, z_in, radius, m, e, out)
    assert out.tolist() == [naive.int8_logistic(int(v), z_in, scale) for v in x]
