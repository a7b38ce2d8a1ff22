"""The quantizer's loops (qdaed/kernels/quant.py) called directly, against tests/naive.py's
group-by-group quantizer and bit packing: buckets of every size (one value, a short last
bucket, the whole tensor), constant tensors (α = 0), codes at both ends of the range."""

import math

import numpy as np
import pytest

from qdaed.kernels import quant as kq
from tests import naive


def _groups(n, d):
    return [np.arange(g, min(g + d, n)) for g in range(0, n, d)]


@pytest.mark.parametrize("n, d", [(1, 1), (7, 3), (12, 12), (10, 1), (9, 4)])
def test_bucket_min_max_and_max_abs(n, d):
    v = np.random.default_rng(n * d).normal(size=n).astype(np.float32)
    G = -(-n // d)
    lo, hi, mx = (np.full(G, np.nan) for _ in range(3))
    kq.bucket_min_max(v, d, lo, hi)
    kq.bucket_max_abs(v, d, mx)
    for g, idx in enumerate(_groups(n, d)):
        assert lo[g] == v[idx].min() and hi[g] == v[idx].max()
        assert mx[g] == np.abs(v[idx]).max()


def test_bucket_statistics_of_a_constant_tensor():
    v = np.full(5, -2.5)
    lo, hi, mx = np.empty(2), np.empty(2), np.empty(2)
    kq.bucket_min_max(v, 3, lo, hi)
    kq.bucket_max_abs(v, 3, mx)
    assert list(lo) == list(hi) == [-2.5, -2.5] and list(mx) == [2.5, 2.5]


def _asymmetric(v, bits, d):
    """(shift, alpha) per bucket as tests/naive.py's quantizer defines them."""
    _, alpha, beta = naive.quantize_groups(v, bits, d, False)
    return beta.astype(np.float64), alpha.astype(np.float64)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("n, d", [(1, 1), (13, 5), (16, 16)])
def test_codes_nearest_and_stochastic_equal_the_reference(bits, n, d):
    rng = np.random.default_rng(bits + n)
    v = rng.normal(size=n)
    shift, alpha = _asymmetric(v, bits, d)
    s = 2 ** bits - 1
    codes = np.full(n, 99999, np.int64)
    kq.codes_nearest(v, d, shift, alpha, float(s), 0.0, float(s), codes)
    np.testing.assert_array_equal(codes, naive.quantize_groups(v, bits, d, False)[0])
    u = rng.random(n)
    kq.codes_stochastic(v, d, shift, alpha, float(s), 0.0, float(s), u, codes)
    np.testing.assert_array_equal(codes, naive.quantize_groups(v, bits, d, False, u)[0])
    assert codes.min() >= 0 and codes.max() <= s


def test_codes_by_hand_ties_to_even_offset_clip_and_zero_alpha():
    # α = 3, s = 3: x = v − shift is the code itself; 0.5 → 0 and 1.5 → 2 (ties to even);
    # offset 1 then clip to [0, 3]: 2.5 → 2 + 1 = 3, −7 → 0; a bucket with α = 0 gives 0.
    v = np.array([0.5, 1.5, 2.5, -7.0, 4.0])
    codes = np.empty(5, np.int64)
    kq.codes_nearest(v, 4, np.array([0.0, 0.0]), np.array([3.0, 0.0]), 3.0, 1.0, 3.0, codes)
    assert list(codes) == [1, 3, 3, 0, 0]
    kq.codes_stochastic(v, 4, np.array([0.0, 0.0]), np.array([3.0, 0.0]), 3.0, 0.0, 3.0,
                        np.array([0.0, 0.49, 0.5, 0.99, 0.7]), codes)
    assert list(codes) == [0, 1, 3, 0, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dequantize_codes_equals_the_reference(dtype):
    codes = np.array([0, 3, 1, 2, 3, 0, 1], np.uint8)
    alpha, beta = np.array([1.5, 0.25, 2.0]), np.array([-1.0, 0.5, 0.0])
    out = np.full(7, np.nan, dtype)
    kq.dequantize_codes(codes, 3, alpha, beta, 3.0, out)
    want = naive.dequantize_groups(codes, alpha, beta, 2, 3).astype(dtype)
    np.testing.assert_array_equal(out, want)
    assert out[0] == -1.0 and out[1] == 0.5       # β + 0, β + α: the ends of the range


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("n", [1, 3, 8, 17])
def test_pack_and_unpack_codes_equal_the_reference_bit_stream(bits, n):
    rng = np.random.default_rng(bits * 100 + n)
    codes = rng.integers(0, 2 ** bits, n)
    codes[0] = 2 ** bits - 1                          # every bit set in the first code
    packed = np.full(math.ceil(n * bits / 8), 0xAA, np.uint8)   # padding must be zeroed
    kq.pack_codes(codes, bits, packed)
    np.testing.assert_array_equal(packed, naive.pack_codes(codes, bits))
    back = np.full(n, -1, np.int64)
    kq.unpack_codes(packed, bits, back)
    np.testing.assert_array_equal(back, codes)
