"""The LSTM cell kernels (qdaed/kernels/lstm.py) called directly, against tests/naive.py's
cell, and its hand-written exponential, sigmoid and tanh against NumPy's."""

import numpy as np
import pytest

from qdaed.kernels import lstm as K
from tests.naive import lstm_cell_backward as ref_cell_backward
from tests.naive import lstm_cell_forward as ref_cell_forward


# --- the NumPy reference of one cell step is tests.naive.lstm_cell_forward / _backward ----

def _cell_inputs(rng, b, h, dtype, scale):
    return (scale * rng.standard_normal((b, 4 * h)).astype(dtype),
            scale * rng.standard_normal((b, 4 * h)).astype(dtype),
            scale * rng.standard_normal(4 * h).astype(dtype),
            rng.standard_normal((b, h)).astype(dtype))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])  # 30: saturated gates, e^-|a| tiny
@pytest.mark.parametrize("b, h", [(1, 1), (3, 5), (2, 19)])  # 19: a vector loop plus a tail
def test_cell_forward_kernel_matches_numpy_reference(dtype, tol, scale, b, h):
    rng = np.random.default_rng(h)
    a_x, a_h, bias, c_prev = _cell_inputs(rng, b, h, dtype, scale)
    gates, a, c, hh = a_x.copy(), np.empty_like(a_h), np.empty_like(c_prev), np.empty_like(c_prev)
    h_t = np.empty((h, b), dtype)
    K.lstm_cell_forward(gates, np.ascontiguousarray(a_h.T), bias, a, c_prev, c, hh, h_t)
    r_gates, r_c, _ = ref_cell_forward(a_x, a_h, bias, c_prev)
    # the pre-activation is the dtype's sum, in the kernel's documented order
    np.testing.assert_array_equal(a, (a_x + a_h) + bias)
    np.testing.assert_allclose(gates, r_gates, rtol=tol, atol=tol)
    np.testing.assert_allclose(c, r_c, rtol=tol, atol=tol)
    # h_t is documented to use the stored (rounded) c_t; its transpose is the same values
    o = r_gates[:, 3 * h:]
    np.testing.assert_allclose(hh, o * np.tanh(c.astype(np.float64)), rtol=tol, atol=tol)
    np.testing.assert_array_equal(h_t, hh.T)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("b, h", [(1, 1), (3, 5), (2, 19)])
def test_cell_backward_kernel_matches_numpy_reference(dtype, tol, b, h):
    rng = np.random.default_rng(b * h)
    gates, a, bias, c_prev = _cell_inputs(rng, b, h, dtype, 1.0)
    c, hh, h_t = np.empty_like(c_prev), np.empty_like(c_prev), np.empty((h, b), dtype)
    K.lstm_cell_forward(gates, np.ascontiguousarray(a.T), bias, np.empty_like(a), c_prev, c,
                        hh, h_t)
    dy, dh_next, dc = (rng.standard_normal((b, h)).astype(dtype) for _ in range(3))
    dbias0 = rng.standard_normal(4 * h)
    r_da, r_dc_prev = ref_cell_backward(gates, c_prev, c, dy, dh_next, dc)

    da, dc_io, dbias = np.empty_like(gates), dc.copy(), dbias0.copy()
    da_t, dh = np.empty((4 * h, b), dtype), np.empty_like(dy)
    K.lstm_cell_backward(gates, c_prev, c, dy, np.ascontiguousarray(dh_next.T), dc_io, dh, da,
                         da_t, dbias)
    np.testing.assert_allclose(da, r_da, rtol=tol, atol=tol)
    np.testing.assert_array_equal(da_t, da.T)  # the transposed copy, for the next product
    np.testing.assert_allclose(dc_io, r_dc_prev, rtol=tol, atol=tol)
    np.testing.assert_allclose(dbias, dbias0 + r_da.sum(axis=0), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, lowest, tol", [(np.float64, -708.39, 4e-16),
                                                 (np.float32, -87.33, 2.5e-7)])
def test_hand_written_exponential_is_accurate_to_a_few_ulp(dtype, lowest, tol):
    x = np.concatenate([-np.geomspace(1e-30, -lowest, 20001), [0.0, -0.5 * np.log(2)]])
    x = x.astype(dtype)
    ours = np.array([K._exp_nonpositive(v) for v in x])
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(ours - ref) / ref) < tol


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-15), (np.float32, 2.5e-7)])  # ~4 ulp, ~2 ulp
def test_sigmoid_and_tanh_are_accurate_relative_to_their_value(dtype, tol):
    # tanh near 0 included: computed through expm1, it keeps its relative accuracy there.
    x = np.concatenate([-np.geomspace(1e-30, 40, 3001), [0.0], np.geomspace(1e-30, 40, 3001)])
    x = x.astype(dtype)
    x64 = x.astype(np.float64)
    sig = np.array([K._sigmoid(v) for v in x])
    tanh = np.array([K._tanh(v) for v in x])
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-x64)), rtol=tol, atol=0)
    np.testing.assert_allclose(tanh, np.tanh(x64), rtol=tol, atol=0)


