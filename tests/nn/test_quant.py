"""Tests of qdaed.nn.quant (docs/method/quantization.md, size.md): quantizer properties, an independent NumPy
reference, bit packing, stochastic rounding, PyTorch's fake quantization, bad input."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.nn import quant
from qdaed.nn.quant import QuantizedTensor
from tests import strategies as S
from tests.naive import pack_codes as _reference_pack
from tests.naive import quant_groups as _groups_of
from tests.naive import quantize_groups as _reference

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def _tensor(seed, shape, dtype=np.float64):
    """Values of a drawn magnitude around a drawn offset: ranges are never below float32
    resolution, which the exactness statements of the module docstring assume."""
    rng = S.rng_from(seed)
    scale = 2.0 ** rng.integers(-12, 12)
    offset = scale * rng.uniform(-2.0, 2.0) * rng.integers(0, 2)
    return (offset + scale * rng.uniform(-1.0, 1.0, shape)).astype(dtype)


def _per_element(values_per_group, groups):
    return np.concatenate([np.full(g.size, a) for a, g in zip(values_per_group, groups)])


# -- the independent plain NumPy reference of the quantizer is tests.naive.quantize_groups --

@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans(), S.float_dtypes)
def test_quantizer_matches_an_independent_numpy_reference(seed, shape, bits, group, sym, dtype):
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape, dtype)
    qt = quant.quantize(w, bits, group=group, symmetric=sym)
    codes, alpha, beta = _reference(w, bits, group, sym)
    assert np.array_equal(qt.codes, codes)
    assert np.array_equal(qt.alpha, alpha) and np.array_equal(qt.beta, beta)
    # dequantize: β + α·codes/s in float64, one rounding to the output dtype
    want = (_per_element(beta.astype(np.float64), _groups_of(w, group))
            + _per_element(alpha.astype(np.float64), _groups_of(w, group))
            * codes.reshape(-1) / (2 ** bits - 1)).reshape(shape)
    assert np.array_equal(qt.dequantize(np.float64), want)
    assert np.array_equal(qt.dequantize(), want.astype(dtype))


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans())
def test_stochastic_codes_match_the_reference_with_the_same_uniforms(seed, shape, bits, group,
                                                                     sym):
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape)
    qt = quant.quantize(w, bits, group=group, symmetric=sym, rounding="stochastic",
                        rng=S.rng_from(seed + 1))
    u = S.rng_from(seed + 1).random(w.size).reshape(shape)
    assert np.array_equal(qt.codes, _reference(w, bits, group, sym, u)[0])


# -- properties ---------------------------------------------------------------------------

@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans(), S.float_dtypes,
       st.sampled_from(["nearest", "stochastic"]))
def test_codes_lie_in_range_with_the_smallest_unsigned_dtype(seed, shape, bits, group, sym,
                                                             dtype, rounding):
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape, dtype)
    qt = quant.quantize(w, bits, group=group, rounding=rounding, symmetric=sym,
                        rng=S.rng_from(seed))
    assert qt.codes.shape == w.shape and qt.shape == w.shape
    assert qt.codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert int(qt.codes.max()) <= (2 ** bits - 2 if sym else 2 ** bits - 1)
    assert qt.alpha.dtype == qt.beta.dtype == np.float32
    assert qt.alpha.shape == qt.beta.shape == (len(_groups_of(w, group)),)


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans(), S.float_dtypes)
def test_error_is_at_most_half_a_step(seed, shape, bits, group, sym, dtype):
    # |Q(v) − v| ≤ α/(2s) per element; the tolerance covers the float64 evaluation and, for the
    # dtype's own dequantization, one rounding to that dtype.
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape, dtype)
    qt = quant.quantize(w, bits, group=group, symmetric=sym)
    half = _per_element(qt.alpha.astype(np.float64) / (2 * (2 ** bits - 1)),
                        _groups_of(w, group)).reshape(shape)
    v = w.astype(np.float64)
    err64 = np.abs(qt.dequantize(np.float64) - v)
    assert (err64 <= half + 8 * EPS64 * (np.abs(v) + half)).all()
    err = np.abs(qt.dequantize().astype(np.float64) - v)
    eps = EPS32 if dtype == np.float32 else EPS64
    assert (err <= half + 8 * eps * (np.abs(v) + half)).all()


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans())
def test_stochastic_error_is_below_one_step(seed, shape, bits, group, sym):
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape)
    qt = quant.quantize(w, bits, group=group, symmetric=sym, rounding="stochastic",
                        rng=S.rng_from(seed))
    step = _per_element(qt.alpha.astype(np.float64) / (2 ** bits - 1),
                        _groups_of(w, group)).reshape(shape)
    assert (np.abs(qt.dequantize() - w) <= step * (1 + 1e-9) + 8 * EPS64 * np.abs(w)).all()


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups)
def test_requantizing_is_exact_in_float64(seed, shape, bits, group):
    # Module docstring: the extremes sit on codes 0 and s, so Q(Q(v)) re-derives (β, α) and
    # reproduces codes and float64 values bit for bit.
    w = _tensor(seed, shape)
    qt = quant.quantize(w, bits, group=group)
    q = qt.dequantize(np.float64)
    again = quant.quantize(q, bits, group=group)
    assert np.array_equal(again.codes, qt.codes)
    assert np.array_equal(again.alpha, qt.alpha) and np.array_equal(again.beta, qt.beta)
    assert np.array_equal(again.dequantize(np.float64), q)


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups)
def test_requantizing_float32_keeps_codes_and_values_to_float32_rounding(seed, shape, bits, group):
    # In float32 each grid point is rounded once, so α may be re-derived an ulp away: the codes
    # are the same and the values agree to a couple of float32 ulps (not bit for bit).
    w = _tensor(seed, shape, np.float32)
    qt = quant.quantize(w, bits, group=group)
    q = qt.dequantize()
    again = quant.quantize(q, bits, group=group)
    assert np.array_equal(again.codes, qt.codes)
    np.testing.assert_allclose(again.dequantize(), q, rtol=2 * EPS32,
                               atol=2 * EPS32 * float(np.abs(q).max()))


@given(S.seeds, S.quant_shapes, st.integers(2, 11), S.quant_groups, S.float_dtypes)
def test_symmetric_requantizing_is_exact_up_to_11_bits(seed, shape, bits, group, dtype):
    w = _tensor(seed, shape, dtype)
    qt = quant.quantize(w, bits, group=group, symmetric=True)
    q = qt.dequantize()
    again = quant.quantize(q, bits, group=group, symmetric=True)
    assert np.array_equal(again.codes, qt.codes) and np.array_equal(again.dequantize(), q)


@given(S.seeds, S.quant_shapes, st.integers(12, 16), S.quant_groups)
def test_symmetric_requantizing_above_11_bits_stays_within_half_a_step(seed, shape, bits, group):
    # Documented limitation: the (24 − k)-bit step can leave max|v| below level m, and the
    # re-derived step is then finer; Q(Q(v)) is within Δ/2 = α/(2s) of Q(v), not equal.
    w = _tensor(seed, shape)
    q = quant.quantize(w, bits, group=group, symmetric=True).dequantize()
    again = quant.quantize(q, bits, group=group, symmetric=True)
    half = _per_element(again.alpha.astype(np.float64) / (2 * (2 ** bits - 1)),
                        _groups_of(w, group)).reshape(shape)
    assert (np.abs(again.dequantize() - q) <= half * (1 + 1e-12)).all()


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_symmetric_grid_holds_zero_exactly_and_is_symmetric(bits):
    m = 2 ** (bits - 1) - 1
    w = np.array([[0.0, 0.3, -0.3, 1e-9], [-0.7, 0.7, -1.3, 0.0]])
    qt = quant.quantize(w, bits, group="row", symmetric=True)
    q = qt.dequantize(np.float64)
    assert q[0, 0] == 0.0 and q[1, 3] == 0.0 and q[0, 3] == 0.0
    assert q[0, 1] == -q[0, 2] and q[1, 0] == -q[1, 1]
    assert qt.codes[0, 0] == m
    # Δ ≥ max|v| / m and no more than 2^(k−23) above it
    step = qt.alpha.astype(np.float64) / (2 ** bits - 1)
    top = np.abs(w).max(axis=1)
    assert (step >= top / m).all() and (step <= top / m * (1 + 2.0 ** (bits - 23))).all()
    assert np.array_equal(qt.beta.astype(np.float64), -step * m)


# -- α = 0: constant groups -----------------------------------------------------------------

@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("bits", [1, 4, 16])
def test_constant_groups_have_alpha_zero_codes_zero_and_exact_values(bits, rounding):
    w = np.array([[0.1, 0.1, 0.1], [-3.5, -3.5, -3.5], [0.0, 0.0, 0.0]], np.float32)
    rng = np.random.default_rng(0)
    for group in ("row", 3, 1):
        qt = quant.quantize(w, bits, group=group, rounding=rounding, rng=rng)
        assert (qt.alpha == 0).all() and (qt.codes == 0).all()
        assert np.array_equal(qt.dequantize(), w)
    qt = quant.quantize(w, bits, rounding=rounding, rng=rng)  # not constant as a whole
    assert qt.alpha[0] > 0
    if bits > 1:
        sym = quant.quantize(np.zeros((2, 3)), bits, symmetric=True, rounding=rounding, rng=rng)
        assert sym.alpha[0] == 0 and (sym.codes == 0).all() and (sym.dequantize() == 0).all()
        assert not np.signbit(sym.beta[0])


def test_float64_constant_off_the_float32_grid_stays_within_the_bound():
    w = np.full(5, 0.1)  # 0.1 is not a float32 number: β < 0.1 and a tiny α > 0
    qt = quant.quantize(w, 8)
    assert qt.beta[0] < 0.1 < float(qt.beta[0]) + float(qt.alpha[0])
    assert (np.abs(qt.dequantize() - w) <= float(qt.alpha[0]) / (2 * 255)).all()


# -- rounding at half-way points -----------------------------------------------------------

@given(st.integers(1, 16), st.integers(-8, 8), st.integers(-40, 40), S.seeds)
def test_half_way_values_round_to_even_codes(bits, e, start, seed):
    # Grid β = start·2^e, α = s·2^e (step 2^e): every quantity is exact in float64, so
    # v = β + (j + ½)·2^e is exactly half-way between codes j and j + 1.
    s = 2 ** bits - 1
    step = 2.0 ** e
    rng = S.rng_from(seed)
    j = rng.integers(0, s, size=12)
    w = np.concatenate([[start * step, (start + s) * step], (start + j + 0.5) * step])
    qt = quant.quantize(w, bits)
    assert qt.beta[0] == start * step and qt.alpha[0] == s * step
    even = np.where(j % 2 == 0, j, j + 1)
    assert np.array_equal(qt.codes[2:], even)


def test_symmetric_half_way_values_round_the_signed_integer_to_even():
    # k = 3: m = 3, Δ = 1. Signed q = rint(v) half to even, codes = q + 3.
    w = np.array([-3.0, 3.0, 0.5, 1.5, -0.5, -1.5, 2.5, -2.5])
    qt = quant.quantize(w, 3, symmetric=True)
    assert np.array_equal(qt.codes, np.array([-3, 3, 0, 2, 0, -2, 2, -2]) + 3)
    assert np.array_equal(qt.dequantize(), np.array([-3.0, 3, 0, 2, 0, -2, 2, -2]))


# -- stochastic rounding -------------------------------------------------------------------

@pytest.mark.parametrize("sym", [False, True])
def test_stochastic_rounding_is_unbiased(sym):
    # N copies of one row v, quantized per row (every copy gets the same grid, fresh u). The
    # code of v_i is ⌊x_i⌋ + Bernoulli(f_i), f_i = frac(x_i), so the mean of N dequantized
    # copies has variance (α/s)² f(1 − f)/N ≤ (α/s)²/(4N). Tolerance: 5 standard deviations
    # of that bound, |mean − v_i| ≤ 5 (α/s) / (2√N) (fixed seed, so the test is deterministic;
    # under the null the chance of any of the 40 elements exceeding it is about 2e-5).
    rng = np.random.default_rng(2024)
    v = rng.uniform(-1.0, 1.0, 40)
    v[:2] = -1.0, 1.0  # pin the grid so every copy has the same min and max
    n = 4000
    w = np.tile(v, (n, 1))
    qt = quant.quantize(w, 3, group="row", rounding="stochastic", symmetric=sym, rng=rng)
    step = float(qt.alpha[0]) / 7
    assert (qt.alpha == qt.alpha[0]).all()
    mean = qt.dequantize().mean(axis=0)
    assert (np.abs(mean - v) <= 5 * step / (2 * math.sqrt(n))).all()
    # and it is not round-to-nearest: values at least 1% of a step away from the grid take
    # both neighbours (each stays put with probability ≤ 0.99^N < 1e-17)
    nearest = quant.quantize(w[:1], 3, group="row", symmetric=sym).dequantize()[0]
    off_grid = np.abs(nearest - v) > 0.01 * step
    assert off_grid.sum() > 30
    assert (qt.dequantize()[:, off_grid].std(axis=0) > 0).all()


def test_stochastic_rounding_is_reproducible_from_the_seed():
    w = _tensor(5, (4, 7))
    a = quant.quantize(w, 4, rounding="stochastic", rng=np.random.default_rng(9))
    b = quant.quantize(w, 4, rounding="stochastic", rng=np.random.default_rng(9))
    c = quant.quantize(w, 4, rounding="stochastic", rng=np.random.default_rng(10))
    assert np.array_equal(a.codes, b.codes) and not np.array_equal(a.codes, c.codes)


# -- size accounting and packing -----------------------------------------------------------

@given(S.quant_shapes, S.quant_bits, S.quant_groups)
def test_nbytes_is_packed_codes_plus_eight_bytes_per_group(shape, bits, group):
    n = math.prod(shape)
    groups = {"tensor": 1, "row": shape[0]}.get(group) or math.ceil(n / group)
    qt = quant.quantize(_tensor(0, shape), bits, group=group)
    assert qt.nbytes == math.ceil(n * bits / 8) + 8 * groups
    assert qt.packed().nbytes + qt.alpha.nbytes + qt.beta.nbytes == qt.nbytes


@pytest.mark.parametrize("bits", range(1, 17))
@given(seed=S.seeds, n=st.integers(1, 40), fill=st.sampled_from(["random", "zero", "max"]))
def test_pack_unpack_round_trip_is_exact_with_little_endian_bit_order(bits, seed, n, fill):
    s = 2 ** bits - 1
    codes = {"random": S.rng_from(seed).integers(0, s + 1, size=n), "zero": np.zeros(n),
             "max": np.full(n, s)}[fill].astype(quant.code_dtype(bits))
    qt = QuantizedTensor(codes, np.ones(1, np.float32), np.zeros(1, np.float32), bits, "tensor")
    packed = qt.packed()
    assert packed.dtype == np.uint8 and packed.size == math.ceil(n * bits / 8)
    assert np.array_equal(packed, _reference_pack(codes, bits))
    back = QuantizedTensor.from_packed(packed, (n,), bits, "tensor", qt.alpha, qt.beta)
    assert back.codes.dtype == codes.dtype and np.array_equal(back.codes, codes)


def test_packing_known_bytes():
    # k = 3, codes 1, 2, 7: stream bits 0 (code 1), 4 (code 2), 6, 7, 8 (code 7).
    qt = QuantizedTensor(np.array([1, 2, 7], np.uint8), np.ones(1, np.float32),
                         np.zeros(1, np.float32), 3, "tensor")
    assert qt.packed().tolist() == [1 + 16 + 64 + 128, 1]
    c16 = np.array([0x1234, 0xBEEF], np.uint16)
    qt = QuantizedTensor(c16, np.ones(1, np.float32), np.zeros(1, np.float32), 16, "tensor")
    assert qt.packed().tolist() == [0x34, 0x12, 0xEF, 0xBE]


@given(S.seeds, S.quant_shapes, S.quant_bits, S.quant_groups, st.booleans())
def test_tensor_restored_from_its_bytes_dequantizes_bit_for_bit(seed, shape, bits, group, sym):
    assume(not (sym and bits == 1))
    w = _tensor(seed, shape, np.float32)
    qt = quant.quantize(w, bits, group=group, symmetric=sym)
    raw_alpha = np.frombuffer(qt.alpha.tobytes(), np.float32)  # as a file would hold them
    raw_beta = np.frombuffer(qt.beta.tobytes(), np.float32)
    back = QuantizedTensor.from_packed(qt.packed(), shape, bits, group, raw_alpha.copy(),
                                       raw_beta.copy(), symmetric=sym)
    assert np.array_equal(back.codes, qt.codes)
    assert np.array_equal(back.dequantize(), qt.dequantize())


def test_from_packed_refuses_malformed_bytes():
    good = quant.quantize(_tensor(1, (3, 5)), 3, group="row")
    args = dict(packed=good.packed(), shape=(3, 5), bits=3, group="row", alpha=good.alpha,
                beta=good.beta)
    bad_pad = args["packed"].copy()
    bad_pad[-1] |= 0x80  # 15 codes × 3 bits = 45 bits: bits 45..47 are padding
    bad = [("packed", dict(packed=args["packed"][:-1])),
           ("packed", dict(packed=args["packed"].astype(np.int16))),
           ("packed", dict(packed=bad_pad)),
           ("alpha", dict(alpha=good.alpha[:2])),
           ("alpha", dict(alpha=good.alpha.astype(np.float64))),
           ("alpha", dict(alpha=-good.alpha)),
           ("beta", dict(beta=np.full(3, np.nan, np.float32))),
           ("bits", dict(bits=17)),
           ("group", dict(group="col")),
           ("shape", dict(shape=(3, 0)))]
    for name, change in bad:
        with pytest.raises(InputError, match=name):
            QuantizedTensor.from_packed(**{**args, **change})
    # code 2^k − 1 is not a symmetric code
    top = QuantizedTensor(np.full(4, 7, np.uint8), np.ones(1, np.float32),
                          np.zeros(1, np.float32), 3, "tensor")
    with pytest.raises(InputError, match="codes"):
        QuantizedTensor.from_packed(top.packed(), (4,), 3, "tensor", top.alpha, top.beta,
                                    symmetric=True)


# -- straight-through estimator ----------------------------------------------------------

def test_ste_backward_is_the_identity_and_returns_a_new_array():
    w = _tensor(3, (3, 4))
    qt = quant.quantize(w, 4, group="row")
    dq = S.rng_from(4).standard_normal((3, 4))
    dw = quant.ste_backward(dq, qt)
    assert np.array_equal(dw, dq) and dw is not dq
    with pytest.raises(InputError, match="dq"):
        quant.ste_backward(dq.T, qt)
    with pytest.raises(InputError, match="qt"):
        quant.ste_backward(dq, w)


# -- PyTorch's fake quantization, where the grids coincide ----------------------------------

@pytest.mark.conformance
@given(S.seeds, st.integers(1, 16), st.integers(-6, 6), st.sampled_from([np.float32, np.float64]))
def test_matches_torch_fake_quantize_per_tensor_where_grids_coincide(seed, bits, e, dtype):
    # Torch: Q = (clamp(rint(w/scale + zp), 0, s) − zp)·scale with an integer zero point zp.
    # Ours equals it when β = −zp·scale, α = s·scale with a power-of-two scale (so no rounding
    # of the parameters intervenes): pin min and max of w there. Where the grids differ:
    # torch's range always includes 0 and its zp is rounded to an integer, so for a tensor
    # whose min is not a multiple of the scale (or all of one sign) the two grids differ.
    from tests.torch_ref import to_numpy, to_torch, torch

    rng = S.rng_from(seed)
    s = 2 ** bits - 1
    zp = int(rng.integers(0, s + 1))
    scale = 2.0 ** e
    w = rng.uniform(-zp * scale, (s - zp) * scale, 30)
    w[:2] = -zp * scale, (s - zp) * scale
    w = w.astype(dtype)
    ours = quant.quantize(w, bits)
    tw = to_torch(w, requires_grad=True)
    tq = torch.fake_quantize_per_tensor_affine(tw, scale, zp, 0, s)
    dy = rng.standard_normal(30).astype(dtype)
    tq.backward(to_torch(dy))
    assert np.array_equal(ours.dequantize(), to_numpy(tq))
    # every value is inside torch's range, so its clipped STE mask is all ones: same gradient
    assert np.array_equal(quant.ste_backward(dy, ours), to_numpy(tw.grad))


@pytest.mark.conformance
@given(S.seeds, st.integers(2, 16), st.integers(-6, 6))
def test_symmetric_matches_torch_narrow_range_fake_quantize(seed, bits, e):
    # Torch with zp = 0 and range [−m, m] is our symmetric grid when Δ = 2^e (already a number
    # of 24 − k bits, so our rounding of Δ leaves it alone): pin max|w| = m·Δ.
    from tests.torch_ref import to_numpy, to_torch, torch

    rng = S.rng_from(seed)
    m = 2 ** (bits - 1) - 1
    step = 2.0 ** e
    w = rng.uniform(-m * step, m * step, (3, 10))
    w[:, 0] = m * step * rng.choice([-1.0, 1.0], size=3)
    ours = quant.quantize(w, bits, group="row", symmetric=True)
    tq = torch.fake_quantize_per_tensor_affine(to_torch(w), step, 0, -m, m)
    assert np.array_equal(ours.dequantize(), to_numpy(tq))


@pytest.mark.conformance
def test_torch_clipped_ste_differs_outside_its_range_where_ours_has_none():
    # Torch's backward is dy·[value inside its range]. Give torch a range that misses the
    # tensor's extremes (as a fixed or observer-derived range may): its gradient there is 0,
    # while qdaed's grid always covers the tensor and passes dy through.
    from tests.torch_ref import to_numpy, to_torch, torch

    w = np.array([-2.0, -0.5, 0.25, 3.0])
    tw = to_torch(w, requires_grad=True)
    torch.fake_quantize_per_tensor_affine(tw, 0.125, 8, 0, 15).backward(torch.ones(4,
                                                                         dtype=torch.float64))
    assert to_numpy(tw.grad).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert quant.ste_backward(np.ones(4), quant.quantize(w, 4)).tolist() == [1.0] * 4


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [
    ("bits", dict(bits=0)),
    ("bits", dict(bits=17)),
    ("bits", dict(bits=2.5)),
    ("bits", dict(bits=True)),
    ("bits", dict(bits=1, symmetric=True)),
    ("group", dict(group="col")),
    ("group", dict(group=0)),
    ("group", dict(group=-3)),
    ("group", dict(group=1.5)),
    ("group", dict(group=True)),
    ("rounding", dict(rounding="up")),
    ("rng", dict(rounding="stochastic")),
    ("rng", dict(rounding="stochastic", rng=42)),
    ("symmetric", dict(symmetric="yes")),
    ("w", dict(w=np.array([[0.0, np.nan]]))),
    ("w", dict(w=np.array([[0.0, np.inf]]))),
    ("w", dict(w=np.array([[1, 2]]))),
    ("w", dict(w=np.array(1.0))),
    ("w", dict(w=np.zeros((0, 3)))),
    ("w", dict(w=np.array([2e38, 0.0]))),
    ("w", dict(w=[[0.0, 1.0]])),
])
def test_bad_input_raises_input_error_naming_the_argument(name, kwargs):
    args = dict(w=np.array([[0.0, 1.0], [2.0, 3.0]]), bits=4)
    with pytest.raises(InputError, match=name):
        quant.quantize(**{**args, **kwargs})


def test_dequantize_refuses_a_non_float_dtype():
    qt = quant.quantize(np.array([0.0, 1.0]), 4)
    with pytest.raises(InputError, match="dtype"):
        qt.dequantize(np.int32)