# --- the recurrence in one call (lstm_forward_steps / lstm_backward_steps) against a NumPy
# loop over time built from the naive cell --------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("n, b, h", [(1, 1, 1), (4, 3, 5), (7, 2, 19), (3, 33, 8)])
def test_forward_steps_kernel_matches_a_numpy_loop_over_time(dtype, tol, n, b, h):
    rng = np.random.default_rng(n * 100 + b * 10 + h)
    w_hh = (rng.standard_normal((4 * h, h)) * 0.5).astype(dtype)
    bias = rng.standard_normal(4 * h).astype(dtype)
    a_x = rng.standard_normal((n, b, 4 * h)).astype(dtype)
    h0, c0 = rng.standard_normal((b, h)).astype(dtype), rng.standard_normal((b, h)).astype(dtype)
    gates, hs, cs = a_x.copy(), np.empty((n + 1, b, h), dtype), np.empty((n + 1, b, h), dtype)
    hs[0], cs[0] = h0, c0
    h_t = h0.T.copy()   # a copy: the kernel overwrites it (ascontiguousarray may be a view)
    K.lstm_forward_steps(w_hh, bias, gates, hs, cs, np.empty((b, 4 * h), dtype),
                         np.empty((4 * h, b), dtype), h_t)
    hp, cp = h0.astype(np.float64), c0.astype(np.float64)
    for t in range(n):
        want_g, cp, hp = ref_cell_forward(a_x[t], hp @ w_hh.T.astype(np.float64), bias, cp)
        np.testing.assert_allclose(gates[t], want_g, rtol=tol, atol=tol)
        np.testing.assert_allclose(cs[t + 1], cp, rtol=tol, atol=tol)
        np.testing.assert_allclose(hs[t + 1], hp, rtol=tol, atol=tol)
    np.testing.assert_array_equal(h_t, hs[n].T)  # the carried operand is h_n, transposed


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("n, b, h", [(1, 1, 1), (4, 3, 5), (6, 2, 19)])
def test_backward_steps_kernel_matches_a_numpy_loop_over_time(dtype, tol, n, b, h):
    rng = np.random.default_rng(n * 100 + b * 10 + h + 1)
    w_hh = (rng.standard_normal((4 * h, h)) * 0.5).astype(dtype)
    gates = rng.uniform(0.05, 0.95, (n, b, 4 * h)).astype(dtype)
    gates[:, :, 2 * h:3 * h] = rng.uniform(-0.95, 0.95, (n, b, h))   # g = tanh(·) ∈ (−1, 1)
    cs = rng.standard_normal((n + 1, b, h)).astype(dtype)
    d_out = rng.standard_normal((n, b, h)).astype(dtype)
    dh_n, dc_n = rng.standard_normal((b, h)).astype(dtype), rng.standard_normal((b, h)).astype(dtype)
    dh_next_t, dc = dh_n.T.copy(), dc_n.copy()
    da, dbias = np.empty((n, b, 4 * h), dtype), np.zeros(4 * h)
    K.lstm_backward_steps(np.ascontiguousarray(w_hh.T), gates, cs, d_out, dh_next_t, dc,
                          np.empty((b, h), dtype), da, np.empty((4 * h, b), dtype), dbias)
    dh, dcw = dh_n.astype(np.float64), dc_n.astype(np.float64)
    want_bias = np.zeros(4 * h)
    for t in range(n - 1, -1, -1):
        want_da, dcw = ref_cell_backward(gates[t], cs[t], cs[t + 1], d_out[t], dh, dcw)
        np.testing.assert_allclose(da[t], want_da, rtol=tol, atol=tol)
        want_bias += want_da.sum(axis=0)
        dh = want_da @ w_hh.astype(np.float64)
    np.testing.assert_allclose(dh_next_t.T, dh, rtol=tol, atol=tol)
    np.testing.assert_allclose(dc, dcw, rtol=tol, atol=tol)
    np.testing.assert_allclose(dbias, want_bias, rtol=tol, atol=tol)
